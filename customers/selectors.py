"""Read queries on members."""

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from omnichannel.selectors import StoreLimit

from .models import Member, MemberAlias, MemberChannel, MemberEvent, PointsEntry


def member_list() -> QuerySet[Member]:
    seen = MemberChannel.objects.select_related("channel", "location")
    return (
        Member.objects.select_related("score")
        .prefetch_related(Prefetch("seen_in", queryset=seen))
        .order_by("-id")
    )


def contact_is(*, kind: str, value: str) -> Q:
    """The member whose email (kind "email") or phone this normalized value is: their own,
    or one kept from a member merged into them (MemberAlias)."""
    aliases = MemberAlias.objects.filter(kind=kind, value=value).values("member_id")
    return Q(**{kind: value}) | Q(pk__in=aliases)


def alias_holder(*, kind: str, value: str | None, other_than: int | None) -> int | None:
    """The member (other than `other_than`) an email or phone is an alias of, if any."""
    if not value:
        return None
    aliases = MemberAlias.objects.filter(kind=kind, value=value).exclude(member_id=other_than)
    return aliases.values_list("member_id", flat=True).first()


def member_survivor(*, member_id: int) -> int | None:
    """Whose a member id is now: its own member's; the member it was merged into since,
    through every later merge (MemberEvent merged, other_id_ref -> member_id_ref); None
    when it, or a member it was merged into, was erased since. Member.DoesNotExist for an
    id no member ever had. One query for a member still there, two per merge followed."""
    while not Member.objects.filter(pk=member_id).exists():
        fate = (
            MemberEvent.objects.filter(
                Q(kind=MemberEvent.Kind.MERGED, other_id_ref=member_id)
                | Q(kind=MemberEvent.Kind.ERASED, member_id_ref=member_id)
            )
            .values_list("kind", "member_id_ref")
            .first()
        )
        if fate is None:
            raise Member.DoesNotExist(f"No member ever had the id {member_id}.")
        kind, survivor_id = fate
        if kind == MemberEvent.Kind.ERASED:
            return None
        member_id = survivor_id  # merged away: it existed when the merge took it
    return member_id


def points_ledger(*, member_id: int, limit: StoreLimit = None) -> QuerySet[PointsEntry]:
    """A member's points entries. For a store-limited staff member each entry says whether
    its order is one they may see (`order_visible`): every entry is shown, since the balance
    is their sum, but not the number of another store's order."""
    return with_order_visibility(
        PointsEntry.objects.filter(member_id=member_id).select_related("order", "ret"),
        limit=limit,
    )


def with_order_visibility(entries: QuerySet[PointsEntry], *, limit: StoreLimit):
    if limit is None:
        return entries
    from orders.models import Order
    from orders.selectors import orders_within_limit

    seen = orders_within_limit(Order.objects.filter(pk=OuterRef("order_id")), limit=limit)
    return entries.annotate(order_visible=Exists(seen))


def order_number_seen(entry: PointsEntry) -> str | None:
    """The entry's order number, unless it is hidden from the reader (points_ledger)."""
    if entry.order_id is None or not getattr(entry, "order_visible", True):
        return None
    return entry.order.number
