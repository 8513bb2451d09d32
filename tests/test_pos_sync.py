"""Offline POS sales: recorded once per till and client_id, oversold sales stand, flagged."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.models import ChannelPrice
from customers.models import Member
from inventory.models import StockLevel, StockMovement
from inventory.services import StockLine, stock_receive
from orders.models import Order
from tests.concurrency import require_postgres, run_in_threads
from tests.conftest import as_client
from tests.factories import ChannelPriceFactory, VariantFactory, make_api_client
from tests.inventory_helpers import assert_ledger_matches_levels

pytestmark = pytest.mark.django_db


@pytest.fixture
def till(pos, store):
    tee = VariantFactory(sku="TEE")
    ChannelPriceFactory(variant=tee, channel=pos, amount=Decimal("10.00"))
    stock_receive(lines=[StockLine(tee.pk, store.pk, 2)], reference="delivery")
    _, token = make_api_client(pos, store)
    return as_client(token), tee, store, token


def sale(client_id, quantity=1, sku="TEE", **extra):
    return {"client_id": client_id, "lines": [{"sku": sku, "quantity": quantity}], **extra}


def sync(client, *sales):
    return client.post("/api/v1/pos/sync/", {"sales": list(sales)}, format="json")


def on_hand(variant, store):
    return StockLevel.objects.get(variant=variant, location=store).on_hand


def test_a_batch_replayed_twice_records_each_sale_once(till):
    client, tee, store, _ = till
    batch = [sale("till1-0001"), sale("till1-0002")]
    first = sync(client, *batch)
    assert first.status_code == 200
    again = sync(client, *batch)
    assert [r["status"] for r in first.json()["results"]] == ["accepted", "accepted"]
    assert again.json() == first.json()
    assert Order.objects.count() == 2
    assert on_hand(tee, store) == 0
    assert_ledger_matches_levels()


def test_an_oversold_sale_is_accepted_and_flagged_for_review(till):
    client, tee, store, _ = till
    results = sync(client, sale("a", 2), sale("b", 1)).json()["results"]
    assert [r["status"] for r in results] == ["accepted", "accepted_oversold"]
    order = Order.objects.get(client_id="b")
    assert order.needs_review and order.status == "completed"
    assert on_hand(tee, store) == -1
    assert_ledger_matches_levels()
    assert sync(client, sale("b", 1)).json()["results"][0]["status"] == "accepted_oversold"


def test_a_bad_sale_is_rejected_alone_and_the_rest_of_the_batch_stands(till):
    client, tee, store, _ = till
    results = sync(
        client,
        sale("ok"),
        sale("bad", sku="NOPE"),
        sale("pay", payments=[{"method": "cash", "amount": "3.00"}]),
    ).json()["results"]
    assert [(r["status"], r["code"]) for r in results] == [
        ("accepted", ""),
        ("rejected", "unknown_sku"),
        ("rejected", "payment_mismatch"),
    ]
    assert list(Order.objects.values_list("client_id", flat=True)) == ["ok"]
    assert on_hand(tee, store) == 1  # the rejected ones took nothing off the shelf
    assert StockMovement.objects.filter(reason="sale").count() == 1


def test_the_sale_keeps_its_own_time_and_a_future_time_is_rejected(till):
    client, _, _, _ = till
    sold_at = timezone.now() - timedelta(hours=5)
    sync(client, sale("earlier", sold_at=sold_at.isoformat()))
    assert abs(Order.objects.get(client_id="earlier").created_at - sold_at) < timedelta(seconds=1)
    future = (timezone.now() + timedelta(days=1)).isoformat()
    result = sync(client, sale("later", sold_at=future)).json()["results"][0]
    assert (result["status"], result["code"]) == ("rejected", "invalid")


def test_bad_batches_are_400_and_only_tills_sync(till, web):
    client, _, _, _ = till
    assert sync(client, sale("x"), sale("x")).status_code == 400  # one client_id twice
    assert client.post("/api/v1/pos/sync/", {"sales": []}, format="json").status_code == 400
    _, storefront = make_api_client(web)
    assert sync(as_client(storefront), sale("y")).status_code == 403
    assert Order.objects.count() == 0


def test_client_ids_belong_to_one_till(till, pos, store):
    client, _, _, _ = till
    _, other_token = make_api_client(pos, store, name="till 2")
    sync(client, sale("0001"))
    sync(as_client(other_token), sale("0001"))
    assert Order.objects.filter(client_id="0001").count() == 2


@pytest.mark.django_db(transaction=True)
def test_overlapping_syncs_of_one_batch_record_each_sale_once(till):
    require_postgres()
    _, tee, store, token = till
    batch = [sale(f"s{n}") for n in range(5)]
    statuses = run_in_threads(4, lambda _: sync(as_client(token), *batch).status_code)
    assert statuses == [200] * 4
    assert Order.objects.count() == 5
    assert on_hand(tee, store) == 2 - 5
    assert Order.objects.filter(needs_review=True).count() == 3
    assert_ledger_matches_levels()


def test_a_sync_takes_an_idempotency_key_as_every_creating_post_does(till):
    """Replayed with its key: the first answer, nothing more written; the same key with
    another batch: 422 `idempotency_key_reused`, and that batch is not synced."""
    client, tee, store, _ = till

    def keyed(*sales):
        return client.post(
            "/api/v1/pos/sync/",
            {"sales": list(sales)},
            format="json",
            HTTP_IDEMPOTENCY_KEY="till-batch-7",
        )

    first = keyed(sale("till1-0001"))
    assert first.status_code == 200 and first.json()["results"][0]["status"] == "accepted"
    again = keyed(sale("till1-0001"))
    assert (again.status_code, again.json()) == (200, first.json())
    other = keyed(sale("till1-0002"))
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert list(Order.objects.values_list("client_id", flat=True)) == ["till1-0001"]
    assert on_hand(tee, store) == 1
    assert_ledger_matches_levels()


def test_a_server_error_mid_batch_keeps_the_key_for_that_batch(till, monkeypatch):
    """The first sale was recorded, then the database failed (a 503). The key stays bound to
    that batch: sent again, it runs again and the recorded sale answers as recorded; another
    batch under the key is 422. It used to give the key back, and a second batch could then
    run under it while the first one's retry was still going."""
    from django.db import OperationalError

    from orders import pos_sync

    client, *_ = till
    real, calls = pos_sync.pos_sale_sync, []

    def fails_on_the_second_sale(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OperationalError("lock timeout")
        return real(**kwargs)

    def keyed(*sales):
        return client.post(
            "/api/v1/pos/sync/", {"sales": list(sales)}, format="json", HTTP_IDEMPOTENCY_KEY="b-1"
        )

    monkeypatch.setattr(pos_sync, "pos_sale_sync", fails_on_the_second_sale)
    client.raise_request_exception = False
    failed = keyed(sale("s1"), sale("s2"))
    assert failed.status_code == 503 and failed.json()["code"] == "service_unavailable"
    assert list(Order.objects.values_list("client_id", flat=True)) == ["s1"]
    assert keyed(sale("other")).status_code == 422
    again = keyed(sale("s1"), sale("s2"))
    assert again.status_code == 200
    assert [r["status"] for r in again.json()["results"]] == ["accepted", "accepted"]
    assert sorted(Order.objects.values_list("client_id", flat=True)) == ["s1", "s2"]
    assert keyed(sale("s1"), sale("s2")).json() == again.json()  # now the answer is kept
    assert_ledger_matches_levels()


def test_a_client_id_synced_again_with_other_goods_is_rejected_not_taken_for_the_first(till):
    """A till whose counter was reset sends a new sale under an old client_id: it was
    answered `accepted` with the first order, and the new sale was lost (no stock moved,
    no revenue). It is `rejected` with `client_id_reused` now, naming the order; the same
    sale again is still the first answer."""
    client, tee, store, _ = till
    first = sync(client, sale("0001", 1)).json()["results"][0]
    other = sync(client, sale("0001", 2)).json()["results"][0]
    order = Order.objects.get(client_id="0001")
    assert (other["status"], other["code"]) == ("rejected", "client_id_reused")
    assert order.number in other["detail"]
    assert sync(client, sale("0001", 1)).json()["results"][0] == first
    assert Order.objects.count() == 1
    assert on_hand(tee, store) == 1
    assert_ledger_matches_levels()


@pytest.mark.parametrize("taken_off", ["variant", "product"])
def test_an_offline_sale_of_goods_discontinued_since_still_stands(till, taken_off):
    """The till sold the TEE offline; a merchandiser discontinued it (or its product)
    before the sync. The goods are gone: the sale is accepted and the stock leaves, where
    an order placed now is refused as the catalog hides it."""
    client, tee, store, _ = till
    if taken_off == "variant":
        tee.is_active = False
        tee.save()
    else:
        tee.product.is_active = False
        tee.product.save()
    [result] = sync(client, sale("0001", 1)).json()["results"]
    assert result["status"] == "accepted", result
    assert on_hand(tee, store) == 1
    placed = client.post(
        "/api/v1/orders/",
        {"fulfillment": "in_store", "lines": [{"sku": "TEE", "quantity": 1}]},
        format="json",
    )
    assert (placed.status_code, placed.json()["code"]) == (400, "not_sold_in_channel")
    assert_ledger_matches_levels()


def test_a_payment_named_points_is_refused_online_and_offline(till):
    """A payment of method "points" took no points from anyone, yet the order counted as
    paid with points (none earned on it, none given back on a return): points pay through
    `redeem_points`. 400 invalid on `payments` online; the offline sale is rejected alone."""
    client, tee, store, _ = till
    points = [{"method": "points", "amount": "10.00"}]
    placed = client.post(
        "/api/v1/orders/",
        {"fulfillment": "in_store", "lines": [{"sku": "TEE", "quantity": 1}], "payments": points},
        format="json",
    )
    assert placed.status_code == 400
    assert placed.json()["code"] == "invalid" and list(placed.json()["errors"]) == ["payments"]
    results = sync(client, sale("a", 1, payments=points), sale("b", 1)).json()["results"]
    assert [(r["status"], r["code"]) for r in results] == [
        ("rejected", "invalid"),
        ("accepted", ""),
    ]
    assert Order.objects.count() == 1
    assert on_hand(tee, store) == 1
    assert_ledger_matches_levels()


def test_an_offline_sale_is_priced_as_it_was_rung_up(till):
    """The till sold a TEE offline at 10.00, paid 10.00 cash; the price went to 12.00 before
    the sync. Priced now, its payment no longer added up (payment_mismatch) and the sale,
    whose goods had left, was lost. It is priced from the price history as of `sold_at`; a
    sale without `sold_at` at today's price."""
    client, tee, _, _ = till
    rung_up = timezone.now()
    price = ChannelPrice.objects.get(variant=tee)
    price.amount = Decimal("12.00")
    price.save()
    cash = [{"method": "cash", "amount": "10.00"}]
    results = sync(
        client,
        sale("then", sold_at=rung_up.isoformat(), payments=cash),
        sale("undated"),
    ).json()["results"]
    assert [r["status"] for r in results] == ["accepted", "accepted"], results
    then, undated = (Order.objects.get(client_id=c) for c in ("then", "undated"))
    assert (then.total, then.lines.get().unit_price) == (Decimal("10.00"), Decimal("10.00"))
    assert undated.total == Decimal("12.00")
    assert_ledger_matches_levels()


def test_an_offline_sale_names_its_member_and_earns_their_points(till):
    """`member` on an offline sale was not read: the sale was booked to nobody and the
    member never earned its points. By email or phone the member is found (or made) at the
    till's store, by id looked up; an unknown id rejects that sale alone, the till can send
    it again corrected under the same client_id."""
    client, tee, store, _ = till
    results = sync(
        client,
        sale("a", member={"email": " Ann@Example.com"}),
        sale("b", member=10**9),
    ).json()["results"]
    assert [(r["status"], r["code"]) for r in results] == [
        ("accepted", ""),
        ("rejected", "unknown_member"),
    ]
    ann = Member.objects.get(email="ann@example.com")
    assert Order.objects.get(client_id="a").member == ann
    assert ann.points > 0 and ann.seen_in.filter(location=store).exists()
    again = sync(client, sale("b", member=ann.pk)).json()["results"][0]
    assert again["status"] == "accepted"
    assert Order.objects.get(client_id="b").member == ann
    assert Member.objects.get(pk=ann.pk).points == 2 * ann.points
    assert on_hand(tee, store) == 0
    assert_ledger_matches_levels()


def take_off(price: ChannelPrice, how: str) -> None:
    """A merchandiser takes a price off the channel: unpublished, or deleted."""
    if how == "unpublished":
        price.published = False
        price.save()
    else:
        price.delete()


@pytest.mark.parametrize("how", ["unpublished", "deleted"])
def test_an_offline_sale_whose_price_was_taken_off_since_still_stands(till, how):
    """The till sold a TEE offline at 10.00, paid cash; the merchandiser then unpublished
    (or deleted) its POS price before the sync. The sale was rejected not_sold_in_channel
    and lost, though the goods had left. It stands at the price of the history as of
    `sold_at`; a sale without `sold_at`, and an order placed now, are still refused."""
    client, tee, store, _ = till
    rung_up = timezone.now()
    take_off(ChannelPrice.objects.get(variant=tee), how)
    cash = [{"method": "cash", "amount": "10.00"}]
    results = sync(
        client, sale("then", sold_at=rung_up.isoformat(), payments=cash), sale("undated")
    ).json()["results"]
    assert [(r["status"], r["code"]) for r in results] == [
        ("accepted", ""),
        ("rejected", "not_sold_in_channel"),
    ], results
    then = Order.objects.get(client_id="then")
    assert (then.total, then.lines.get().unit_price) == (Decimal("10.00"), Decimal("10.00"))
    assert on_hand(tee, store) == 1
    placed = client.post(
        "/api/v1/orders/",
        {"fulfillment": "in_store", "lines": [{"sku": "TEE", "quantity": 1}]},
        format="json",
    )
    assert (placed.status_code, placed.json()["code"]) == (400, "not_sold_in_channel")
    assert_ledger_matches_levels()


@pytest.mark.parametrize("how", ["unpublished", "deleted"])
def test_an_offline_sale_of_a_price_already_taken_off_when_rung_up_is_rejected(till, how):
    """The history knows the price was off the channel when the sale was rung up: nothing
    was sold at a price then either, so the sale is not_sold_in_channel as before."""
    client, tee, store, _ = till
    take_off(ChannelPrice.objects.get(variant=tee), how)
    rung_up = timezone.now()
    [result] = sync(client, sale("0001", sold_at=rung_up.isoformat())).json()["results"]
    assert (result["status"], result["code"]) == ("rejected", "not_sold_in_channel")
    assert Order.objects.count() == 0
    assert on_hand(tee, store) == 2
    assert not StockMovement.objects.filter(reason="sale").exists()


def test_a_sale_whose_prices_were_taken_off_costs_the_statements_of_one_still_priced(till, pos):
    """The history is read once for all the sale's SKUs without a price now, in place of
    the read of their changes since `sold_at`: no statement more per sale, none per line."""
    client, tee, store, _ = till
    cap = VariantFactory(sku="CAP")
    ChannelPriceFactory(variant=cap, channel=pos, amount=Decimal("5.00"))
    stock_receive(
        lines=[StockLine(tee.pk, store.pk, 1), StockLine(cap.pk, store.pk, 3)],
        reference="delivery",
    )
    rung_up = timezone.now().isoformat()

    def statements(client_id):
        lines = [{"sku": "TEE", "quantity": 1}, {"sku": "CAP", "quantity": 1}]
        with CaptureQueriesContext(connection) as captured:
            [result] = sync(
                client, {"client_id": client_id, "sold_at": rung_up, "lines": lines}
            ).json()["results"]
        assert result["status"] == "accepted", result
        sql = [q["sql"] for q in captured.captured_queries]
        return len(sql), sum('FROM "catalog_historicalchannelprice"' in q for q in sql)

    statements("warm-up")  # the token's first use in the test is recorded once
    still_priced = statements("priced")
    take_off(ChannelPrice.objects.get(variant=tee), "deleted")
    take_off(ChannelPrice.objects.get(variant=cap), "unpublished")
    assert statements("taken-off") == still_priced
    assert still_priced[1] == 1
    assert Order.objects.get(client_id="taken-off").total == Decimal("15.00")
    assert_ledger_matches_levels()


def test_a_till_given_a_new_token_replays_its_outbox_without_selling_twice(till):
    """The till's token leaked: the admin revokes it and gives the till a new token, the same
    client (api_client_rotate_token). The till had synced its outbox but lost the answer, and
    sends the same sales again with the new token: answered as before, sold once. A new
    client (what the admin once advised) sold the whole outbox a second time: client_ids
    belong to one till."""
    from omnichannel.models import ApiClient
    from omnichannel.services import api_client_revoke, api_client_rotate_token

    client, tee, store, _ = till
    ann = Member.objects.create(email="ann@example.com")
    batch = [sale("till7-0001", member=ann.pk), sale("till7-0002", member=ann.pk)]
    first = sync(client, *batch)
    assert [r["status"] for r in first.json()["results"]] == ["accepted"] * 2
    api_client = ApiClient.objects.get()
    api_client_revoke(client_id=api_client.pk)
    new_token = api_client_rotate_token(client_id=api_client.pk)
    again = sync(as_client(new_token), *batch)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Order.objects.count() == 2
    assert on_hand(tee, store) == 0
    assert Member.objects.get(pk=ann.pk).points == 20
    assert_ledger_matches_levels()


def test_an_offline_sale_for_a_member_merged_since_is_booked_to_the_survivor(till):
    """The till rang a sale up for member B (their card), offline; staff merged B into A,
    and A into C, before the till came back. The goods left the shop: the sale stood
    rejected unknown_member and was lost. It is booked to C now, who earns its points; an
    order placed now for B's id is still 400 unknown_member."""
    from customers.privacy import member_merge

    client, tee, store, _ = till
    merged = Member.objects.create(phone="+33612345678")
    between = Member.objects.create(email="ann@example.com")
    survivor = Member.objects.create(email="ann.w@example.com")
    member_merge(survivor_id=between.pk, other_id=merged.pk)
    member_merge(survivor_id=survivor.pk, other_id=between.pk)
    [result] = sync(client, sale("s1", member=merged.pk)).json()["results"]
    assert (result["status"], result["code"], result["detail"]) == ("accepted", "", "")
    order = Order.objects.get(client_id="s1")
    assert order.member_id == survivor.pk and order.points_earned > 0
    assert Member.objects.get(pk=survivor.pk).points == order.points_earned
    assert on_hand(tee, store) == 1
    placed = client.post(
        "/api/v1/orders/",
        {"fulfillment": "in_store", "lines": [{"sku": "TEE", "quantity": 1}], "member": merged.pk},
        format="json",
    )
    assert (placed.status_code, placed.json()["code"]) == (400, "unknown_member")
    assert_ledger_matches_levels()


@pytest.mark.parametrize("erased", ["the member", "the member they were merged into"])
def test_an_offline_sale_for_a_member_erased_since_still_stands_anonymously(till, erased):
    """Erased (right to be forgotten) before the till synced, or merged into a member
    erased since: the goods left the shop, so the sale stands, booked to no one (it was
    rejected unknown_member and lost). An id no member ever had is still rejected."""
    from customers.privacy import member_erase, member_merge

    client, tee, store, _ = till
    gone = Member.objects.create(email="gone@example.com")
    if erased == "the member":
        member_erase(member_id=gone.pk)
    else:
        into = Member.objects.create(phone="+33612345678")
        member_merge(survivor_id=into.pk, other_id=gone.pk)
        member_erase(member_id=into.pk)
    results = sync(client, sale("s1", member=gone.pk), sale("s2", member=10**9)).json()["results"]
    assert [(r["status"], r["code"]) for r in results] == [
        ("accepted", ""),
        ("rejected", "unknown_member"),
    ]
    order = Order.objects.get(client_id="s1")
    assert order.member_id is None and order.points_earned == 0
    assert not Member.objects.exists()
    assert on_hand(tee, store) == 1
    assert_ledger_matches_levels()


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"member": {"email": "ann@example.com", "first_name": "A" * 101}}, "member.first_name"),
        ({"member": {"email": "ann@example.com", "last_name": "W" * 120}}, "member.last_name"),
        ({"lines": [{"sku": "TEE", "quantity": 0}]}, "lines.0.quantity"),
        ({"sold_at": "2026-02-30T10:00:00Z"}, "sold_at"),
        ({"payments": [{"method": "cash", "amount": "-1.00"}]}, "payments.0.amount"),
    ],
    ids=["long-first-name", "long-last-name", "no-quantity", "no-such-day", "negative-payment"],
)
def test_one_sale_the_serializer_dislikes_does_not_block_the_whole_outbox(till, bad, field):
    """pos_sync's rule: a bad sale is rejected alone, the rest of the batch stands. A sale
    whose member's name is longer than 100 characters, or any field its checks refuse,
    made the whole batch a 400: nothing was recorded, and the till, retrying the same
    outbox, never got any of its sales in. It is rejected `invalid` alone, naming the
    field; the batch sent again answers the same."""
    client, tee, store, _ = till
    batch = [sale("good-1"), sale("odd", **bad), sale("good-2")]
    response = sync(client, *batch)
    assert response.status_code == 200, response.json()
    results = response.json()["results"]
    assert [(r["client_id"], r["status"], r["code"]) for r in results] == [
        ("good-1", "accepted", ""),
        ("odd", "rejected", "invalid"),
        ("good-2", "accepted", ""),
    ]
    assert results[1]["order"] is None and f"{field}: " in results[1]["detail"], results[1]
    assert sorted(Order.objects.values_list("client_id", flat=True)) == ["good-1", "good-2"]
    assert not Member.objects.exists()
    assert on_hand(tee, store) == 0
    assert sync(client, *batch).json() == response.json()
    assert_ledger_matches_levels()


