"""Write operations on the catalog."""

import logging
from collections.abc import Iterable

from django.db import transaction

from .models import Category, Product, touch_products
from .selectors import category_subtree_ids

log = logging.getLogger(__name__)


def _search_text(product: Product) -> str:
    parts = [product.code, product.name, product.description]
    if product.category_id:
        parts.append(product.category.name)
    for variant in product.variants.all():
        parts += [variant.sku, variant.barcode or "", variant.name]
        attributes = variant.attributes
        if isinstance(attributes, dict):  # a row saved before the model refused anything else
            parts += [str(value) for value in attributes.values()]
    return " ".join(part for part in parts if part).lower()


@transaction.atomic
def product_refresh_search(*, product_ids: Iterable[int]) -> int:
    """Recompute the text that `search` matches, for these products. Safe to run twice.

    Writes with a queryset update so `updated_at` (what integrators sync on) is untouched:
    the search text is derived, not a change to the product.
    """
    products = (
        Product.objects.filter(pk__in=list(product_ids))
        .select_related("category")
        .prefetch_related("variants")
    )
    changed = 0
    for product in products:
        text = _search_text(product)
        if text != product.search_text:
            Product.objects.filter(pk=product.pk).update(search_text=text)
            changed += 1
    return changed


def product_refresh_search_later(*, product_ids: Iterable[int]) -> None:
    """Queue the refresh once the current transaction commits (nothing if it rolls back)."""
    ids = sorted(set(product_ids))
    if not ids:
        return
    transaction.on_commit(lambda: _queue_refresh(ids))


def _queue_refresh(ids: list[int]) -> None:
    """After the commit, in the request: with the broker down the edit stands (it committed)
    and the refresh runs here instead, so a search never misses an edited product."""
    from kombu.exceptions import OperationalError as BrokerUnavailable

    from .tasks import refresh_product_search

    try:
        refresh_product_search.delay(ids)
    except BrokerUnavailable as exc:
        log.warning("search refresh not queued (%s); refreshing %d products now", exc, len(ids))
        product_refresh_search(product_ids=ids)


@transaction.atomic
def category_edited(*, category: Category, changed: Iterable[str]) -> None:
    """What a category's edit changes on its products, once it is saved.

    A product shows its category's slug and name, and the `category` filter takes in the
    subcategories: a category renamed, given another slug or moved elsewhere in the tree
    changes the products in it and below it, for `updated_since`. Its name is also in the
    search text of the products directly in it.
    """
    changed = set(changed)
    if not changed & {"name", "slug", "parent"}:
        return
    products = Product.objects.filter(category_id__in=category_subtree_ids(slug=category.slug))
    touch_products(products.values_list("pk", flat=True))
    if "name" in changed:
        product_refresh_search_later(product_ids=category.products.values_list("pk", flat=True))
