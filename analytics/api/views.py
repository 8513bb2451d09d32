"""Managers' numbers over the API. Staff with `analytics.view_memberscore` only: these are
the whole business's figures, not a channel's.

A store-limited staff member gets the sales of their stores only, and no member-level figures
(RFM, CLV, retention): those are about people who buy in every store and channel, so they
cannot be cut by store, and they would show the rest of the business's trade."""

from datetime import date, timedelta

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, permissions, serializers
from rest_framework.response import Response

from omnichannel.auth import api_client_of
from omnichannel.selectors import store_limit
from orders.models import Order

from .. import selectors
from ..models import SEGMENTS, CohortRetention, MemberScore


class StaffAnalyticsPermission(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        if api_client_of(request) is not None:
            return False
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and user.is_staff
            and user.has_perm("analytics.view_memberscore")
        )


class WholeBusinessAnalyticsPermission(StaffAnalyticsPermission):
    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False  # DRF's own message: no analytics permission
        if store_limit(user=request.user) is not None:
            self.message = (
                "Member-level figures cover every store: not for a store-limited staff account."
            )
            return False
        return True


class SalesQuerySerializer(serializers.Serializer):
    by = serializers.ChoiceField(choices=list(selectors.GROUPS), default="channel")

    def validate(self, attrs):
        end = attrs.get("to") or date.today()
        # 30 days back, or to the first day there is (`to=0001-01-05` was an OverflowError).
        start = attrs.get("from") or end - timedelta(days=min(30, (end - date.min).days))
        if start > end:
            raise serializers.ValidationError({"from": ["`from` is after `to`."]})
        if (end - start).days > 3660:
            raise serializers.ValidationError({"from": ["At most ten years at a time."]})
        return {"start": start, "end": end, "by": attrs["by"]}


# The query's own names, `from` and `to` (Python keywords), so a bad one is reported under
# the name the caller sent (it was `start` and `end`).
SalesQuerySerializer._declared_fields = {
    "from": serializers.DateField(required=False),
    "to": serializers.DateField(required=False),
    **SalesQuerySerializer._declared_fields,
}


# A sum of order amounts: the largest an order holds, as many times as the books can number
# orders (a 64-bit id). Ten years of sales are not bounded otherwise; at 14 digits, 101 of
# the largest orders (in a currency without cents) were a 500.
_AMOUNT = Order._meta.get_field("total")
SUM_DIGITS = _AMOUNT.max_digits + len(str(2**63 - 1))


def _sum_field(**kwargs):
    return serializers.DecimalField(
        max_digits=SUM_DIGITS, decimal_places=_AMOUNT.decimal_places, **kwargs
    )


class SalesRowSerializer(serializers.Serializer):
    key = serializers.CharField()
    currency = serializers.CharField(help_text="The currency of the row's orders.")
    orders = serializers.IntegerField()
    revenue = _sum_field()


class CurrencyTotalsSerializer(serializers.Serializer):
    currency = serializers.CharField()
    orders = serializers.IntegerField()
    revenue = _sum_field()
    refunds = _sum_field()


class SalesTotalsSerializer(serializers.Serializer):
    orders = serializers.IntegerField(help_text="Orders in every currency.")
    currency = serializers.CharField(
        allow_null=True,
        help_text="The one currency of the answer's orders; null for none or several.",
    )
    revenue = _sum_field(
        allow_null=True,
        help_text="In `currency`; null when the answer holds several currencies (see "
        "`by_currency`): amounts in two currencies are not added.",
    )
    by_currency = CurrencyTotalsSerializer(many=True, help_text="The totals of each currency.")
    pickup_share = serializers.FloatField()
    return_rate = serializers.FloatField()
    refunds = _sum_field(allow_null=True, help_text="In `currency`, as `revenue`.")
    stock_out_rate = serializers.DictField(
        child=serializers.FloatField(),
        help_text="Per channel: share of its published SKUs it shows as unavailable now.",
    )


class SalesSerializer(serializers.Serializer):
    by = serializers.CharField()
    results = SalesRowSerializer(many=True)
    totals = SalesTotalsSerializer()


# `from` and `to` are Python keywords: declared here so the answer and the schema use them.
SalesSerializer._declared_fields = {
    "from": serializers.DateField(),
    "to": serializers.DateField(),
    **SalesSerializer._declared_fields,
}


