"""Shared checks for inventory tests."""

from django.db.models import Sum

from inventory.models import StockLevel, StockMovement


def assert_ledger_matches_levels() -> None:
    """Summing the ledger per (variant, location) gives exactly every stock level."""
    sums = {
        (row["variant_id"], row["location_id"]): (row["on_hand"], row["reserved"])
        for row in StockMovement.objects.values("variant_id", "location_id").annotate(
            on_hand=Sum("delta"), reserved=Sum("reserved_delta")
        )
    }
    for level in StockLevel.objects.all():
        expected = sums.pop((level.variant_id, level.location_id), (0, 0))
        assert (level.on_hand, level.reserved) == expected, (level, expected)
    assert not sums, f"ledger rows without a stock level: {sums}"
