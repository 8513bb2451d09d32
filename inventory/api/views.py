import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from catalog.selectors import variant_ids_by_sku
from omnichannel.api.filters import MultipleValueFilter
from omnichannel.api.pagination import NewestFirstPagination
from omnichannel.api.schema import CONFLICT
from omnichannel.auth import api_client_of
from omnichannel.errors import LocationForbidden
from omnichannel.idempotency import idempotent
from omnichannel.selectors import (
    channel_scope,
    location_allowed,
    location_for_read,
    location_for_write,
    location_named,
    store_limit,
)

from .. import services, transfers, webhooks
from ..models import ChannelAvailability, StockLevel, StockMovement, Transfer, WebhookSubscription
from ..selectors import (
    availability_for_skus,
    availability_list,
    movement_list,
    stock_list,
    transfer_acting_location_id,
    transfer_list,
)
from .serializers import (
    AdjustmentInputSerializer,
    AdjustmentOutputSerializer,
    AvailabilitySerializer,
    StockLevelSerializer,
    StockMovementSerializer,
    TransferInputSerializer,
    TransferReceiveSerializer,
    TransferSerializer,
    WebhookCreatedSerializer,
    WebhookInputSerializer,
    WebhookSerializer,
)


class StockFilter(django_filters.FilterSet):
    sku = MultipleValueFilter(field_name="variant__sku", lookup_expr="in")
    location = MultipleValueFilter(field_name="location__code", lookup_expr="in")

    class Meta:
        model = StockLevel
        fields = ["sku", "location"]


class StockViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Stock per SKU and location: `on_hand`, `reserved`, `available = on_hand - reserved`."""

    queryset = StockLevel.objects.none()
    serializer_class = StockLevelSerializer
    filterset_class = StockFilter

    def get_queryset(self):
        return stock_list(
            client=api_client_of(self.request), limit=store_limit(user=self.request.user)
        )


class MovementFilter(StockFilter):
    reason = django_filters.ChoiceFilter(choices=StockMovement.Reason.choices)
    reference = django_filters.CharFilter(max_length=80)

    class Meta:
        model = StockMovement
        fields = ["sku", "location", "reason", "reference"]


class MovementViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The append-only ledger, newest first."""

    pagination_class = NewestFirstPagination
    queryset = StockMovement.objects.none()
    serializer_class = StockMovementSerializer
    filterset_class = MovementFilter

    def get_queryset(self):
        return movement_list(
            client=api_client_of(self.request), limit=store_limit(user=self.request.user)
        )


def actor_of(request) -> services.Actor:
    client = api_client_of(request)
    if client is not None:
        return services.Actor(api_client_id=client.pk)
    return services.Actor(user_id=request.user.pk)


class AdjustmentView(generics.GenericAPIView):
    """Adjust stock by `delta`, or set it to what a cycle count found (`counted`).

    A POS client adjusts at its own store only; staff need `inventory.add_stockmovement`
    and, with a store limit, adjust only at their stores (403 `location_forbidden`).
    """

    queryset = StockMovement.objects.none()  # the permission checked: add a ledger row
    serializer_class = AdjustmentInputSerializer

    @extend_schema(
        request=AdjustmentInputSerializer,
        responses={201: AdjustmentOutputSerializer, 409: CONFLICT},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, "header")],
    )
    @idempotent
    def post(self, request):
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        client = api_client_of(request)
        location = location_for_write(
            client=client, code=fields["location"], limit=store_limit(user=request.user)
        )
        variant_id = variant_ids_by_sku(skus=[fields["sku"]])[fields["sku"]]
        if "counted" in fields:
            level, movement = services.stock_count(
                variant_id=variant_id,
                location_id=location.pk,
                counted=fields["counted"],
                reference="count",
                note=fields["note"],
                actor=actor_of(request),
            )
        else:
            level, movement = services.stock_adjust(
                variant_id=variant_id,
                location_id=location.pk,
                delta=fields["delta"],
                reason=fields["reason"],
                reference="adjustment",
                note=fields["note"],
                actor=actor_of(request),
            )
        body = AdjustmentOutputSerializer({"level": level, "movement": movement}).data
        return Response(body, status=status.HTTP_201_CREATED)