class SalesView(generics.GenericAPIView):
    """Sales of goods handed over (all channels) by channel, location or day; for a
    store-limited staff member, the orders of their stores only. By location: where each
    order was served (a sale's or a pickup's store, a parcel's shipping location); a parcel
    split between locations counts at each, for the share of its revenue each served, so
    the locations' revenues add up to the total. Amounts are never added across
    currencies: a row is one currency's, and the totals are per currency (`by_currency`),
    with a single `revenue` only when the answer is in one currency."""

    permission_classes = [StaffAnalyticsPermission]
    serializer_class = SalesSerializer
    # Not a page of rows: without a paginator the browsable API does not look for a queryset
    # to build a filter form from (it had none: a 500 for a browser).
    pagination_class = None

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATE, description="Default: 30 days ago."),
            OpenApiParameter("to", OpenApiTypes.DATE, description="Default: today."),
            OpenApiParameter("by", OpenApiTypes.STR, enum=list(selectors.GROUPS)),
        ]
    )
    def get(self, request):
        params = SalesQuerySerializer(
            data={
                key: value
                for key, value in {
                    "from": request.query_params.get("from"),
                    "to": request.query_params.get("to"),
                    "by": request.query_params.get("by"),
                }.items()
                if value
            }
        )
        params.is_valid(raise_exception=True)
        body = selectors.sales(
            start=params.validated_data["start"],
            end=params.validated_data["end"],
            by=params.validated_data["by"],
            limit=store_limit(user=request.user),
        )
        return Response(SalesSerializer(body).data)


def _average_of(column: str):
    """An average of a MemberScore column: never larger than the column holds."""
    field = MemberScore._meta.get_field(column)
    return serializers.DecimalField(
        max_digits=field.max_digits, decimal_places=field.decimal_places, allow_null=True
    )


class SegmentSerializer(serializers.Serializer):
    segment = serializers.CharField()
    members = serializers.IntegerField()
    monetary = _average_of("monetary")
    clv = _average_of("clv_12m")


class RfmView(generics.GenericAPIView):
    """RFM segments from the last nightly run, with their size and average value: a handful
    of rows, so one page, in the contract's list shape (`next` and `previous` null)."""

    permission_classes = [WholeBusinessAnalyticsPermission]
    serializer_class = SegmentSerializer
    pagination_class = None

    @extend_schema(
        responses=inline_serializer(
            name="RfmSegments",
            fields={
                "next": serializers.URLField(allow_null=True, help_text="Always null: one page."),
                "previous": serializers.URLField(
                    allow_null=True, help_text="Always null: one page."
                ),
                "results": SegmentSerializer(many=True),
            },
        )
    )
    def get(self, request):
        segments = SegmentSerializer(selectors.segments(), many=True).data
        return Response({"next": None, "previous": None, "results": segments})


class MemberScoreSerializer(serializers.ModelSerializer):
    class Meta:
        model = MemberScore
        fields = [
            "member",
            "segment",
            "recency_days",
            "frequency",
            "monetary",
            "r_score",
            "f_score",
            "m_score",
            "first_channel",
            "expected_purchases_90d",
            "p_alive",
            "clv_12m",
            "as_of",
        ]


class ClvQuerySerializer(serializers.Serializer):
    segment = serializers.ChoiceField(choices=SEGMENTS, required=False)


class ClvView(generics.ListAPIView):
    """Members by 12-month CLV (highest first), optionally in one `segment`. A segment the
    nightly run does not give is a 400 `invalid` (a typo answered an empty list, as if the
    segment had no members), as a cohort other than `month` is on retention/."""

    permission_classes = [WholeBusinessAnalyticsPermission]
    serializer_class = MemberScoreSerializer
    queryset = MemberScore.objects.none()

    @extend_schema(parameters=[OpenApiParameter("segment", OpenApiTypes.STR, enum=SEGMENTS)])
    def get(self, request, *args, **kwargs):
        segment = request.query_params.get("segment")
        ClvQuerySerializer(data={"segment": segment} if segment else {}).is_valid(
            raise_exception=True
        )
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return selectors.member_scores(segment=self.request.query_params.get("segment"))


class CohortSerializer(serializers.ModelSerializer):
    rate = serializers.SerializerMethodField()

    class Meta:
        model = CohortRetention
        fields = ["cohort", "first_channel", "months_since", "members", "active", "rate"]

    def get_rate(self, row) -> float:
        return round(row.active / row.members, 4) if row.members else 0.0


# The cohorts the nightly run computes: by month of first purchase only.
COHORTS = ["month"]


class RetentionQuerySerializer(serializers.Serializer):
    cohort = serializers.ChoiceField(choices=COHORTS, default="month")


class RetentionView(generics.ListAPIView):
    """Monthly cohorts by first purchase, web-first vs store-first: share active by month.
    `cohort` other than `month` is a 400 `invalid`: no other cohort is computed."""

    permission_classes = [WholeBusinessAnalyticsPermission]
    serializer_class = CohortSerializer
    queryset = CohortRetention.objects.none()

    @extend_schema(parameters=[OpenApiParameter("cohort", OpenApiTypes.STR, enum=COHORTS)])
    def get(self, request, *args, **kwargs):
        cohort = request.query_params.get("cohort")
        RetentionQuerySerializer(data={"cohort": cohort} if cohort else {}).is_valid(
            raise_exception=True
        )
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return selectors.retention()
