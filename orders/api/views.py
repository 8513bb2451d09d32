import django_filters
from django.db.models import Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from inventory.api.views import actor_of
from omnichannel.api.filters import IdFilter, UtcIsoDateTimeFilter
from omnichannel.api.pagination import NewestFirstPagination
from omnichannel.api.schema import CONFLICT, error
from omnichannel.auth import api_client_of
from omnichannel.errors import ChannelForbidden, LocationForbidden, UnknownLocation
from omnichannel.idempotency import idempotent, idempotent_each
from omnichannel.models import Location
from omnichannel.selectors import channel_scope, location_for_write, store_limit

from .. import pos_sync, services
from ..models import Order, Return
from ..selectors import (
    ORDER_VALUES,
    order_changeable,
    order_id_lookup,
    order_list,
    order_location_ids,
    order_lookup,
    order_page_details,
)
from .serializers import (
    OrderInputSerializer,
    OrderSerializer,
    PosSyncInputSerializer,
    PosSyncOutputSerializer,
    ReturnInputSerializer,
    ReturnSerializer,
    order_answer,
)

IDEMPOTENCY = OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, "header")


class OrderFilter(django_filters.FilterSet):
    channel = django_filters.CharFilter(field_name="channel__code", max_length=40)
    status = django_filters.ChoiceFilter(choices=Order.Status.choices)
    location = django_filters.CharFilter(method="filter_location", max_length=40)
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    number = django_filters.CharFilter(max_length=40)
    member = IdFilter(field_name="member_id", help_text="The member's id.")

    class Meta:
        model = Order
        fields = ["channel", "status", "member", "location", "created_after", "number"]

    def filter_location(self, qs, name, value):
        """Orders served from, sold at or collected at the location."""
        return qs.filter(
            Q(location__code=value)
            | Q(pickup_location__code=value)
            | Q(lines__allocations__location__code=value)
        ).distinct()


def _location(code: str | None) -> Location | None:
    if not code:
        return None
    found = Location.objects.filter(code=code).first()
    if found is None:
        raise UnknownLocation(location=code)
    return found


def _confine_to_store_limit(request, fields) -> None:
    """A store-limited staff member places orders only on their stores' stock: the store of
    the sale, the pickup store, or the location a shipped order is served from, which they
    must then name (the routing might pick another store)."""
    limit = store_limit(user=request.user)
    if limit is None:
        return
    pickup = fields["fulfillment"] == Order.Fulfillment.PICKUP
    where = fields.get("pickup_location") if pickup else fields.get("location")
    if where:
        location_for_write(client=None, code=where, limit=limit)
    elif fields["fulfillment"] == Order.Fulfillment.SHIP:
        raise LocationForbidden(
            "Your staff account is limited to some stores: name the `location` to ship from."
        )


