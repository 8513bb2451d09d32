"""Read queries on orders, confined to what the caller may see."""

from django.db.models import Prefetch, Q, QuerySet

from omnichannel.models import ApiClient

from .models import Allocation, Order, OrderLine


def _with_details(qs: QuerySet[Order]) -> QuerySet[Order]:
    lines = OrderLine.objects.prefetch_related(
        Prefetch("allocations", queryset=Allocation.objects.select_related("location"))
    )
    return qs.select_related("channel", "location", "pickup_location").prefetch_related(
        Prefetch("lines", queryset=lines), "payments"
    )


def order_list(*, client: ApiClient | None) -> QuerySet[Order]:
    """A client sees its channel's orders, and a POS also the pickups at its store, whichever
    channel took them. Staff see every order."""
    qs = Order.objects.all()
    if client is not None:
        visible = Q(channel_id=client.channel_id)
        if client.location_id:
            visible |= Q(pickup_location_id=client.location_id)
        qs = qs.filter(visible)
    return _with_details(qs).order_by("-id")


def order_lookup(*, key: str) -> Order | None:
    """An order by id or by number, for any channel: a return can happen at any store."""
    qs = _with_details(Order.objects.all())
    if key.isdigit():
        return qs.filter(pk=int(key)).first()
    return qs.filter(number=key).first()
