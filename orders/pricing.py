"""Money rules for orders, as pure functions: two decimal places, half-up rounding, and no
cent ever created or lost when an amount is split or refunded in parts."""

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def money(value) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def spread(amount: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Split `amount` across `weights` in proportion, to the cent, summing exactly to
    `amount` (largest remainder: leftover cents go to the largest fractional parts)."""
    amount = money(amount)
    total = sum(weights, ZERO)
    if not weights:
        return []
    if total == 0:
        return [ZERO for _ in weights]
    cents = int(amount / CENT)
    exact = [Decimal(cents) * w / total for w in weights]
    floors = [int(x) for x in exact]
    leftover = cents - sum(floors)
    by_remainder = sorted(
        range(len(weights)), key=lambda i: (exact[i] - floors[i], -i), reverse=True
    )
    for i in by_remainder[:leftover]:
        floors[i] += 1
    return [Decimal(c) * CENT for c in floors]


def refund_for(
    *, paid: Decimal, sold: int, returning: int, returned_before: int, refunded_before: Decimal
) -> Decimal:
    """What to give back for `returning` units of a line on which `paid` was paid for `sold`
    units, `returned_before` of them already refunded `refunded_before`. Cumulative: the
    line's returns so far get their share of `paid`, rounded to the cent, less what the
    earlier ones gave, so rounding never gathers across returns (ten units of 7.995 come
    back at 7.99 or 8.00 each, not nine at 8.00 and the last at 7.95) and no return gets a
    negative amount (a line refunded ahead of its share, by rounding before this rule, gives
    nothing until its share catches up). The return that brings the line back to zero gets
    exactly what is left, so the refunds of a line always add up to what was paid for it."""
    if returned_before + returning >= sold:
        return money(paid - refunded_before)
    return max(ZERO, money(paid * (returned_before + returning) / sold) - refunded_before)
