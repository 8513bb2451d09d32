"""Write operations on the catalog."""

import logging
from collections.abc import Iterable

from django.db import transaction

from .models import Product

log = logging.getLogger(__name__)


def _search_text(product: Product) -> str:
    parts = [product.code, product.name, product.description]
    if product.category_id:
        parts.append(product.category.name)
    for variant in product.variants.all():
        parts += [variant.sku, variant.barcode or "", variant.name]
        parts += [str(value) for value in (variant.attributes or {}).values()]
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
