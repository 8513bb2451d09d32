"""Times and dates in the admin: shown in the business's time zone (TIME_ZONE), and date
drill-downs that only ever answer a page."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from inventory.services import StockLine, stock_receive
from orders.services import LineRequest, order_place
from tests.factories import ChannelPriceFactory, VariantFactory, make_staff

pytestmark = pytest.mark.django_db


def test_a_worker_heartbeat_is_named_by_its_local_time(settings):
    """The heartbeat's name on its admin page: the time it was last seen, in TIME_ZONE like
    every time the admin shows (it printed UTC, two hours off in a Paris summer)."""
    from omnichannel.models import WorkerHeartbeat

    settings.TIME_ZONE = "Europe/Paris"
    beat = WorkerHeartbeat(hostname="w1", seen_at=datetime(2025, 7, 1, 21, 30, tzinfo=UTC))
    assert str(beat) == "w1 @ 2025-07-01 23:30:00"


def test_the_order_page_shows_its_stock_movements_in_local_time(
    client, settings, monkeypatch, pos, store
):
    """The page shows the order's created_at in TIME_ZONE, and printed its ledger rows
    beside it in UTC: a sale at 23:30 in Paris on 31 March showed a movement at 21:30."""
    settings.TIME_ZONE = "Europe/Paris"
    tee = VariantFactory(sku="TEE")
    ChannelPriceFactory(variant=tee, channel=pos, amount=Decimal("10.00"))
    stock_receive(lines=[StockLine(tee.pk, store.pk, 1)], reference="delivery")
    monkeypatch.setattr(timezone, "now", lambda: datetime(2025, 3, 31, 21, 30, tzinfo=UTC))
    sale = order_place(
        channel=pos, fulfillment="in_store", location=store, lines=[LineRequest("TEE", 1)]
    )
    monkeypatch.undo()
    client.force_login(make_staff("root", superuser=True))
    page = client.get(f"/admin/orders/order/{sale.pk}/change/").content.decode()
    assert "2025-03-31 23:30 sale TEE@" in page
    assert "21:30" not in page


PAST_THE_CALENDAR = [
    # The drill-down of year 9999 runs to 10000, past Python's last date (ValueError).
    "/admin/orders/order/?created_at__year=9999",
    "/admin/analytics/nightlyrun/?run_date__year=9999",
    "/admin/catalog/historicalchannelprice/?history_date__year=9999",
    "/admin/axes/accessattempt/?attempt_time__year=9999",
    # December 9999 and its 31st end past it too (OverflowError).
    "/admin/orders/order/?created_at__year=9999&created_at__month=12",
    "/admin/inventory/stockmovement/?created_at__year=9999&created_at__month=12&created_at__day=31",
    # No int Python's dates take (OverflowError), or no month.
    "/admin/orders/order/?created_at__year=99999999999999999999",
    "/admin/orders/order/?created_at__year=2025&created_at__month=99999999999999999999",
    # A year lookup of another date than the drill-down's: no filter of its page at all
    # (tests/test_admin_lookups.py), answered the same way.
    "/admin/orders/return/?created_at__year=0",
    "/admin/orders/return/?created_at__year=10000",
    "/admin/orders/return/?created_at__year__gte=0",
    "/admin/orders/return/?created_at__iso_year=9999",
    "/admin/orders/return/?created_at__date__year=0",
    "/admin/inventory/transfer/?shipped_at__year=-1",
    "/admin/auth/user/?date_joined__year=0",
    "/admin/analytics/cohortretention/?cohort__year=10000",
]


@pytest.mark.parametrize("page", PAST_THE_CALENDAR)
def test_an_admin_date_lookup_past_the_calendar_is_an_invalid_lookup_not_a_500(client, page):
    """Django runs these lookups after its own checks, and its dates end in year 9999:
    the page was a 500. It answers as to any lookup it cannot run: back to the list, ?e=1."""
    client.raise_request_exception = False
    client.force_login(make_staff("root", superuser=True))
    answer = client.get(page)
    assert answer.status_code == 302, answer.status_code
    assert answer["Location"] == page.split("?")[0] + "?e=1"


@pytest.mark.parametrize(
    "page",
    [
        "/admin/orders/order/?created_at__year=2025",
        "/admin/orders/order/?created_at__year=1&created_at__month=1&created_at__day=1",
        "/admin/orders/order/?created_at__year=9998&created_at__month=12&created_at__day=31",
        "/admin/analytics/nightlyrun/?run_date__year=2025&run_date__month=6",
    ],
)
def test_a_date_lookup_within_the_calendar_still_lists(client, page):
    client.force_login(make_staff("root", superuser=True))
    assert client.get(page).status_code == 200


def test_the_drill_down_still_filters_to_its_day(client, settings, pos, store):
    from datetime import timedelta

    from orders.models import Order

    settings.TIME_ZONE = "Europe/Paris"
    tee = VariantFactory(sku="TEE")
    ChannelPriceFactory(variant=tee, channel=pos, amount=Decimal("10.00"))
    stock_receive(lines=[StockLine(tee.pk, store.pk, 2)], reference="delivery")
    sales = [
        order_place(
            channel=pos, fulfillment="in_store", location=store, lines=[LineRequest("TEE", 1)]
        )
        for _ in range(2)
    ]
    Order.objects.filter(pk=sales[1].pk).update(created_at=timezone.now() - timedelta(days=2))
    day = timezone.localdate(Order.objects.get(pk=sales[0].pk).created_at)
    client.force_login(make_staff("root", superuser=True))
    page = client.get(
        "/admin/orders/order/",
        {"created_at__year": day.year, "created_at__month": day.month, "created_at__day": day.day},
    )
    assert [o.pk for o in page.context["cl"].result_list] == [sales[0].pk]


def test_every_admin_page_refuses_a_date_past_the_calendar():
    """So that a new admin cannot forget it: every registered page uses the mixin, those of
    other packages (axes, auth) re-registered with it."""
    from django.contrib import admin

    from omnichannel.admin_base import DateLookupsMixin

    forgot = [
        f"{model._meta.label} ({type(model_admin).__name__})"
        for model, model_admin in admin.site._registry.items()
        if not isinstance(model_admin, DateLookupsMixin)
    ]
    assert not forgot
