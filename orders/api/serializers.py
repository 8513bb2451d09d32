from datetime import datetime
from decimal import Decimal

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import ISO_8601, serializers
from rest_framework.fields import empty
from rest_framework.settings import api_settings

from inventory.services import MAX_QUANTITY

from ..models import Allocation, Order, OrderLine, Payment, Return
from ..pricing import CENT

MONEY = {"max_digits": 12, "decimal_places": 2}


class LineInputSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY)


class PaymentInputSerializer(serializers.Serializer):
    method = serializers.CharField(max_length=30)
    amount = serializers.DecimalField(**MONEY, min_value=Decimal("0.01"))


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "description": "A member id."},
            {
                "type": "object",
                "description": "Find or create the member by email or phone.",
                "properties": {
                    "email": {"type": "string"},
                    "phone": {"type": "string"},
                    "first_name": {"type": "string"},
                    "last_name": {"type": "string"},
                },
            },
        ]
    }
)
class MemberRefField(serializers.Field):
    """A member id, or `{"email": ...}` / `{"phone": ...}` (with names) to find or create."""

    default_error_messages = {"invalid": "Give a member id or an object with email or phone."}

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, int):
            return {"id": data}
        if isinstance(data, dict) and (data.get("email") or data.get("phone")):
            from customers.api.serializers import MemberInputSerializer

            contact = MemberInputSerializer(data=data)
            contact.is_valid(raise_exception=True)
            return {"contact": contact.validated_data}
        self.fail("invalid")

    def to_representation(self, value):
        return value


class OrderInputSerializer(serializers.Serializer):
    channel = serializers.CharField(max_length=40, required=False)
    fulfillment = serializers.ChoiceField(choices=Order.Fulfillment.choices)
    location = serializers.CharField(max_length=40, required=False)
    pickup_location = serializers.CharField(max_length=40, required=False)
    lines = LineInputSerializer(many=True, allow_empty=False, max_length=200)
    payments = PaymentInputSerializer(many=True, required=False, max_length=20)
    discount = serializers.DecimalField(**MONEY, min_value=Decimal("0"), required=False)
    member = MemberRefField(required=False)
    redeem_points = serializers.IntegerField(min_value=1, max_value=10_000_000, required=False)


class OrderLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderLine
        fields = ["sku", "name", "quantity", "unit_price", "line_total", "discount"]


class AllocationSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="line.sku")
    location = serializers.CharField(source="location.code")

    class Meta:
        model = Allocation
        fields = ["sku", "location", "quantity"]


class PaymentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Payment
        fields = ["method", "amount"]


class TotalsSerializer(serializers.Serializer):
    subtotal = serializers.DecimalField(**MONEY)
    discount = serializers.DecimalField(**MONEY)
    total = serializers.DecimalField(**MONEY)


# The answer is built as a plain dict, in the shape the declared fields below say (they stay the
# schema, and tests/test_order_representation.py checks the two agree on every kind of order):
# DRF's generic walk over nested fields cost most of an order list page (50 orders: 62 ms of
# which about 40 in the fields, profiled) and builds its fields again on every placement.
def _money(amount: Decimal) -> str:
    """An amount as DecimalField(**MONEY) answers it ("12.90"), at a fifth of the cost: a
    page of 50 orders formats some 350 amounts. Amounts are kept in cents (orders.pricing),
    so the quantize never rounds; the representation test holds the two to one answer."""
    return format(amount.quantize(CENT), "f")


_WHEN = serializers.DateTimeField()


