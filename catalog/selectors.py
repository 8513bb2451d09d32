"""Read queries on the catalog, shaped for a channel: what it publishes and at what price."""

from datetime import datetime
from decimal import Decimal

from django.db.models import (
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
    the channel no longer sells, with no variants listed: how a storefront syncing
    incrementally learns to take a product down (discontinued, or its last price there
    unpublished or deleted). Only those the channel sold once (`_was_sold_in`): a product
    never priced there is not shown to it.
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
    return qs.filter(listed | Q(_was_sold_in(channel=channel), updated_at__gte=left_since))


def _was_sold_in(*, channel: Channel | None) -> Q:
    """The product has, or had, a variant with a published price in `channel`: in the price
    history (which outlives a price deleted or a variant moved to another product, read
    with the variant history for the product it was on), or a published price now (a row
    older than its history). Staff without a channel see the whole catalog anyway."""
    if channel is None:
        return Q()
    published = ChannelPrice.history.filter(channel=channel, published=True)
    was_on_product = Variant.history.filter(
        product_id=OuterRef("pk"), id__in=published.values("variant_id")
    )
    priced_now = ChannelPrice.objects.filter(
        channel=channel, published=True, variant__product=OuterRef("pk")
    )
    return Exists(was_on_product) | Exists(priced_now)


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
