"""One lock order for every write that touches a member: an order's row, then its member's,
then stock. Each test forces the interleaving that deadlocked before (PostgreSQL killed one
side: a 503 or a failed merge), by holding a stock row until the other sides are queued on
their locks, and checks both sides succeed with the ledger intact. Also the nightly run
beside itself and beside a merge or an erasure, and a sale for a member merged away
meanwhile."""

import threading
from datetime import date
from decimal import Decimal

import pytest
import tablib
from django.db import connections, transaction
from django.db.models import Sum
from rest_framework.test import APIClient

from analytics.jobs import nightly_run
from analytics.models import MemberScore
from customers import admin as member_admin
from customers.models import Member, MemberEvent, PointsEntry
from customers.privacy import member_merge
from inventory.models import StockLevel
from inventory.resources import CycleCountResource
from inventory.services import StockLine, stock_receive, stock_sell_now
from orders.services import LineRequest, order_place, order_transition
from tests.concurrency import require_postgres, until_waiting
from tests.conftest import as_client
from tests.factories import ChannelPriceFactory, VariantFactory, make_api_client, make_staff
from tests.inventory_helpers import assert_ledger_matches_levels
from tests.test_change_history import admin_form_data

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture
def tee(web, pos, store):
    require_postgres()
    variant = VariantFactory(sku="TEE")
    for channel in (web, pos):
        ChannelPriceFactory(variant=variant, channel=channel, amount=Decimal("20.00"))
    stock_receive(lines=[StockLine(variant.pk, store.pk, 50)], reference="delivery")
    return variant


class Held:
    """Holds rows locked (FOR UPDATE) in a thread of its own until released."""

    def __init__(self, queryset):
        self.locked, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold, args=(queryset,))
        self.thread.start()
        assert self.locked.wait(10)

    def _hold(self, queryset):
        try:
            with transaction.atomic():
                list(queryset.select_for_update())
                self.locked.set()
                self.release.wait(20)
        finally:
            connections.close_all()

    def let_go(self):
        self.release.set()
        self.thread.join(20)


def in_thread(results: dict, name: str, work) -> threading.Thread:
    def run():
        try:
            results[name] = ("ok", work())
        except Exception as exc:  # the test reports what happened
            results[name] = ("error", f"{type(exc).__name__}: {exc}".splitlines()[0])
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_an_order_finding_its_member_by_email_beside_a_handover_for_that_member(
    web, pos, store, tee
):
    """With an Idempotency-Key the member's look-up and the order are one transaction: it
    held the member, then wanted stock; the handover held stock, then wanted the member."""
    ann = Member.objects.create(email="ann@example.com")
    pickup = order_place(
        channel=web,
        fulfillment="pickup",
        pickup_location=store,
        lines=[LineRequest("TEE", 1)],
        member=ann,
    )
    _, web_token = make_api_client(web, name="storefront")
    _, till_token = make_api_client(pos, store, name="till")
    results: dict = {}

    def handover():
        api = as_client(till_token)
        api.raise_request_exception = False
        return api.post(f"/api/v1/orders/{pickup.pk}/picked-up/").status_code

    def web_order():
        api = as_client(web_token)
        api.raise_request_exception = False
        return api.post(
            "/api/v1/orders/",
            {
                "fulfillment": "ship",
                "member": {"email": "Ann@Example.com"},
                "lines": [{"sku": "TEE", "quantity": 1}],
            },
            format="json",
            HTTP_IDEMPOTENCY_KEY="k-1",
        ).status_code

    shelf = Held(StockLevel.objects.filter(variant=tee, location=store))
    threads = [in_thread(results, "handover", handover)]
    until_waiting(1)
    threads.append(in_thread(results, "web order", web_order))
    until_waiting(2)
    shelf.let_go()
    for thread in threads:
        thread.join(30)
    assert results == {"handover": ("ok", 200), "web order": ("ok", 201)}
    assert Member.objects.get(pk=ann.pk).points > 0
    assert_ledger_matches_levels()


