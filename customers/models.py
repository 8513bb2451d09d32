"""One customer across channels: the member, found by email or phone wherever they shop,
and the loyalty points ledger that explains their balance."""

from django.db import models

from omnichannel.history import tracked_history


class Member(models.Model):
    """Email is stored trimmed and lower-cased with its domain in IDNA A-labels, phone in
    E.164: the same person typing either differently at a till or online is still one
    member (customers.services.normalize_email, normalize_phone)."""

    class Tier(models.TextChoices):
        BASIC = "basic"
        SILVER = "silver"
        GOLD = "gold"

    email = models.EmailField(max_length=254, null=True, blank=True, unique=True)
    phone = models.CharField(
        max_length=20, null=True, blank=True, unique=True, help_text="E.164, e.g. +33612345678"
    )
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    email_consent = models.BooleanField(default=False)
    email_consent_at = models.DateTimeField(null=True, blank=True)
    email_consent_source = models.CharField(max_length=80, blank=True)
    sms_consent = models.BooleanField(default=False)
    sms_consent_at = models.DateTimeField(null=True, blank=True)
    sms_consent_source = models.CharField(max_length=80, blank=True)
    points = models.IntegerField(default=0, help_text="Kept with the ledger, under a row lock.")
    tier = models.CharField(max_length=10, choices=Tier.choices, default=Tier.BASIC)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Profile changes only: points have their ledger, the tier is recomputed nightly. Erasing
    # a member deletes their history too (customers.privacy.member_erase).
    history = tracked_history(excluded_fields=["points", "tier", "updated_at"])

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(points__gte=0), name="member_points_gte_0"),
            models.CheckConstraint(
                condition=models.Q(email__isnull=False) | models.Q(phone__isnull=False),
                name="member_has_email_or_phone",
            ),
        ]

    def __str__(self) -> str:
        return self.email or self.phone or f"member #{self.pk}"


class MemberAlias(models.Model):
    """Another email or phone of a member: what a member merged into them had where they
    kept their own. It still finds them (the upsert, the look-up): the person typing it next
    is not made a new member with no points. Erased with the member."""

    class Kind(models.TextChoices):
        EMAIL = "email"
        PHONE = "phone"

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="aliases")
    kind = models.CharField(max_length=5, choices=Kind.choices)
    value = models.CharField(max_length=254, help_text="Normalized as the member's own.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "value"], name="uniq_member_alias")]

    def __str__(self) -> str:
        return self.value


class MemberChannel(models.Model):
    """Where a member was seen: a channel, and for store sales the store."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="seen_in")
    channel = models.ForeignKey("omnichannel.Channel", on_delete=models.CASCADE, related_name="+")
    location = models.ForeignKey(
        "omnichannel.Location", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [  # two partial constraints: SQLite has no NULLS NOT DISTINCT
            models.UniqueConstraint(
                fields=["member", "channel", "location"],
                condition=models.Q(location__isnull=False),
                name="uniq_member_seen_at_location",
            ),
            models.UniqueConstraint(
                fields=["member", "channel"],
                condition=models.Q(location__isnull=True),
                name="uniq_member_seen_in_channel",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member_id} in {self.channel_id}/{self.location_id}"


class PointsEntry(models.Model):
    """The points ledger: the member's balance is the sum of `points`."""

    class Kind(models.TextChoices):
        EARNED = "earned"
        REDEEMED = "redeemed"
        EXPIRED = "expired"
        REVERSED = "reversed"
        REFUNDED = "refunded"  # points paid on an order given back: cancelled, or goods returned
        ADJUSTED = "adjusted"

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="points_ledger")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    points = models.IntegerField()
    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    ret = models.ForeignKey(
        "orders.Return", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # One earning, one redemption and one refund (on cancel) per order, one reversal
            # and one refund per return: a retried task or request cannot post the same
            # points twice.
            models.UniqueConstraint(
                fields=["order", "kind"],
                condition=models.Q(order__isnull=False, ret__isnull=True),
                name="uniq_points_per_order_and_kind",
            ),
            models.UniqueConstraint(
                fields=["ret", "kind"],
                condition=models.Q(ret__isnull=False),
                name="uniq_points_per_return_and_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.points:+d}"


class MemberEvent(models.Model):
    """What happened to a member, for staff and auditors: merges, exports, erasures. Holds
    no personal data of its own (ids only), so an erasure leaves nothing here to scrub."""

    class Kind(models.TextChoices):
        MERGED = "merged"
        EXPORTED = "exported"
        ERASED = "erased"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    member_id_ref = models.BigIntegerField(help_text="The member acted on (kept after erasure).")
    other_id_ref = models.BigIntegerField(
        null=True, blank=True, help_text="For a merge: the member merged away."
    )
    staff = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind} member {self.member_id_ref}"