def test_an_offline_sale_with_a_zero_payment_line_stands_without_it(till):
    """A 0.00 line (a voucher worth nothing, rung up at the till) made the whole batch a
    400. The goods left: the sale stands, the line is not recorded (a payment is money
    paid), and the payments must still add up to the total. An order placed now is still
    refused a 0.00 payment."""
    client, tee, store, _ = till
    nothing = {"method": "voucher", "amount": "0.00"}
    results = sync(
        client,
        sale("paid", payments=[nothing, {"method": "cash", "amount": "10.00"}]),
        sale("unpaid", payments=[nothing]),
    ).json()["results"]
    assert [(r["status"], r["code"]) for r in results] == [
        ("accepted", ""),
        ("rejected", "payment_mismatch"),
    ]
    paid = Order.objects.get(client_id="paid")
    assert list(paid.payments.values_list("method", "amount")) == [("cash", Decimal("10.00"))]
    assert on_hand(tee, store) == 1
    now = {
        "fulfillment": "in_store",
        "lines": [{"sku": "TEE", "quantity": 1}],
        "payments": [nothing],
    }
    placed = client.post("/api/v1/orders/", now, format="json")
    assert (placed.status_code, placed.json()["code"]) == (400, "invalid")
    assert_ledger_matches_levels()


