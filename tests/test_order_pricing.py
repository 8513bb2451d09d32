"""Money exact to the cent: discounts spread without losing a cent, refunds add up."""

from decimal import Decimal

import pytest

from orders.pricing import money, refund_for, spread

D = Decimal


@pytest.mark.parametrize(
    ("amount", "weights", "expected"),
    [
        (D("10.00"), [D("1"), D("1"), D("1")], [D("3.34"), D("3.33"), D("3.33")]),
        (D("0.01"), [D("5"), D("5")], [D("0.01"), D("0.00")]),
        (D("5.00"), [D("19.90"), D("0.10")], [D("4.98"), D("0.02")]),  # a tie: first line
        (D("0.00"), [D("3"), D("4")], [D("0.00"), D("0.00")]),
        (D("7.77"), [D("0"), D("0")], [D("0.00"), D("0.00")]),
        (D("99.99"), [D("33.33")] * 3, [D("33.33")] * 3),
    ],
)
def test_spread_is_exact_to_the_cent(amount, weights, expected):
    parts = spread(amount, weights)
    assert parts == expected
    if sum(weights) > 0:
        assert sum(parts) == amount


def test_half_up_rounding():
    assert money(D("2.345")) == D("2.35")
    assert money(D("2.344")) == D("2.34")
    assert money(D("-2.345")) == D("-2.35")


def test_refunds_of_a_line_returned_piece_by_piece_add_up_to_what_was_paid():
    paid, sold = D("10.00"), 3  # 3.333... each
    first = refund_for(paid=paid, sold=sold, returning=1, returned_before=0, refunded_before=D("0"))
    second = refund_for(paid=paid, sold=sold, returning=1, returned_before=1, refunded_before=first)
    last = refund_for(
        paid=paid, sold=sold, returning=1, returned_before=2, refunded_before=first + second
    )
    # two units back are 6.67 of the 10.00, the second gives 6.67 - 3.33
    assert (first, second, last) == (D("3.33"), D("3.34"), D("3.33"))
    assert first + second + last == paid


def test_refunds_in_parts_are_rounded_on_the_line_s_returns_so_far():
    """Each return gets the rounded share of the units back so far, less what the line's
    earlier returns gave: 7.995 a unit comes back at 8.00, 7.99, 8.00, ..., never negative,
    and a line refunded ahead of its share (rounded per return before) gives nothing more
    until its share catches up."""
    paid, sold, given = D("79.95"), 10, []
    for n in range(sold):
        given.append(
            refund_for(
                paid=paid,
                sold=sold,
                returning=1,
                returned_before=n,
                refunded_before=sum(given, D(0)),
            )
        )
    assert given == [D("8.00"), D("7.99")] * 5 and sum(given) == paid
    ahead = refund_for(
        paid=D("0.15"), sold=10, returning=1, returned_before=8, refunded_before=D("0.16")
    )
    assert ahead == D("0.00")
