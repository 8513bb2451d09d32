"""Read queries on the catalog, shaped for a channel: what it publishes and at what price."""

from datetime import datetime
from decimal import Decimal

from django.db.models import (
    DateTimeField,
    DecimalField,
    Exists,
    F,
    FilteredRelation,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Value,
)
from django.db.models.functions import Greatest

from omnichannel.compiled import CompiledQuery
from omnichannel.errors import DomainError
from omnichannel.models import Channel

from .models import Category, ChannelPrice, Product, Variant


def variant_list(*, channel: Channel | None) -> QuerySet[Variant]:
    """Active variants of active products, annotated with `price` in `channel`.

    With a channel: only the variants that have a published price there. Without one (staff
    browsing the whole catalog): every active variant, `price` None. What a channel sells is
    the same set (`selling_prices`): a till never scans what an order would refuse.
    """
    qs = Variant.objects.filter(is_active=True, product__is_active=True)
    if channel is None:
        return qs.annotate(
            price=Value(None, output_field=DecimalField(max_digits=12, decimal_places=2))
        )
    return (
        qs.annotate(
            channel_price=FilteredRelation(
                "prices", condition=Q(prices__channel=channel, prices__published=True)
            )
        )
        .filter(channel_price__isnull=False)
        .annotate(price=F("channel_price__amount"))
    )


def product_list(
    *, channel: Channel | None, left_since: datetime | None = None
) -> QuerySet[Product]:
    """Active products with their category and channel-priced variants, in three queries.

    With `left_since` (the time of `updated_since`), also the products changed since that
    the channel no longer lists, with no variants listed: how a storefront syncing
    incrementally learns to take a product down (discontinued, or its last price there
    unpublished or deleted). Only those the channel listed at that time or after it
    (`_listed_since`): what a storefront that last read the feed then may hold. A product
    it never listed (a launch staged inactive with its prices set, a product none of whose
    variants was priced there while on it) is not shown to it.
    """
    variants = variant_list(channel=channel).order_by("sku")
    qs = (
        Product.objects.select_related("category")
        .prefetch_related(Prefetch("variants", queryset=variants, to_attr="listed_variants"))
        .order_by("id")
    )
    if channel is None:
        listed = Q(is_active=True)
    else:
        listed = Exists(variant_list(channel=channel).filter(product=OuterRef("pk")))
    if left_since is None:
        return qs.filter(listed)
    changed = Q(updated_at__gte=left_since)
    if channel is None:  # staff see the whole catalog anyway
        return qs.filter(listed | changed)
    # The history is read for these only: changed since, and not listed now. As an id list,
    # not an EXISTS per product: PostgreSQL costs a correlated one in an OR as if run for
    # every product, and JIT-compiles the query for most of a second.
    left = Product.objects.filter(changed).exclude(listed).values("id")
    return qs.filter(
        listed | Q(pk__in=_listed_since(channel=channel, since=left_since, among=left))
    )


def _outer(name: str, depth: int) -> OuterRef:
    """`name` of the query `depth` levels out of this subquery."""
    ref = name
    for _ in range(depth):
        ref = OuterRef(ref)
    return ref


def _replaced(history, *, depth: int, by) -> Exists:
    """The history row `depth` queries out was replaced by a later row of its object dated
    at or before `by`: it was no longer the object's state then. A row is the state from
    its `history_date` until the next one (a deletion `-` ends the object); rows of one
    date follow their `history_id`."""
    date = _outer("history_date", depth)
    later = Q(history_date__gt=date) | Q(
        history_date=date, history_id__gt=_outer("history_id", depth)
    )
    return Exists(history.filter(later, id=_outer("id", depth), history_date__lte=by))


def _listed_since(*, channel: Channel, since: datetime, among: QuerySet) -> QuerySet:
    """Ids of the products `among` listed in `channel` at some moment at or after `since`,
    by the change history: at one moment the product active, a variant on it and active,
    and that variant's price in the channel published. Not only at `since`: a storefront
    asks from a little before its last poll, and may hold a product listed in between.
    The moment can be taken as the latest of `since` and the three history rows' dates:
    each row must still be its object's state then. Rows replaced before `since` are left
    out first (the history before it is long).

    Every catalog row has history (migration 0002 started it for the rows before it, the
    demo seed writes it for its bulk rows): a row without any (written in bulk past the
    models) is taken as never listed, so it is never shown by mistake (nor its take-down).
    """
    products, variants, prices = (
        model.history.exclude(history_type="-") for model in (Product, Variant, ChannelPrice)
    )
    at = Value(since, output_field=DateTimeField())
    moment = Greatest(
        at,
        OuterRef(OuterRef("history_date")),  # the variant's row
        OuterRef("history_date"),  # the price's
        "history_date",  # the product's
        output_field=DateTimeField(),
    )
    product_then = (
        products.filter(id=OuterRef(OuterRef("product_id")), is_active=True)
        .annotate(moment=moment)
        .filter(
            ~_replaced(Product.history.all(), depth=1, by=OuterRef("moment")),
            ~_replaced(ChannelPrice.history.all(), depth=2, by=OuterRef("moment")),
            ~_replaced(Variant.history.all(), depth=3, by=OuterRef("moment")),
        )
    )
    price_then = prices.filter(
        ~_replaced(ChannelPrice.history.all(), depth=1, by=at),
        Exists(product_then),
        variant_id=OuterRef("id"),
        channel=channel,
        published=True,
    )
    variant_then = variants.filter(
        ~_replaced(Variant.history.all(), depth=1, by=at),
        Exists(price_then),
        product_id__in=among,
        is_active=True,
    )
    return variant_then.values("product_id")


