"""Admin lists run the same number of queries at 3 rows as at 30: every related row a list
names is joined, not read one query a row (the nullable foreign keys most of all, which the
admin's automatic select_related() skips)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from catalog.models import ChannelPrice
from customers.models import Member, MemberEvent
from inventory.services import Actor, stock_adjust
from tests.factories import ChannelPriceFactory, VariantFactory, make_api_client, make_staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client):
    client.force_login(make_staff("root", superuser=True))
    return client


def queries(browser, url: str) -> int:
    browser.get(url)  # warms Django's caches (content types), read once a process
    with CaptureQueriesContext(connection) as ctx:
        response = browser.get(url)
    assert response.status_code == 200, response.content[:500]
    return len(ctx.captured_queries)


def test_the_ledger_list_of_a_tills_movements_reads_each_till_once(browser, pos, store):
    """Each row names its API client, whose name shows its store (ApiClient.__str__): the
    list joined the client's channel, not its location, one query a row (11 at 3, 38 at 30)."""
    till, _ = make_api_client(pos, store, name="till-1")
    variant = VariantFactory()
    url = reverse("admin:inventory_stockmovement_changelist")

    def move(n):
        for _ in range(n):
            stock_adjust(
                variant_id=variant.pk,
                location_id=store.pk,
                delta=1,
                reason="receipt",
                actor=Actor(api_client_id=till.pk),
            )

    move(3)
    at_3 = queries(browser, url)
    move(27)
    assert queries(browser, url) == at_3


def test_the_api_clients_list_reads_the_tills_stores_in_one_query(browser, pos, store):
    """The list shows each client's store, a nullable foreign key the admin does not join by
    itself: one query a till."""
    url = reverse("admin:omnichannel_apiclient_changelist")
    for i in range(3):
        make_api_client(pos, store, name=f"till-{i:02d}")
    at_3 = queries(browser, url)
    for i in range(3, 30):
        make_api_client(pos, store, name=f"till-{i:02d}")
    assert queries(browser, url) == at_3


def test_the_member_events_list_reads_the_staff_members_in_one_query(browser):
    """The list shows who did each export or merge, a nullable foreign key to the user: one
    query a row."""
    url = reverse("admin:customers_memberevent_changelist")
    staff = [make_staff(f"s{i:02d}") for i in range(30)]

    def record(users, first):
        for i, user in enumerate(users, start=first):
            MemberEvent.objects.create(kind="exported", member_id_ref=1000 + i, staff=user)

    record(staff[:3], 0)
    at_3 = queries(browser, url)
    record(staff[3:], 3)
    assert queries(browser, url) == at_3


def test_a_members_history_page_reads_the_till_behind_each_change_once(browser, pos, store):
    """The "History" page names the API client of each change, whose name shows its store:
    the page joined the client's channel, not its location, one query a change a till made."""
    till, _ = make_api_client(pos, store, name="till-1")
    member = Member.objects.create(email="jo@example.com")
    url = reverse("admin:customers_member_history", args=[member.pk])

    def change(n):
        for _ in range(n):
            member.first_name = f"Jo {Member.history.count()}"
            member.save()
        Member.history.filter(id=member.pk).update(history_api_client=till)

    change(2)  # with the creation: 3 rows
    at_3 = queries(browser, url)
    change(27)
    assert Member.history.filter(id=member.pk).count() == 30
    assert queries(browser, url) == at_3


def test_the_price_changes_list_reads_the_till_behind_each_change_once(browser, web, pos, store):
    """The price changes list names the API client of each change: as on the History pages,
    its store was one query a row a till wrote."""
    till, _ = make_api_client(pos, store, name="till-1")
    url = reverse("admin:catalog_historicalchannelprice_changelist")

    def change(n):
        for _ in range(n):
            ChannelPriceFactory(channel=web)
        ChannelPrice.history.update(history_api_client=till)

    change(3)
    at_3 = queries(browser, url)
    change(27)
    assert ChannelPrice.history.count() == 30
    assert queries(browser, url) == at_3
