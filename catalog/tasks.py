from celery import shared_task

from . import services

BATCH = 500


@shared_task(ignore_result=True, acks_late=True)
def refresh_product_search(product_ids: list[int]) -> int:
    """Recompute the search text of these products (after an import or an admin edit)."""
    changed = 0
    for start in range(0, len(product_ids), BATCH):
        changed += services.product_refresh_search(product_ids=product_ids[start : start + BATCH])
    return changed