def _when(value: datetime) -> str:
    """An aware datetime as DateTimeField answers it (ISO 8601 in the current time zone, "Z"
    for UTC) at a fifth of the cost, 50 times a page; the representation test holds the
    two to one answer. Another DATETIME_FORMAT goes through the field."""
    if api_settings.DATETIME_FORMAT.lower() != ISO_8601:
        return _WHEN.to_representation(value)
    text = value.astimezone(timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class OrderSerializer(serializers.ModelSerializer):
    channel = serializers.CharField(source="channel.code")
    location = serializers.CharField(source="location.code", allow_null=True, default=None)
    pickup_location = serializers.CharField(
        source="pickup_location.code", allow_null=True, default=None
    )
    lines = OrderLineSerializer(many=True)
    totals = serializers.SerializerMethodField()
    allocations = serializers.SerializerMethodField()
    payments = PaymentSerializer(many=True)
    member = serializers.SerializerMethodField(help_text="The unified member's id.")
    points_earned = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "id",
            "number",
            "status",
            "channel",
            "fulfillment",
            "location",
            "pickup_location",
            "currency",
            "lines",
            "totals",
            "allocations",
            "payments",
            "member",
            "points_earned",
            "needs_review",
            "created_at",
        ]

    def to_representation(self, order) -> dict:
        lines = order.lines.all()
        return order_answer(
            {
                "id": order.pk,
                "number": order.number,
                "status": order.status,
                "channel__code": order.channel.code,
                "fulfillment": order.fulfillment,
                "location__code": order.location.code if order.location_id else None,
                "pickup_location__code": (
                    order.pickup_location.code if order.pickup_location_id else None
                ),
                "currency": order.currency,
                "subtotal": order.subtotal,
                "discount": order.discount,
                "total": order.total,
                "member_id": order.member_id,
                "points_earned": order.points_earned,
                "needs_review": order.needs_review,
                "created_at": order.created_at,
                "lines": [
                    {
                        "sku": line.sku,
                        "name": line.name,
                        "quantity": line.quantity,
                        "unit_price": line.unit_price,
                        "line_total": line.line_total,
                        "discount": line.discount,
                        "allocations": [
                            {"location__code": a.location.code, "quantity": a.quantity}
                            for a in line.allocations.all()
                        ],
                    }
                    for line in lines
                ],
                "payments": [
                    {"method": p.method, "amount": p.amount} for p in order.payments.all()
                ],
            }
        )

    def get_totals(self, order) -> TotalsSerializer:
        return {
            "subtotal": _money(order.subtotal),
            "discount": _money(order.discount),
            "total": _money(order.total),
        }

    def get_allocations(self, order) -> AllocationSerializer(many=True):
        return [
            {"sku": line.sku, "location": a.location.code, "quantity": a.quantity}
            for line in order.lines.all()
            for a in line.allocations.all()
        ]

    def get_member(self, order) -> int | None:
        return order.member_id

    def get_points_earned(self, order) -> int:
        return order.points_earned


def order_answer(row: dict) -> dict:
    """An order's answer, in the shape OrderSerializer's fields declare, from plain values:
    a model instance's (`OrderSerializer.to_representation`) or a list page's
    (`selectors.order_page_details`)."""
    return {
        "id": row["id"],
        "number": row["number"],
        "status": row["status"],
        "channel": row["channel__code"],
        "fulfillment": row["fulfillment"],
        "location": row["location__code"],
        "pickup_location": row["pickup_location__code"],
        "currency": row["currency"],
        "lines": [
            {
                "sku": line["sku"],
                "name": line["name"],
                "quantity": line["quantity"],
                "unit_price": _money(line["unit_price"]),
                "line_total": _money(line["line_total"]),
                "discount": _money(line["discount"]),
            }
            for line in row["lines"]
        ],
        "totals": {
            "subtotal": _money(row["subtotal"]),
            "discount": _money(row["discount"]),
            "total": _money(row["total"]),
        },
        "allocations": [
            {"sku": line["sku"], "location": a["location__code"], "quantity": a["quantity"]}
            for line in row["lines"]
            for a in line["allocations"]
        ],
        "payments": [
            {"method": p["method"], "amount": _money(p["amount"])} for p in row["payments"]
        ],
        "member": row["member_id"],
        "points_earned": row["points_earned"],
        "needs_review": row["needs_review"],
        "created_at": _when(row["created_at"]),
    }


class ReturnInputSerializer(serializers.Serializer):
    order = serializers.CharField(max_length=40, help_text="Order id or number.")
    location = serializers.CharField(max_length=40)
    lines = LineInputSerializer(many=True, allow_empty=False, max_length=200)
    restock = serializers.BooleanField()


