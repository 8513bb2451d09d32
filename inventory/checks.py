"""System checks (`manage.py check`, run by every management command and the web server)."""

from django.conf import settings
from django.core import checks

# The contract: published availability follows any stock change within a second.
SYNC_DEADLINE_MS = 1000


@checks.register()
def availability_sync_window(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """AVAILABILITY_SYNC_WINDOW_MS delays the sync of sales made while one runs: at or past
    the contract's second, the published availability would be late by design."""
    window = settings.AVAILABILITY_SYNC_WINDOW_MS
    if 0 <= window < SYNC_DEADLINE_MS // 2:
        return []
    return [
        checks.Error(
            f"AVAILABILITY_SYNC_WINDOW_MS is {window}: it must be between 0 and "
            f"{SYNC_DEADLINE_MS // 2 - 1}, so that a sale is published within the contract's "
            f"{SYNC_DEADLINE_MS} ms even when it waits a whole window and the sync after it.",
            id="inventory.E001",
        )
    ]