def test_a_merge_beside_a_handover_of_the_merged_members_order(web, store, tee):
    """The merge took the members, then the order rows; the handover the order, then its
    member (for the points)."""
    survivor = Member.objects.create(email="ann@example.com")
    other = Member.objects.create(phone="+33612345678")
    pickup = order_place(
        channel=web,
        fulfillment="pickup",
        pickup_location=store,
        lines=[LineRequest("TEE", 1)],
        member=other,
    )
    results: dict = {}
    shelf = Held(StockLevel.objects.filter(variant=tee, location=store))
    threads = [
        in_thread(
            results,
            "handover",
            lambda: order_transition(order_id=pickup.pk, action="picked_up").status,
        )
    ]
    until_waiting(1)
    threads.append(
        in_thread(
            results, "merge", lambda: member_merge(survivor_id=survivor.pk, other_id=other.pk).pk
        )
    )
    until_waiting(2)
    shelf.let_go()
    for thread in threads:
        thread.join(30)
    assert results == {"handover": ("ok", "picked_up"), "merge": ("ok", survivor.pk)}
    pickup.refresh_from_db()
    assert pickup.member_id == survivor.pk and pickup.points_earned > 0
    assert Member.objects.get(pk=survivor.pk).points == pickup.points_earned
    assert_ledger_matches_levels()


def test_a_sale_for_a_member_merged_away_since_they_were_found_is_a_400(pos, store, tee):
    """The till found the member; before its sale ran, staff merged them into another. It
    was a 500 (the member's row was gone when the points were posted)."""
    from customers.services import UnknownMember

    survivor = Member.objects.create(email="ann@example.com")
    found = Member.objects.create(phone="+33612345678")
    member_merge(survivor_id=survivor.pk, other_id=found.pk)
    with pytest.raises(UnknownMember) as refused:
        order_place(
            channel=pos,
            fulfillment="in_store",
            location=store,
            member=found,
            lines=[LineRequest("TEE", 1)],
        )
    assert refused.value.code == "unknown_member" and refused.value.status_code == 400
    assert StockLevel.objects.get(variant=tee, location=store).on_hand == 50
    assert_ledger_matches_levels()


def test_two_nightly_runs_at_once_take_turns_and_both_succeed(pos, store, tee):
    """A redelivered task beside `run_nightly`: the second run's delete missed the rows the
    first had just written, and its insert failed on their keys."""
    for n in range(6):
        member = Member.objects.create(email=f"m{n}@example.com")
        for _ in range(1 + n % 3):
            order_place(
                channel=pos,
                fulfillment="in_store",
                location=store,
                member=member,
                lines=[LineRequest("TEE", 1)],
            )
    nightly_run(run_date=date.today())
    results: dict = {}
    scores = Held(MemberScore.objects.all()[:1])  # so both runs queue on the same rows
    threads = [
        in_thread(results, name, lambda: nightly_run(run_date=date.today()).status)
        for name in ("task", "command")
    ]
    until_waiting(2)
    scores.let_go()
    for thread in threads:
        thread.join(60)
    assert results == {"task": ("ok", "succeeded"), "command": ("ok", "succeeded")}
    assert MemberScore.objects.count() == 6


