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