class AvailabilityQuerySerializer(serializers.Serializer):
    channel = serializers.CharField(required=False, allow_blank=True, max_length=40)
    sku = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=200
    )


@extend_schema(
    parameters=[
        OpenApiParameter("channel", OpenApiTypes.STR, description="Channel code (a client's own)."),
        OpenApiParameter("sku", OpenApiTypes.STR, many=True, description="Repeat for several."),
    ],
    responses={200: AvailabilitySerializer(many=True)},
)
class AvailabilityViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """A channel's published availability per SKU, kept in sync by the worker.

    With `sku`: one entry per SKU asked (0 for a SKU never stocked). Without: the channel's
    whole read model, paginated. Staff name the `channel`; a client gets its own. A staff
    store limit does not narrow it: it is what the channel publishes to its customers (the
    storefront shows every pickup store's figure), not a store's stock.
    """

    queryset = ChannelAvailability.objects.none()
    serializer_class = AvailabilitySerializer
    filter_backends = []

    def list(self, request, *args, **kwargs):
        params = AvailabilityQuerySerializer(
            data={
                "channel": request.query_params.get("channel", ""),
                "sku": [
                    part.strip()
                    for value in request.query_params.getlist("sku")
                    for part in value.split(",")
                    if part.strip()
                ],
            }
        )
        params.is_valid(raise_exception=True)
        client = api_client_of(request)
        channel = channel_scope(client=client, code=params.validated_data.get("channel"))
        if channel is None:
            raise serializers.ValidationError({"channel": ["Name the channel."]})
        skus = params.validated_data.get("sku")
        if skus:
            entries = availability_for_skus(channel=channel, skus=skus)
            data = AvailabilitySerializer(entries, many=True).data
            return Response({"count": len(data), "next": None, "previous": None, "results": data})
        page = self.paginate_queryset(availability_list(channel=channel))
        entries = [
            {
                "sku": row.variant.sku,
                "available": row.available,
                "as_of": row.as_of,
                "locations": row.locations,
            }
            for row in page
        ]
        return self.get_paginated_response(AvailabilitySerializer(entries, many=True).data)


class TransferViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Transfers between locations. A POS client sends from its own store, to any location,
    and receives at it; staff need the transfer permissions. A store-limited staff member sees
    the transfers from or to their stores, requests, ships and cancels from them and receives
    at them."""

    queryset = Transfer.objects.none()
    serializer_class = TransferSerializer
    filterset_fields = ["status"]

    def get_queryset(self):
        return transfer_list(
            client=api_client_of(self.request), limit=store_limit(user=self.request.user)
        )

    def _answer(self, transfer_id: int, status_code=status.HTTP_200_OK) -> Response:
        transfer = transfer_list(client=None).get(pk=transfer_id)
        return Response(TransferSerializer(transfer).data, status=status_code)

    @extend_schema(
        request=TransferInputSerializer,
        responses={201: TransferSerializer, 409: CONFLICT},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, "header")],
    )
    @idempotent
    def create(self, request):
        data = TransferInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        client = api_client_of(request)
        # The origin's stock is reserved, so the origin requests (as it ships and cancels):
        # a store-limited staff member sends from their stores, a POS from its own.
        origin = location_for_read(
            client=client, code=fields["from_location"], limit=store_limit(user=request.user)
        )
        if client is not None and client.till_location_id != origin.pk:
            raise LocationForbidden(
                "A POS client sends transfers from its own store: the origin's stock is "
                "reserved, so the origin requests."
            )
        # To any location: a till sends back to a warehouse that feeds only the web shop.
        # Naming it changes no stock there; who may act there receives (staff at a
        # warehouse: only a till stands in a location).
        destination = location_named(code=fields["to_location"])
        ids = variant_ids_by_sku(skus=[line["sku"] for line in fields["lines"]])
        transfer = transfers.transfer_request(
            from_location_id=origin.pk,
            to_location_id=destination.pk,
            items=[
                transfers.TransferItem(ids[line["sku"]], line["quantity"])
                for line in fields["lines"]
            ],
            note=fields["note"],
            actor=actor_of(request),
        )
        return self._answer(transfer.pk, status.HTTP_201_CREATED)

    def _transfer_at(self, pk, *, action: str) -> Transfer:
        transfer = self.get_object()
        client = api_client_of(self.request)
        location_id = transfer_acting_location_id(transfer, action=action)
        if (client is not None and client.till_location_id != location_id) or not location_allowed(
            limit=store_limit(user=self.request.user), location_id=location_id
        ):
            raise LocationForbidden(
                "Only the sending store ships, only the receiving store receives."
            )
        return transfer

    @extend_schema(request=None, responses={200: TransferSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def ship(self, request, pk=None):
        transfer = self._transfer_at(pk, action="ship")
        transfers.transfer_ship(transfer_id=transfer.pk, actor=actor_of(request))
        return self._answer(transfer.pk)

    @extend_schema(
        request=TransferReceiveSerializer, responses={200: TransferSerializer, 409: CONFLICT}
    )
    @action(detail=True, methods=["post"])
    def receive(self, request, pk=None):
        transfer = self._transfer_at(pk, action="receive")
        data = TransferReceiveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lines = data.validated_data.get("lines") or []
        ids = variant_ids_by_sku(skus=[line["sku"] for line in lines]) if lines else {}
        received: dict[int, int] = {}
        for line in lines:  # a SKU on two lines (two boxes counted apart): both arrived
            variant_id = ids[line["sku"]]
            received[variant_id] = received.get(variant_id, 0) + line["quantity"]
        transfers.transfer_receive(
            transfer_id=transfer.pk, received=received or None, actor=actor_of(request)
        )
        return self._answer(transfer.pk)

    @extend_schema(request=None, responses={200: TransferSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        transfer = self._transfer_at(pk, action="cancel")
        transfers.transfer_cancel(transfer_id=transfer.pk, actor=actor_of(request))
        return self._answer(transfer.pk)


class WebhookViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Subscribers to a channel's availability changes (a marketplace, a storefront cache):
    the worker POSTs each change to the URL, signed in `X-Signature` (hex HMAC-SHA256 of the
    body with the subscription's `secret`, given once, when it is registered: 201), at
    least once (a repeat has the same `X-Delivery-Id`) and not always in order: keep, per
    SKU, the change with the latest `as_of`. The same URL again is 200 with the
    subscription, without its secret. A channel's own integration
    (a client that is no till) registers and removes its URLs; staff without a store limit name
    the channel (store-limited staff only list them: 403 `location_forbidden`). URLs
    on private or local addresses are refused. DELETE stops the deliveries, pending retries
    included; their log stays."""

    queryset = WebhookSubscription.objects.none()
    serializer_class = WebhookSerializer
    filter_backends = []

    def get_queryset(self):
        qs = WebhookSubscription.objects.filter(is_active=True).select_related("channel")
        client = api_client_of(self.request)
        if client is not None:
            qs = qs.filter(channel_id=client.channel_id)
        return qs.order_by("-id")

    @extend_schema(
        request=WebhookInputSerializer,
        responses={200: WebhookSerializer, 201: WebhookCreatedSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, "header")],
    )
    @idempotent
    def create(self, request):
        data = WebhookInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        client = self._may_write()
        channel = channel_scope(client=client, code=data.validated_data.get("channel"))
        if channel is None:
            raise serializers.ValidationError({"channel": ["Name the channel."]})
        subscription, created = webhooks.webhook_subscribe(
            channel=channel, url=data.validated_data["url"]
        )
        if not created:  # already registered: its secret went to whoever registered it
            return Response(WebhookSerializer(subscription).data)
        return Response(WebhookCreatedSerializer(subscription).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        self._may_write()
        webhooks.webhook_unsubscribe(subscription_id=instance.pk)

    def _may_write(self):
        """The calling client (None for staff). A till is refused, and so is a store-limited
        staff member: a subscription receives every store's availability (as in the admin)."""
        client = api_client_of(self.request)
        if client is not None and client.is_till:
            raise LocationForbidden("A till does not subscribe: the channel's integration does.")
        if store_limit(user=self.request.user) is not None:
            raise LocationForbidden(
                "A store-limited staff member does not change a channel's webhooks: they "
                "receive every store's availability."
            )
        return client