def test_an_erasure_beside_a_handover_of_the_members_order(web, store, tee, monkeypatch):
    """The erasure took the member, then their orders (to anonymise them); the handover
    holds the order and takes the member next. Forced: the handover waits, holding the
    order, until the erasure has queued."""
    from customers.privacy import member_erase
    from orders import services as order_services

    ann = Member.objects.create(email="ann@example.com")
    pickup = order_place(
        channel=web,
        fulfillment="pickup",
        pickup_location=store,
        lines=[LineRequest("TEE", 1)],
        member=ann,
    )
    real = order_services.member_lock
    holding_order, go_on = threading.Event(), threading.Event()

    def member_lock_when_told(**kwargs):
        holding_order.set()
        assert go_on.wait(20)
        return real(**kwargs)

    monkeypatch.setattr(order_services, "member_lock", member_lock_when_told)
    results: dict = {}
    threads = [
        in_thread(
            results,
            "handover",
            lambda: order_transition(order_id=pickup.pk, action="picked_up").status,
        )
    ]
    assert holding_order.wait(10)
    threads.append(in_thread(results, "erase", lambda: member_erase(member_id=ann.pk)))
    until_waiting(1)
    go_on.set()
    for thread in threads:
        thread.join(30)
    assert results == {"handover": ("ok", "picked_up"), "erase": ("ok", None)}
    pickup.refresh_from_db()
    assert pickup.member_id is None and not Member.objects.filter(pk=ann.pk).exists()


def test_two_tills_syncing_under_idempotency_keys_sell_the_same_skus_in_other_orders(
    pos, store, tee, monkeypatch
):
    """Under an Idempotency-Key a batch was one transaction, holding every sale's stock rows
    to its end: one till selling TEE then CAP, the other CAP then TEE, waited on each other
    and a whole batch was lost (a 503). Each sale commits on its own again."""
    from orders import pos_sync

    cap = VariantFactory(sku="CAP")
    ChannelPriceFactory(variant=cap, channel=pos, amount=Decimal("5.00"))
    stock_receive(lines=[StockLine(cap.pk, store.pk, 50)], reference="delivery")
    _, first_till = make_api_client(pos, store, name="till 1")
    _, second_till = make_api_client(pos, store, name="till 2")
    both_sold_once = threading.Barrier(2)
    real = pos_sync.pos_sale_sync
    sold = threading.local()

    def sale_then_meet(**kwargs):
        outcome = real(**kwargs)
        if not getattr(sold, "once", False):
            sold.once = True
            both_sold_once.wait(10)
        return outcome

    monkeypatch.setattr(pos_sync, "pos_sale_sync", sale_then_meet)

    def batch(token, skus, key):
        def run():
            api = as_client(token)
            api.raise_request_exception = False
            sales = [
                {"client_id": f"{key}-{n}", "lines": [{"sku": sku, "quantity": 1}]}
                for n, sku in enumerate(skus)
            ]
            answer = api.post(
                "/api/v1/pos/sync/", {"sales": sales}, format="json", HTTP_IDEMPOTENCY_KEY=key
            )
            return answer.status_code, [r["status"] for r in answer.json().get("results", [])]

        return run

    results: dict = {}
    threads = [
        in_thread(results, "till 1", batch(first_till, ["TEE", "CAP"], "b1")),
        in_thread(results, "till 2", batch(second_till, ["CAP", "TEE"], "b2")),
    ]
    for thread in threads:
        thread.join(60)
    assert results == {
        "till 1": ("ok", (200, ["accepted", "accepted"])),
        "till 2": ("ok", (200, ["accepted", "accepted"])),
    }
    assert_ledger_matches_levels()