@pytest.mark.parametrize(
    "odd",
    [
        {"lines": [{"sku": "TEE", "quantity": 0}]},  # no client_id
        {"client_id": "x" * 101, "lines": [{"sku": "TEE", "quantity": 0}]},
        {"client_id": None, "lines": "TEE"},
        "TEE",
    ],
    ids=["no-client-id", "client-id-too-long", "null-client-id", "not-an-object"],
)
def test_a_sale_the_batch_cannot_answer_for_is_still_a_400_for_the_batch(till, odd):
    """A sale the till cannot be answered for (no client_id of its own) makes the batch a
    400, as one client_id twice does: nothing recorded."""
    client, _, _, _ = till
    response = sync(client, sale("good-1"), odd)
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert "sales" in response.json()["errors"], response.json()
    assert Order.objects.count() == 0


def test_a_sale_rejected_invalid_costs_no_statement(till):
    """The checks refuse it before any query: a batch with such a sale costs the statements
    of the batch without it."""
    client, tee, store, _ = till
    stock_receive(lines=[StockLine(tee.pk, store.pk, 10)], reference="delivery")

    def statements(*sales):
        with CaptureQueriesContext(connection) as captured:
            assert sync(client, *sales).status_code == 200
        return len(captured.captured_queries)

    statements(sale("warm-up"))  # the token's first use in the test is recorded once
    odd = sale("odd", member={"email": "ann@example.com", "first_name": "A" * 101})
    assert statements(sale("a1"), odd, sale("a2")) == statements(sale("b1"), sale("b2"))
    assert Order.objects.count() == 5
