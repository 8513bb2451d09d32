from rest_framework import serializers

from omnichannel.selectors import store_limit

from ..models import Member, PointsEntry
from ..selectors import order_number_seen


class MemberInputSerializer(serializers.Serializer):
    email = serializers.CharField(max_length=254, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    first_name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    last_name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    email_consent = serializers.BooleanField(required=False, allow_null=True, default=None)
    sms_consent = serializers.BooleanField(required=False, allow_null=True, default=None)


class MemberSerializer(serializers.ModelSerializer):
    channels = serializers.SerializerMethodField()
    stores = serializers.SerializerMethodField()
    clv = serializers.SerializerMethodField(help_text="Computed nightly (analytics).")
    p_alive = serializers.SerializerMethodField()
    segment = serializers.SerializerMethodField()

    class Meta:
        model = Member
        fields = [
            "id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "channels",
            "stores",
            "points",
            "tier",
            "email_consent",
            "sms_consent",
            "clv",
            "p_alive",
            "segment",
            "created_at",
        ]

    def get_channels(self, member) -> list[str]:
        return sorted({seen.channel.code for seen in member.seen_in.all()})

    def get_stores(self, member) -> list[str]:
        """The stores the member was seen at; for a store-limited staff member, those of
        their stores only: the others (a person's whereabouts) are kept from them as those
        stores' order numbers are. Tills see every store, as they always have."""
        request = self.context.get("request")
        limit = store_limit(user=request.user) if request is not None else None
        return sorted(
            {
                seen.location.code
                for seen in member.seen_in.all()
                if seen.location and (limit is None or seen.location_id in limit)
            }
        )

    def _score(self, member):
        """The nightly scores; none before the first run, and none for a store-limited staff
        member: they are figured from the person's orders at every store, the member-level
        figures analytics and the admin keep from such an account."""
        request = self.context.get("request")
        if request is not None and store_limit(user=request.user) is not None:
            return None
        return getattr(member, "score", None)

    def get_clv(self, member) -> str | None:
        score = self._score(member)
        return str(score.clv_12m) if score and score.clv_12m is not None else None

    def get_p_alive(self, member) -> float | None:
        score = self._score(member)
        return score.p_alive if score else None

    def get_segment(self, member) -> str | None:
        score = self._score(member)
        return score.segment if score else None


class PointsEntrySerializer(serializers.ModelSerializer):
    order = serializers.SerializerMethodField(
        help_text="The order's number; null without one, or for a store-limited staff member "
        "when the order is another store's."
    )

    def get_order(self, entry) -> str | None:
        return order_number_seen(entry)

    class Meta:
        model = PointsEntry
        fields = ["id", "kind", "points", "order", "note", "created_at"]


class MergeInputSerializer(serializers.Serializer):
    other = serializers.IntegerField(min_value=1, help_text="The member merged into this one.")