def test_a_count_sheet_listing_skus_out_of_order_beside_a_two_line_sale(store):
    """A sheet counting B before A, applied row by row, took B's lock, then waited on A, held
    by a till sale waiting on B: PostgreSQL killed one side. The sheet locks all its rows
    first, in the global order, so the sale and the sheet take turns."""
    require_postgres()
    a, b = VariantFactory(sku="A"), VariantFactory(sku="B")
    assert a.pk < b.pk
    stock_receive(
        lines=[StockLine(a.pk, store.pk, 10), StockLine(b.pk, store.pk, 10)], reference="d"
    )
    held = Held(StockLevel.objects.filter(variant=a, location=store))
    results: dict = {}
    sale = in_thread(
        results,
        "sale",
        lambda: len(
            stock_sell_now(
                lines=[StockLine(a.pk, store.pk, 1), StockLine(b.pk, store.pk, 1)],
                reference="pos:1",
            )[0]
        ),
    )
    until_waiting(1)

    def count_sheet():
        data = tablib.Dataset(headers=["sku", "location", "counted"])
        data.append(["B", store.code, 7])
        data.append(["A", store.code, 7])
        result = CycleCountResource(limit=None).import_data(data, dry_run=False)
        return result.has_errors() or result.has_validation_errors()

    sheet = in_thread(results, "sheet", count_sheet)
    until_waiting(2)
    held.let_go()
    sale.join(20)
    sheet.join(20)
    assert results == {"sale": ("ok", 2), "sheet": ("ok", False)}, results
    assert set(StockLevel.objects.values_list("on_hand", flat=True)) <= {7, 6}
    assert_ledger_matches_levels()


def test_the_same_merge_twice_at_once_is_done_once_and_the_second_is_a_404(store):
    """A merge clicked twice (or retried): both requests find both members, then queue on
    their rows; the second, once the first committed, finds `other` gone: 404 not_found,
    where it was a KeyError, a 500. Same for an erasure clicked twice."""
    require_postgres()
    a = Member.objects.create(email="a@example.com")
    b = Member.objects.create(email="b@example.com")
    staff = make_staff("care", "customers.change_member", "customers.delete_member")

    def post(path, body=None):
        client = APIClient()
        client.force_authenticate(staff)
        response = client.post(path, body, format="json")
        return response.status_code, response.json().get("code") if response.content else None

    for path, body in (
        (f"/api/v1/members/{a.pk}/merge/", {"other": b.pk}),
        (f"/api/v1/members/{a.pk}/erase/", None),
    ):
        held = Held(Member.objects.filter(pk__in=[a.pk, b.pk]))
        results: dict = {}
        threads = [
            in_thread(results, n, lambda p=path, b=body: post(p, b)) for n in ("first", "second")
        ]
        until_waiting(2)
        held.let_go()
        for thread in threads:
            thread.join(20)
        assert sorted(answer for _, answer in results.values()) == sorted(
            [(200 if body else 204, None), (404, "not_found")]
        ), results
    assert not Member.objects.filter(pk__in=[a.pk, b.pk]).exists()
    assert MemberEvent.objects.filter(kind="merged").count() == 1
    assert MemberEvent.objects.filter(kind="erased").count() == 1


def test_a_member_saved_in_the_admin_keeps_points_earned_while_the_form_was_saved(
    client, pos, store, tee, monkeypatch
):
    """Support renames a member while they buy at a till: the admin read the row (points
    0) without a lock, the sale posted its points, and the save wrote 0 back, a balance no
    longer the ledger's sum. The save now takes points and tier from the locked row."""
    member = Member.objects.create(email="pts@example.com")
    _, token = make_api_client(pos, store, name="till")
    client.force_login(make_staff("care", "customers.view_member", "customers.change_member"))
    url = f"/admin/customers/member/{member.pk}/change/"
    data = {**admin_form_data(client.get(url)), "first_name": "Renamed"}
    sold = {}

    def sale_meanwhile(self):
        sale = in_thread(
            sold,
            "sale",
            lambda: (
                as_client(token)
                .post(
                    "/api/v1/orders/",
                    {
                        "fulfillment": "in_store",
                        "member": member.pk,
                        "lines": [{"sku": "TEE", "quantity": 1}],
                    },
                    format="json",
                )
                .json()["points_earned"]
            ),
        )
        sale.join(20)
        return original(self)

    original = member_admin.MemberForm.clean_email
    monkeypatch.setattr(member_admin.MemberForm, "clean_email", sale_meanwhile)
    assert client.post(url, data).status_code == 302
    assert sold["sale"][0] == "ok" and sold["sale"][1] > 0, sold
    stored = Member.objects.get(pk=member.pk)
    ledger = PointsEntry.objects.filter(member=stored).aggregate(s=Sum("points"))["s"]
    assert stored.first_name == "Renamed"
    assert stored.points == ledger == sold["sale"][1]


