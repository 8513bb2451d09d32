"""Channels, the locations that hold stock, which locations feed which channel, API clients."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

code_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{0,39}$",
    "Use lower-case letters, digits, '-' and '_' (at most 40).",
)


class Channel(models.Model):
    class Kind(models.TextChoices):
        WEB = "web", "Web shop"
        POS = "pos", "Point of sale"
        MARKETPLACE = "marketplace", "Marketplace"

    code = models.CharField(max_length=40, unique=True, validators=[code_validator])
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    currency = models.CharField(
        max_length=3,
        validators=[RegexValidator(r"^[A-Z]{3}$", "An ISO 4217 code such as EUR.")],
    )
    locations = models.ManyToManyField(
        "Location", through="ChannelLocation", related_name="channels", blank=True
    )
    points_per_unit = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        default=1,
        help_text="Loyalty points earned per unit of currency paid in this channel.",
    )

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Location(models.Model):
    class Kind(models.TextChoices):
        STORE = "store", "Store"
        WAREHOUSE = "warehouse", "Warehouse"

    code = models.CharField(max_length=40, unique=True, validators=[code_validator])
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    ships = models.BooleanField(default=False, help_text="Can ship orders to customers.")
    pickup = models.BooleanField(default=False, help_text="Customers can collect orders here.")
    address_line1 = models.CharField(max_length=200, blank=True)
    address_line2 = models.CharField(max_length=200, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    city = models.CharField(max_length=100, blank=True)
    region = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2.")

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    @property
    def address(self) -> dict[str, str]:
        return {
            "line1": self.address_line1,
            "line2": self.address_line2,
            "postal_code": self.postal_code,
            "city": self.city,
            "region": self.region,
            "country": self.country,
        }


class ChannelLocation(models.Model):
    """A location feeding a channel: `priority` orders them, `safety_stock` is held back."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="feeds")
    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="feeds")
    priority = models.PositiveIntegerField(default=1, help_text="1 is tried first.")
    safety_stock = models.PositiveIntegerField(
        default=0,
        validators=[MinValueValidator(0)],
        help_text="Units kept back from this channel's availability at this location.",
    )

    class Meta:
        ordering = ["channel", "priority", "location__code"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "location"], name="uniq_channel_location"),
            models.CheckConstraint(
                condition=models.Q(safety_stock__gte=0), name="channel_location_safety_stock_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel.code} <- {self.location.code} (#{self.priority})"


class ApiClient(models.Model):
    """A POS terminal, the storefront or an integration, confined to one channel (and location).

    Only a SHA-256 hash of the token is stored; the token itself is shown once, at creation
    or when the client is given a new one (omnichannel.services.api_client_rotate_token).
    The object stands in for `request.user` on token-authenticated API requests.
    """

    name = models.CharField(max_length=120)
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="api_clients")
    location = models.ForeignKey(
        Location,
        on_delete=models.PROTECT,
        related_name="api_clients",
        null=True,
        blank=True,
        help_text="For a POS terminal: the store it stands in.",
    )
    key_prefix = models.CharField(max_length=12, editable=False, help_text="Identifies the token.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = "API client"

    def __str__(self) -> str:
        where = f"/{self.location.code}" if self.location_id else ""
        return f"{self.name} [{self.channel.code}{where}]"

    @property
    def is_till(self) -> bool:
        """A POS terminal standing in its store: the only kind of client with a store's
        powers (sell in store, take returns there, sync offline sales, look up any order).
        The channel decides, not the location alone: a web or marketplace client given one
        (allowed until it was refused) is still its channel's system."""
        return self.location_id is not None and self.channel.kind == Channel.Kind.POS

    @property
    def is_channel_system(self) -> bool:
        """The channel's own system (a storefront, a marketplace feed): a client of a channel
        other than POS, which acts for the whole channel. A POS client is always a till; one
        of no store (made in the admin before that was refused) acts for none."""
        return self.channel.kind != Channel.Kind.POS

    @property
    def till_location_id(self) -> int | None:
        """The store this client stands in as a till; None for any other client."""
        return self.location_id if self.is_till else None

    def clean(self) -> None:
        # Checked when the client is made: its scope never changes afterwards (the admin
        # shows channel and location read-only), and a client made before this rule keeps
        # its row, with a location that gives it no till's powers (`is_till`).
        if (
            self._state.adding
            and self.location_id
            and self.channel_id
            and self.channel.kind != Channel.Kind.POS
        ):
            raise ValidationError(
                {"location": "Only a POS terminal stands in a store: leave the location empty."}
            )
        if (
            self._state.adding
            and not self.location_id
            and self.channel_id
            and self.channel.kind == Channel.Kind.POS
        ):  # as api_client_create: a POS client of no store would act for every store
            raise ValidationError({"location": "A POS client is a till: give its store."})
        if (
            self.location_id
            and self.channel_id
            and not ChannelLocation.objects.filter(
                channel_id=self.channel_id, location_id=self.location_id
            ).exists()
        ):
            raise ValidationError({"location": "This location does not feed the chosen channel."})

    # Enough of the user interface for DRF permissions and throttles.
    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class StaffStoreLimit(models.Model):
    """A staff member limited to some locations: they see and change only those locations'
    stock, orders and figures. Without this row a staff member has no store limit (what their
    Django permissions allow, everywhere); with it and no location chosen, they see none.
    Superusers are never limited. `omnichannel.selectors.store_limit` reads it."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="store_limit"
    )
    locations = models.ManyToManyField(
        Location,
        related_name="staff_limits",
        blank=True,
        help_text="The only stores (or warehouses) this staff member sees and changes.",
    )

    class Meta:
        verbose_name = "store limit"

    def __str__(self) -> str:
        return f"store limit of {self.user}"


class WorkerHeartbeat(models.Model):
    """One row per worker host, touched by a beat task: tells /healthz the worker is alive."""

    hostname = models.CharField(max_length=255, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.hostname} @ {timezone.localtime(self.seen_at):%Y-%m-%d %H:%M:%S}"


class IdempotencyRecord(models.Model):
    """The first answer to a creating POST, kept under the caller's `Idempotency-Key`."""

    scope = models.CharField(max_length=40, help_text="client:<id> or user:<id>")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    status_code = models.PositiveSmallIntegerField()
    response_body = models.JSONField(null=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="uniq_idempotency_scope_key")
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key} -> {self.status_code}"
