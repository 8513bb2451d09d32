from rest_framework import serializers

from ..models import StockLevel, StockMovement, Transfer, TransferLine
from ..services import ADJUSTMENT_REASONS, MAX_QUANTITY
from ..webhooks import webhook_url_normal


class StockLevelSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="variant.sku")
    location = serializers.CharField(source="location.code")
    available = serializers.IntegerField()

    class Meta:
        model = StockLevel
        fields = ["sku", "location", "on_hand", "reserved", "available", "updated_at"]


class StockMovementSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="variant.sku")
    location = serializers.CharField(source="location.code")

    class Meta:
        model = StockMovement
        fields = [
            "id",
            "sku",
            "location",
            "delta",
            "reserved_delta",
            "reason",
            "reference",
            "note",
            "created_at",
        ]


class AdjustmentInputSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    location = serializers.CharField(max_length=40)
    delta = serializers.IntegerField(
        required=False, min_value=-MAX_QUANTITY, max_value=MAX_QUANTITY
    )
    counted = serializers.IntegerField(required=False, min_value=0, max_value=MAX_QUANTITY)
    reason = serializers.ChoiceField(choices=sorted([*ADJUSTMENT_REASONS, "count"]))
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        has_delta, has_counted = "delta" in attrs, "counted" in attrs
        if has_delta == has_counted:
            raise serializers.ValidationError("Give either `delta` or `counted`, not both.")
        if has_counted and attrs["reason"] != "count":
            raise serializers.ValidationError({"reason": ["A cycle count (`counted`) is `count`."]})
        if has_delta and attrs["reason"] == "count":
            raise serializers.ValidationError({"counted": ["A count gives `counted`."]})
        if has_delta and attrs["delta"] == 0:
            raise serializers.ValidationError({"delta": ["Must not be zero."]})
        return attrs


class AdjustmentOutputSerializer(serializers.Serializer):
    level = StockLevelSerializer()
    movement = StockMovementSerializer(allow_null=True)


class AvailabilityLocationSerializer(serializers.Serializer):
    location = serializers.CharField()
    available = serializers.IntegerField()
    pickup = serializers.BooleanField()


class AvailabilitySerializer(serializers.Serializer):
    sku = serializers.CharField()
    available = serializers.IntegerField()
    as_of = serializers.DateTimeField(allow_null=True)
    locations = AvailabilityLocationSerializer(many=True)

    def to_representation(self, entry: dict) -> dict:
        """The storefront's hottest read, answered from the plain entry without walking the
        fields one by one (a sixth of the request's CPU); the fields above still describe it
        in the schema, and a test holds the two to the same answer."""
        as_of = entry["as_of"]
        return {
            "sku": entry["sku"],
            "available": entry["available"],
            "as_of": None if as_of is None else _AS_OF.to_representation(as_of),
            "locations": [
                {"location": at["location"], "available": at["available"], "pickup": at["pickup"]}
                for at in entry["locations"]
            ],
        }


_AS_OF = serializers.DateTimeField()


class TransferLineSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="variant.sku")
    in_transit = serializers.IntegerField()
    discrepancy = serializers.IntegerField(allow_null=True)

    class Meta:
        model = TransferLine
        fields = [
            "sku",
            "quantity",
            "shipped_quantity",
            "received_quantity",
            "in_transit",
            "discrepancy",
        ]


class TransferSerializer(serializers.ModelSerializer):
    from_location = serializers.CharField(source="from_location.code")
    to_location = serializers.CharField(source="to_location.code")
    lines = TransferLineSerializer(many=True)

    class Meta:
        model = Transfer
        fields = [
            "id",
            "from_location",
            "to_location",
            "status",
            "note",
            "lines",
            "created_at",
            "shipped_at",
            "received_at",
        ]


class SkuQuantitySerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY)


class TransferInputSerializer(serializers.Serializer):
    from_location = serializers.CharField(max_length=40)
    to_location = serializers.CharField(max_length=40)
    lines = SkuQuantitySerializer(many=True, allow_empty=False, max_length=500)
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class ReceivedLineSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=0, max_value=MAX_QUANTITY)


class TransferReceiveSerializer(serializers.Serializer):
    lines = ReceivedLineSerializer(many=True, required=False, max_length=500)


class WebhookInputSerializer(serializers.Serializer):
    url = serializers.URLField(
        max_length=500, help_text="Where availability changes go (http or https)."
    )
    channel = serializers.CharField(
        max_length=40, required=False, allow_blank=True, help_text="Staff name it; a client's own."
    )

    def validate_url(self, value: str) -> str:
        if not value.lower().startswith(("http://", "https://")):
            raise serializers.ValidationError("Give an http or https URL.")
        try:
            return webhook_url_normal(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc


class WebhookSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    channel = serializers.CharField(source="channel.code")
    url = serializers.URLField()
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(
        help_text="The key of X-Signature (hex HMAC-SHA256 of each body): keep it to check them."
    )