def _two_scored_members(pos, store) -> tuple[Member, Member]:
    ann = Member.objects.create(email="ann@example.com")
    bob = Member.objects.create(email="bob@example.com")
    for member in (ann, bob):
        order_place(
            channel=pos,
            fulfillment="in_store",
            location=store,
            member=member,
            lines=[LineRequest("TEE", 1)],
        )
    nightly_run(run_date=date.today())
    assert MemberScore.objects.count() == 2
    return ann, bob


def _merge_or_erase(action: str, ann: Member, bob: Member):
    from customers.privacy import member_erase

    if action == "merge":
        return lambda: member_merge(survivor_id=bob.pk, other_id=ann.pk).pk
    return lambda: member_erase(member_id=ann.pk)


@pytest.mark.parametrize("action", ["merge", "erase"])
def test_a_merge_or_erasure_while_the_rfm_stage_runs_waits_for_it(pos, store, tee, action):
    """The RFM stage holds the scores' table (LOCK TABLE) while it rewrites it and, at
    commit, checks its rows' members. A merge or erasure started meanwhile held its members
    and then, deleting the member, wanted its score: each waited on the other until
    PostgreSQL killed the merge (a 503, an admin 500). Forced by holding a score row, so
    the stage is slow as on 100,000 members."""
    ann, bob = _two_scored_members(pos, store)
    results: dict = {}
    slow = Held(MemberScore.objects.filter(member=bob))  # the stage's DELETE waits on it
    night = in_thread(results, "nightly", lambda: nightly_run(run_date=date.today()).status)
    until_waiting(1)  # the stage holds the table, waiting on the held row
    staff = in_thread(results, action, _merge_or_erase(action, ann, bob))
    until_waiting(2)  # the merge or erasure queued behind the stage
    slow.let_go()
    night.join(30)
    staff.join(30)
    assert results["nightly"] == ("ok", "succeeded"), results
    assert results[action][0] == "ok", results
    assert not Member.objects.filter(pk=ann.pk).exists()
    assert list(MemberScore.objects.values_list("member_id", flat=True)) == [bob.pk]


@pytest.mark.parametrize("action", ["merge", "erase"])
def test_the_rfm_stage_beside_a_merge_or_erasure_already_under_way_waits_for_it(
    pos, store, tee, action
):
    """The other order: the merge or erasure holds its members when the nightly run
    starts. The stage rewrote the scores and waited on the members at its commit; the
    merge, going on, wanted the score it deletes with the member: PostgreSQL killed the
    nightly run (recorded failed, no figures that night). Forced by holding the member's
    points, which the merge moves (and the erasure deletes) once it has its members."""
    ann, bob = _two_scored_members(pos, store)
    results: dict = {}
    points = Held(PointsEntry.objects.filter(member=ann))
    staff = in_thread(results, action, _merge_or_erase(action, ann, bob))
    until_waiting(1)  # holding the members, waiting on the held points
    night = in_thread(results, "nightly", lambda: nightly_run(run_date=date.today()).status)
    until_waiting(2)
    points.let_go()
    staff.join(30)
    night.join(30)
    assert results[action][0] == "ok", results
    assert results["nightly"] == ("ok", "succeeded"), results
    assert list(MemberScore.objects.values_list("member_id", flat=True)) == [bob.pk]


class MergeUncommitted:
    """Staff merging `other` into `survivor`, their transaction still open (the request not
    yet done) until released: the merge has deleted `other` and made its contacts aliases of
    the survivor, none of it committed."""

    def __init__(self, survivor: Member, other: Member):
        self.done, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._merge, args=(survivor.pk, other.pk))
        self.thread.start()
        assert self.done.wait(10)

    def _merge(self, survivor_id, other_id):
        try:
            with transaction.atomic():
                member_merge(survivor_id=survivor_id, other_id=other_id)
                self.done.set()
                self.release.wait(20)
        finally:
            connections.close_all()

    def commit(self):
        self.release.set()
        self.thread.join(20)


