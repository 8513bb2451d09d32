"""Stock per variant and location, and the append-only movement ledger that explains it.

`on_hand` is what is physically there, `reserved` what is promised to open orders and
outgoing transfers, `available = on_hand - reserved`. Every change to either has a ledger row
in the same transaction: summing the ledger's `delta` gives `on_hand`, summing its
`reserved_delta` gives `reserved`. Only inventory.services writes here.
"""

from django.conf import settings
from django.db import models


class StockLevel(models.Model):
    variant = models.ForeignKey("catalog.Variant", on_delete=models.PROTECT, related_name="stock")
    location = models.ForeignKey(
        "omnichannel.Location", on_delete=models.PROTECT, related_name="stock"
    )
    on_hand = models.IntegerField(
        default=0, help_text="Physically there; negative only after an oversold offline sale."
    )
    reserved = models.IntegerField(default=0, help_text="Promised to orders and transfers.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["variant", "location"]
        constraints = [
            models.UniqueConstraint(fields=["variant", "location"], name="uniq_stock_level"),
            models.CheckConstraint(
                condition=models.Q(reserved__gte=0), name="stock_reserved_gte_0"
            ),
        ]
        indexes = [models.Index(fields=["location", "variant"])]

    def __str__(self) -> str:
        return f"{self.variant_id}@{self.location_id}: {self.on_hand}/{self.reserved}"

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class StockMovement(models.Model):
    """One line of the ledger. The database refuses UPDATE and DELETE on this table."""

    class Reason(models.TextChoices):
        SALE = "sale"
        RETURN = "return"
        RECEIPT = "receipt"
        COUNT = "count"
        DAMAGE = "damage"
        THEFT = "theft"
        CORRECTION = "correction"
        TRANSFER_OUT = "transfer_out"
        TRANSFER_IN = "transfer_in"
        RESERVATION = "reservation"
        RELEASE = "release"

    variant = models.ForeignKey("catalog.Variant", on_delete=models.PROTECT, related_name="+")
    location = models.ForeignKey("omnichannel.Location", on_delete=models.PROTECT, related_name="+")
    delta = models.IntegerField(help_text="Change to on_hand.")
    reserved_delta = models.IntegerField(default=0, help_text="Change to reserved.")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    reference = models.CharField(
        max_length=80, blank=True, help_text="What caused it: order:N, transfer:N, adjustment:N"
    )
    note = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    api_client = models.ForeignKey(
        "omnichannel.ApiClient", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["variant", "location", "id"])]

    def __str__(self) -> str:
        return f"{self.reason} {self.delta:+d}/{self.reserved_delta:+d}"


class AvailabilityOutbox(models.Model):
    """A variant whose channel availability must be recomputed, written in the same
    transaction as the stock change. The sync task consumes these rows; a lost task only
    delays the work, since the sweeper picks up whatever is left."""

    variant = models.ForeignKey("catalog.Variant", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"sync variant {self.variant_id}"


class ChannelAvailability(models.Model):
    """What a channel publishes for a variant: the sum over its feeding locations of
    `max(0, available - safety_stock)`, with the per-location breakdown. A read model, kept
    by the worker; selling always checks live stock under lock, never this."""

    channel = models.ForeignKey("omnichannel.Channel", on_delete=models.CASCADE, related_name="+")
    variant = models.ForeignKey("catalog.Variant", on_delete=models.CASCADE, related_name="+")
    available = models.IntegerField()
    locations = models.JSONField(default=list)
    as_of = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "variant"], name="uniq_channel_availability")
        ]
        verbose_name_plural = "channel availability"

    def __str__(self) -> str:
        return f"{self.channel_id}/{self.variant_id}: {self.available}"


class Transfer(models.Model):
    """Stock moving between two locations: reserved at the origin when requested, out of the
    origin and in transit once shipped, into the destination when received."""

    class Status(models.TextChoices):
        REQUESTED = "requested"
        SHIPPED = "shipped"
        RECEIVED = "received"
        CANCELLED = "cancelled"

    from_location = models.ForeignKey(
        "omnichannel.Location", on_delete=models.PROTECT, related_name="transfers_out"
    )
    to_location = models.ForeignKey(
        "omnichannel.Location", on_delete=models.PROTECT, related_name="transfers_in"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.REQUESTED)
    note = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    api_client = models.ForeignKey(
        "omnichannel.ApiClient", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(from_location=models.F("to_location")),
                name="transfer_between_two_locations",
            )
        ]

    def __str__(self) -> str:
        return f"Transfer #{self.pk} {self.from_location_id}->{self.to_location_id} {self.status}"

    @property
    def reference(self) -> str:
        return f"transfer:{self.pk}"


class TransferLine(models.Model):
    transfer = models.ForeignKey(Transfer, on_delete=models.CASCADE, related_name="lines")
    variant = models.ForeignKey("catalog.Variant", on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField(help_text="Requested, reserved at the origin.")
    shipped_quantity = models.PositiveIntegerField(default=0)
    received_quantity = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["transfer", "variant"], name="uniq_transfer_variant"),
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="transfer_qty_gt_0"),
        ]

    def __str__(self) -> str:
        return f"{self.variant_id} x{self.quantity}"

    @property
    def in_transit(self) -> int:
        """Shipped and not yet received (0 once the receipt is booked)."""
        return self.shipped_quantity if self.received_quantity is None else 0

    @property
    def discrepancy(self) -> int | None:
        """Received minus shipped once received: negative is short, positive is over."""
        if self.received_quantity is None:
            return None
        return self.received_quantity - self.shipped_quantity


def _new_secret() -> str:
    import secrets

    return secrets.token_hex(32)


class WebhookSubscription(models.Model):
    """A subscriber (a marketplace, a storefront cache) told of a channel's availability
    changes. Each POST is signed: `X-Signature: <hex HMAC-SHA256 of the body>`."""

    channel = models.ForeignKey(
        "omnichannel.Channel", on_delete=models.CASCADE, related_name="webhooks"
    )
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=64, default=_new_secret)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["channel", "url"]
        constraints = [
            # Two registrations of one URL at the same moment made two: every change twice.
            models.UniqueConstraint(
                fields=["channel", "url"],
                condition=models.Q(is_active=True),
                name="uniq_active_webhook_url",
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel_id} -> {self.url}"


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"
        # Not sent (again): every SKU it reports was published anew since, and a newer
        # delivery to the same subscriber carries that figure.
        SUPERSEDED = "superseded"

    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    payload = models.JSONField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"delivery #{self.pk} {self.status}"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    attempted_at = models.DateTimeField(auto_now_add=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.status_code or self.error}"
