"""Orders from every channel through one path: lines priced from the channel's price list,
allocations saying which location serves what, payments, returns.

Money is Decimal with two places in the channel's currency; quantities are integers.
Only orders.services writes here."""

from decimal import Decimal

from django.conf import settings
from django.db import models


class Order(models.Model):
    class Fulfillment(models.TextChoices):
        IN_STORE = "in_store", "In-store sale"
        PICKUP = "pickup", "Buy online, pick up in store"
        SHIP = "ship", "Ship to the customer"

    class Status(models.TextChoices):
        PLACED = "placed"  # stock reserved, waiting for pickup preparation or shipping
        READY_FOR_PICKUP = "ready_for_pickup"
        PICKED_UP = "picked_up"
        SHIPPED = "shipped"
        COMPLETED = "completed"  # an in-store sale: paid and handed over at once
        CANCELLED = "cancelled"
        EXPIRED = "expired"  # a pickup nobody collected in time

    channel = models.ForeignKey("omnichannel.Channel", on_delete=models.PROTECT, related_name="+")
    number = models.CharField(max_length=40, blank=True)
    fulfillment = models.CharField(max_length=20, choices=Fulfillment.choices)
    status = models.CharField(max_length=20, choices=Status.choices)
    location = models.ForeignKey(
        "omnichannel.Location",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The store of an in-store sale.",
    )
    pickup_location = models.ForeignKey(
        "omnichannel.Location", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    member = models.ForeignKey(
        "customers.Member", on_delete=models.PROTECT, null=True, blank=True, related_name="orders"
    )
    points_earned = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3)
    subtotal = models.DecimalField(max_digits=12, decimal_places=2)
    discount = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    total = models.DecimalField(max_digits=12, decimal_places=2)
    needs_review = models.BooleanField(
        default=False, help_text="An offline sale took stock below zero: check the shelf."
    )
    client_id = models.CharField(
        max_length=100, blank=True, help_text="The POS's own id for an offline sale."
    )
    api_client = models.ForeignKey(
        "omnichannel.ApiClient", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "number"],
                condition=~models.Q(number=""),
                name="uniq_order_number_per_channel",
            ),
            models.UniqueConstraint(
                fields=["api_client", "client_id"],
                condition=~models.Q(client_id=""),
                name="uniq_offline_sale_per_client",
            ),
            models.CheckConstraint(condition=models.Q(total__gte=0), name="order_total_gte_0"),
        ]
        indexes = [models.Index(fields=["channel", "status", "-created_at"])]

    def __str__(self) -> str:
        return self.number or f"order #{self.pk}"

    @property
    def reference(self) -> str:
        return f"order:{self.pk}"

    def paid_with_points(self) -> Decimal:
        """The part of the total paid with loyalty points (a payment, method "points");
        reads the payments prefetched or written with the order when they are there."""
        return sum((p.amount for p in self.payments.all() if p.method == "points"), Decimal("0.00"))

    @staticmethod
    def number_for(*, channel_code: str, order_id: int) -> str:
        """An order's number: its channel's code and its id (WEB-000042)."""
        return f"{channel_code.upper()}-{order_id:06d}"


class OrderLine(models.Model):
    """A line keeps what was sold as it was: SKU, name and unit price at the time."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    variant = models.ForeignKey("catalog.Variant", on_delete=models.PROTECT, related_name="+")
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=300)
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)
    quantity = models.PositiveIntegerField()
    line_total = models.DecimalField(max_digits=12, decimal_places=2)
    discount = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=Decimal("0.00"),
        help_text="This line's share of the order discount (what a refund gives back less).",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="order_line_qty_gt_0")
        ]

    def __str__(self) -> str:
        return f"{self.sku} x{self.quantity}"

    @property
    def paid(self) -> Decimal:
        return self.line_total - self.discount


class Allocation(models.Model):
    """Which location serves how many units of a line."""

    line = models.ForeignKey(OrderLine, on_delete=models.CASCADE, related_name="allocations")
    location = models.ForeignKey("omnichannel.Location", on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.line_id}@{self.location_id} x{self.quantity}"


class Payment(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="payments")
    method = models.CharField(max_length=30)
    amount = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="payment_amount_gt_0")
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.amount}"


class Return(models.Model):
    """Goods coming back at any store, whichever channel sold them."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="returns")
    location = models.ForeignKey("omnichannel.Location", on_delete=models.PROTECT, related_name="+")
    restock = models.BooleanField()
    refund = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        help_text="Money given back. The goods' value (the lines' refunds) less the points "
        "given back for the part of the order paid with points.",
    )
    points_refunded = models.PositiveIntegerField(
        default=0,
        db_default=0,
        help_text="Points given back to the member for the part of the order paid with points.",
    )
    api_client = models.ForeignKey(
        "omnichannel.ApiClient", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"return #{self.pk} of {self.order_id}"


class ReturnLine(models.Model):
    ret = models.ForeignKey(Return, on_delete=models.CASCADE, related_name="lines")
    line = models.ForeignKey(OrderLine, on_delete=models.PROTECT, related_name="returned")
    quantity = models.PositiveIntegerField()
    refund = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        help_text="What the goods returned were worth (paid for them, discounts included); "
        "given back in money and, for an order paid partly with points, in points.",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="return_qty_gt_0")
        ]

    def __str__(self) -> str:
        return f"{self.line_id} x{self.quantity}"