def test_an_upsert_waiting_on_a_member_being_merged_away_finds_the_survivor():
    """The upsert (POST members/, an order naming {email}) queued on the merged-away
    member's row; once the merge committed PostgreSQL skipped the deleted row, and the alias
    the merge made was not in the statement's snapshot: nobody was found and a new member
    took the email. Every upsert with it was then a 409 member_conflict (saying a phone
    conflicted), and merging the newcomer into the survivor a 500 on the alias."""
    from customers.services import Contact, member_upsert

    require_postgres()
    survivor = Member.objects.create(email="keep@example.com")
    other = Member.objects.create(email="gone@example.com", phone="+33612345678")
    merge = MergeUncommitted(survivor, other)
    results: dict = {}
    till = in_thread(
        results, "upsert", lambda: member_upsert(contact=Contact(email="GONE@example.com"))
    )
    until_waiting(1)
    merge.commit()
    till.join(20)
    assert results["upsert"][0] == "ok", results
    member, created = results["upsert"][1]
    assert (member.pk, created) == (survivor.pk, False)
    assert list(Member.objects.values_list("pk", flat=True)) == [survivor.pk]
    for contact in (Contact(email="gone@example.com"), Contact(phone="06 12 34 56 78")):
        assert member_upsert(contact=contact)[0].pk == survivor.pk, contact


def test_an_upsert_of_a_merged_away_email_with_another_members_phone_waits_then_conflicts():
    """The same race when the phone finds a third member: the skipped row left only the
    phone's member, who was given the email, so the email found two members."""
    from customers.services import Contact, member_upsert

    require_postgres()
    survivor = Member.objects.create(email="keep@example.com")
    other = Member.objects.create(email="gone@example.com")
    third = Member.objects.create(phone="+33698765432")
    merge = MergeUncommitted(survivor, other)
    results: dict = {}
    till = in_thread(
        results,
        "upsert",
        lambda: member_upsert(contact=Contact(email="gone@example.com", phone="0698765432")),
    )
    until_waiting(1)
    merge.commit()
    till.join(20)
    outcome, detail = results["upsert"]
    assert outcome == "error" and detail.startswith("MemberConflict"), results
    assert f"email finds member {survivor.pk}" in detail and f"phone finds member {third.pk}" in (
        detail
    )
    assert Member.objects.get(pk=third.pk).email is None


def test_an_offline_sale_for_a_member_being_merged_away_waits_and_books_to_the_survivor(
    pos, store, tee
):
    """The till syncs a sale for member B while staff merge B into A: the sale queues on
    B's row, finds it gone once the merge commits, and follows the merge to A (it was
    rejected unknown_member, though the goods had left)."""
    survivor = Member.objects.create(email="ann@example.com")
    other = Member.objects.create(phone="+33612345678")
    _, token = make_api_client(pos, store)
    merge = MergeUncommitted(survivor, other)
    results: dict = {}

    def sync():
        sales = [{"client_id": "s1", "member": other.pk, "lines": [{"sku": "TEE", "quantity": 1}]}]
        answer = as_client(token).post("/api/v1/pos/sync/", {"sales": sales}, format="json")
        return answer.json()["results"][0]["status"]

    till = in_thread(results, "sync", sync)
    until_waiting(1)
    merge.commit()
    till.join(20)
    assert results == {"sync": ("ok", "accepted")}, results
    from orders.models import Order

    order = Order.objects.get(client_id="s1")
    assert order.member_id == survivor.pk
    assert Member.objects.get(pk=survivor.pk).points == order.points_earned > 0
    assert_ledger_matches_levels()