class ReturnSerializer(serializers.ModelSerializer):
    order = serializers.CharField(source="order.number")
    location = serializers.CharField(source="location.code")
    lines = serializers.SerializerMethodField()
    points_reversed = serializers.SerializerMethodField()

    class Meta:
        model = Return
        fields = [
            "id",
            "order",
            "location",
            "restock",
            "refund",
            "points_refunded",
            "lines",
            "points_reversed",
            "created_at",
        ]

    def get_lines(self, ret) -> list[dict]:
        return [
            {"sku": line.line.sku, "quantity": line.quantity, "refund": str(line.refund)}
            for line in ret.lines.select_related("line")
        ]

    def get_points_reversed(self, ret) -> int:
        from customers.models import PointsEntry

        entry = PointsEntry.objects.filter(ret=ret, kind=PointsEntry.Kind.REVERSED).first()
        return -entry.points if entry else 0


class OfflinePaymentInputSerializer(PaymentInputSerializer):
    amount = serializers.DecimalField(
        **MONEY,
        min_value=Decimal("0"),
        help_text="0.00 is accepted for a sale already made, and not recorded: the payments "
        "must still add up to the total.",
    )


class OfflineSaleSerializer(serializers.Serializer):
    client_id = serializers.CharField(max_length=100)
    lines = LineInputSerializer(many=True, allow_empty=False, max_length=200)
    payments = OfflinePaymentInputSerializer(many=True, required=False, max_length=20)
    discount = serializers.DecimalField(**MONEY, min_value=Decimal("0"), required=False)
    sold_at = serializers.DateTimeField(required=False)
    member = MemberRefField(required=False, help_text="Who bought, as on orders/: earns points.")


def _error_sentence(detail, path: str = "") -> list[str]:
    """DRF's nested field errors as "lines.0.sku: message" sentences."""
    if isinstance(detail, dict):
        return [
            said
            for field, errors in detail.items()
            for said in _error_sentence(errors, f"{path}.{field}" if path else str(field))
        ]
    if isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        return [
            said
            for index, errors in enumerate(detail)
            for said in _error_sentence(errors, f"{path}.{index}" if path else str(index))
        ]
    if isinstance(detail, list):
        return [f"{path}: {message}" if path else str(message) for message in detail]
    return [f"{path}: {detail}" if path else str(detail)]


class OfflineSaleListSerializer(serializers.ListSerializer):
    """A batch's sales, each checked on its own: a sale its checks refuse (a name too long,
    a payment that is not money) is kept as `{"client_id", "invalid"}`, answered rejected
    `invalid` alone while the others are recorded: one such sale made the whole batch a 400,
    and the till, retrying its outbox, never got any sale in. Only what the batch needs to
    answer each sale is a 400: a list of objects, each with its own `client_id`."""

    def run_child_validation(self, data):
        try:
            return self.child.run_validation(data)
        except serializers.ValidationError as refused:
            if not isinstance(data, dict):
                raise
            try:
                client_id = self.child.fields["client_id"].run_validation(
                    data.get("client_id", empty)
                )
            except serializers.ValidationError as no_id:
                raise serializers.ValidationError({"client_id": no_id.detail}) from None
            said = " ".join(_error_sentence(refused.detail))
            return {"client_id": client_id, "invalid": f"The sale has invalid fields. {said}"}


class PosSyncInputSerializer(serializers.Serializer):
    sales = OfflineSaleListSerializer(
        child=OfflineSaleSerializer(), allow_empty=False, max_length=500
    )

    def validate_sales(self, sales):
        ids = [sale["client_id"] for sale in sales]
        if len(ids) != len(set(ids)):
            raise serializers.ValidationError("Each sale in a batch has its own client_id.")
        return sales


class SyncedOrderSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.CharField()


class PosSyncResultSerializer(serializers.Serializer):
    client_id = serializers.CharField()
    status = serializers.ChoiceField(choices=["accepted", "accepted_oversold", "rejected"])
    order = SyncedOrderSerializer(allow_null=True)
    code = serializers.CharField(allow_blank=True)
    detail = serializers.CharField(allow_blank=True)


class PosSyncOutputSerializer(serializers.Serializer):
    results = PosSyncResultSerializer(many=True)