class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Orders from every channel. `orders/{id or number}/` finds any order (returns happen
    at any store); lists show the caller's channel, and a POS also the pickups at its store.
    A store-limited staff member sees the orders sold at, collected at or served from their
    stores (others are 404) and moves on only those touching no other store (403)."""

    pagination_class = NewestFirstPagination
    queryset = Order.objects.none()
    serializer_class = OrderSerializer
    filterset_class = OrderFilter
    lookup_value_regex = r"[^/]+"

    def get_queryset(self):
        return order_list(
            client=api_client_of(self.request), limit=store_limit(user=self.request.user)
        )

    def list(self, request, *args, **kwargs):
        """A page of orders read as plain values (see selectors.ORDER_VALUES), each answered
        as `orders/{id}/` answers it."""
        orders = self.filter_queryset(self.get_queryset()).values(*ORDER_VALUES)
        page = self.paginate_queryset(orders)
        return self.get_paginated_response([order_answer(row) for row in order_page_details(page)])

    def get_object(self):
        """Any order for a POS client (it takes returns for every channel) and for staff
        without a store limit; another client sees only its own channel's orders, a
        store-limited staff member only their stores' orders."""
        order = order_lookup(key=self.kwargs["pk"], limit=store_limit(user=self.request.user))
        client = api_client_of(self.request)
        if order is None or (
            client is not None and not client.is_till and order.channel_id != client.channel_id
        ):
            raise NotFound("No order has that id or number.")
        return order

    @extend_schema(
        request=OrderInputSerializer,
        responses={201: OrderSerializer, 409: CONFLICT},
        parameters=[IDEMPOTENCY],
    )
    @idempotent
    def create(self, request):
        data = OrderInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        client = api_client_of(request)
        channel = channel_scope(client=client, code=fields.get("channel"))
        if channel is None:
            raise ValidationError({"channel": ["Name the channel of the order."]})
        location = _location(fields.get("location"))
        if fields["fulfillment"] == Order.Fulfillment.IN_STORE and client is not None:
            if not client.is_till:
                raise LocationForbidden("Only a POS client sells in store.")
            if location is not None and location.pk != client.till_location_id:
                raise LocationForbidden(location=location.code)
            location = client.location
        _confine_to_store_limit(request, fields)
        order = services.order_place(
            channel=channel,
            fulfillment=fields["fulfillment"],
            member_ref=fields.get("member"),
            redeem_points=fields.get("redeem_points", 0),
            lines=[services.LineRequest(**line) for line in fields["lines"]],
            location=location,
            pickup_location=_location(fields.get("pickup_location")),
            payments=[services.PaymentRequest(**p) for p in fields.get("payments", [])],
            discount=fields.get("discount", services.ZERO),
            actor=actor_of(request),
        )
        # The service hands the order back with what it wrote attached: no re-read.
        return Response(OrderSerializer(order).data, status=status.HTTP_201_CREATED)

    def _transition(self, request, action_name: str) -> Response:
        order = self.get_object()
        client = api_client_of(request)
        if client is not None:
            if action_name in ("ready_for_pickup", "picked_up"):
                # A till hands over pickups at its own store only, whichever channel took
                # them; the channel's own system those of its channel.
                if client.is_till:
                    allowed = client.till_location_id == order.pickup_location_id
                else:
                    allowed = client.is_channel_system and client.channel_id == order.channel_id
            elif client.is_till:
                # ship, cancel: an order of its channel held wholly at its own store (stock
                # released or leaving there only), as order_changeable limits staff.
                own_store = {client.till_location_id}
                allowed = (
                    client.channel_id == order.channel_id and order_location_ids(order) <= own_store
                )
            elif action_name == "ship":
                allowed = client.is_channel_system and client.channel_id == order.channel_id
            else:  # cancel: the channel that took the order
                allowed = client.channel_id == order.channel_id
            if not allowed:
                raise ChannelForbidden("This API client may not do that to this order.")
        if not order_changeable(order, limit=store_limit(user=request.user)):
            raise LocationForbidden(
                "This order also involves a store outside your staff account's limit."
            )
        moved = services.order_transition(
            order_id=order.pk, action=action_name, actor=actor_of(request)
        )
        # A transition changes the order's own row (status, points earned, when), never its
        # lines, allocations or payments: the answer takes the row the service wrote and the
        # rest as get_object loaded it, instead of reading all of it again (4 statements).
        for field in Order._meta.concrete_fields:
            setattr(order, field.attname, getattr(moved, field.attname))
        return Response(OrderSerializer(order).data)

    @extend_schema(request=None, responses={200: OrderSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._transition(request, "cancel")

    @extend_schema(request=None, responses={200: OrderSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"], url_path="ready-for-pickup")
    def ready_for_pickup(self, request, pk=None):
        return self._transition(request, "ready_for_pickup")

    @extend_schema(request=None, responses={200: OrderSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"], url_path="picked-up")
    def picked_up(self, request, pk=None):
        return self._transition(request, "picked_up")

    @extend_schema(request=None, responses={200: OrderSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def ship(self, request, pk=None):
        return self._transition(request, "ship")


class ReturnView(generics.GenericAPIView):
    """Goods come back at any store, whichever channel sold them. A POS client takes
    returns at its own store, a store-limited staff member at one of their stores; either
    may name any order, as a till does ("return anywhere")."""

    queryset = Return.objects.none()
    serializer_class = ReturnInputSerializer

    @extend_schema(
        request=ReturnInputSerializer,
        responses={
            201: ReturnSerializer,
            # The order is named in the body, not the path: the schema's hook does not add it.
            404: error("`not_found`: no order has that id or number."),
            409: CONFLICT,
        },
        parameters=[IDEMPOTENCY],
    )
    @idempotent
    def post(self, request):
        data = ReturnInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        client = api_client_of(request)
        location = location_for_write(
            client=client, code=fields["location"], limit=store_limit(user=request.user)
        )
        order_id = order_id_lookup(key=fields["order"])
        if order_id is None:
            raise NotFound("No order has that id or number.")
        ret = services.order_return(
            order_id=order_id,
            location=location,
            lines=[services.LineRequest(**line) for line in fields["lines"]],
            restock=fields["restock"],
            actor=actor_of(request),
        )
        return Response(ReturnSerializer(ret).data, status=status.HTTP_201_CREATED)


class PosSyncView(generics.GenericAPIView):
    """Sales a till made while offline. Per sale: `accepted`, `accepted_oversold` (stock
    went below zero, flagged for review) or `rejected` with a code. Replaying a batch is
    safe: each sale is recorded once per till, by its `client_id`."""

    queryset = Order.objects.none()
    serializer_class = PosSyncInputSerializer

    @extend_schema(
        request=PosSyncInputSerializer,
        responses={200: PosSyncOutputSerializer},
        parameters=[IDEMPOTENCY],
    )
    @idempotent_each  # each sale commits alone, once per till by its client_id
    def post(self, request):
        client = api_client_of(request)
        if client is None or not client.is_till:
            raise LocationForbidden("Only a POS client (with its store) syncs offline sales.")
        data = PosSyncInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sales = [
            pos_sync.InvalidSale(client_id=sale["client_id"], detail=sale["invalid"])
            if "invalid" in sale
            else pos_sync.OfflineSale(
                client_id=sale["client_id"],
                lines=[services.LineRequest(**line) for line in sale["lines"]],
                payments=[services.PaymentRequest(**p) for p in sale.get("payments", [])],
                discount=sale.get("discount", services.ZERO),
                sold_at=sale.get("sold_at"),
                member=sale.get("member"),
            )
            for sale in data.validated_data["sales"]
        ]
        results = pos_sync.pos_sync(client=client, sales=sales)
        body = {
            "results": [
                {
                    "client_id": r.client_id,
                    "status": r.status,
                    "order": {"id": r.order.pk, "number": r.order.number} if r.order else None,
                    "code": r.code,
                    "detail": r.detail,
                }
                for r in results
            ]
        }
        return Response(PosSyncOutputSerializer(body).data)