def products_listing_skus(
    qs: QuerySet[Product], *, channel: Channel | None, skus: list[str]
) -> QuerySet[Product]:
    """`qs` narrowed to the products that list one of `skus` in `channel`: a variant the
    channel does not sell (unpublished, unpriced, discontinued) finds nothing, as it is not
    among the product's variants there."""
    listed = variant_list(channel=channel).filter(product=OuterRef("pk"), sku__in=skus)
    return qs.filter(Exists(listed))


def variant_lookup(*, channel: Channel | None) -> QuerySet[Variant]:
    """The POS scan path: variants with their product and category."""
    return variant_list(channel=channel).select_related("product__category").order_by("sku")


def category_subtree_ids(*, slug: str) -> list[int] | None:
    """Ids of the category with `slug` and all below it; None when no such category.

    The tree is small (hundreds of rows), so it is read whole in one query.
    """
    rows = list(Category.objects.values_list("id", "slug", "parent_id"))
    root = next((row[0] for row in rows if row[1] == slug), None)
    if root is None:
        return None
    children: dict[int | None, list[int]] = {}
    for cid, _slug, parent_id in rows:
        children.setdefault(parent_id, []).append(cid)
    found, stack = [], [root]
    while stack:
        cid = stack.pop()
        found.append(cid)
        stack.extend(children.get(cid, []))
    return found


class UnknownSku(DomainError):
    code = "unknown_sku"
    default_detail = "No variant has that SKU."


def variant_ids_by_sku(*, skus: list[str]) -> dict[str, int]:
    """Variant ids for these SKUs in one query; any unknown SKU is a 400 `unknown_sku`."""
    found = dict(Variant.objects.filter(sku__in=set(skus)).values_list("sku", "id"))
    missing = [sku for sku in skus if sku not in found]
    if missing:
        raise UnknownSku(f"Unknown SKU: {missing[0]}.", sku=missing[0])
    return found


def _published_prices(channel_id, skus, *, active_only: bool):
    prices = ChannelPrice.objects.filter(
        channel_id=channel_id, published=True, variant__sku__in=skus
    )
    if active_only:  # discontinued: hidden from the catalog, not sold either
        prices = prices.filter(variant__is_active=True, variant__product__is_active=True)
    return prices.order_by().values_list(  # the model's ordering would join for nothing
        "variant_id", "variant__sku", "variant__name", "variant__product__name", "amount"
    )


_SELLING_PRICES = CompiledQuery(
    lambda channel_id, skus: _published_prices(channel_id, skus, active_only=True)
)
_SOLD_PRICES = CompiledQuery(
    lambda channel_id, skus: _published_prices(channel_id, skus, active_only=False)
)


def prices_as_of(*, channel_id: int, variant_ids: list[int], when) -> dict[int, Decimal]:
    """{variant_id: amount} of the channel's price at `when`, from the price history (the
    last change at or before it), for the variants whose price changed since: what an
    offline sale was rung up at. A variant priced the same since `when` is left out."""
    changes = (
        ChannelPrice.history.filter(channel_id=channel_id, variant_id__in=variant_ids)
        .order_by("variant_id", "-history_date", "-history_id")
        .values_list("variant_id", "history_date", "amount")
    )
    then: dict[int, Decimal] = {}
    changed_since: set[int] = set()
    for variant_id, at, amount in changes:
        if at > when:
            changed_since.add(variant_id)
        elif variant_id not in then:
            then[variant_id] = amount
    return {v: amount for v, amount in then.items() if v in changed_since}


def prices_sold_at(*, channel_id: int, skus: list[str], when) -> dict[str, tuple]:
    """`selling_prices` as the channel stood at `when`, from the price history, for SKUs
    with no published price now: {sku: (variant_id, variant name, product name, price)} of
    those whose last price record at or before `when` was published and not a deletion.
    What an offline sale was rung up at, its price unpublished or deleted since."""
    records = (
        ChannelPrice.history.filter(
            channel_id=channel_id, variant__sku__in=skus, history_date__lte=when
        )
        .order_by("variant_id", "-history_date", "-history_id")
        .values_list(
            "variant_id",
            "variant__sku",
            "variant__name",
            "variant__product__name",
            "amount",
            "published",
            "history_type",
        )
    )
    then: dict[str, tuple] = {}
    seen: set[int] = set()
    for variant_id, sku, name, product, amount, published, kind in records:
        if variant_id in seen:
            continue  # an older record: the last one says how the price stood
        seen.add(variant_id)
        if published and kind != "-":
            then[sku] = (variant_id, name, product, amount)
    return then


def selling_prices(
    *, channel_id: int, skus: list[str], discontinued_too: bool = False
) -> dict[str, tuple]:
    """{sku: (variant_id, variant name, product name, price)} for the SKUs the channel sells
    (a published price there, the variant and its product active, as `variant_list` shows
    them): what an order's lines are priced from, on every sale. `discontinued_too` for a
    sale that already happened (offline at a till): goods taken off sale since still left."""
    query = _SOLD_PRICES if discontinued_too else _SELLING_PRICES
    return {
        sku: (variant_id, name, product, amount)
        for variant_id, sku, name, product, amount in query.rows(channel_id, skus)
    }
