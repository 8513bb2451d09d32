"""Merge moves everything; erase leaves no personal data while sales totals stay; export
gives everything; points expire only past the period; tiers follow 12-month spend."""

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db.models import Sum
from django.utils import timezone
from rest_framework.test import APIClient

from customers.models import Member, MemberChannel, MemberEvent, PointsEntry
from customers.services import points_expire, tiers_recompute
from inventory.services import StockLine, stock_receive
from omnichannel.models import IdempotencyRecord
from orders.models import Order
from tests.conftest import as_client
from tests.factories import ChannelPriceFactory, VariantFactory, make_api_client, make_staff
from tests.privacy_helpers import assert_no_trace_anywhere
from tests.test_change_history import admin_form_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(web, pos, store):
    tee = VariantFactory(sku="TEE")
    for channel in (web, pos):
        ChannelPriceFactory(variant=tee, channel=channel, amount=Decimal("100.00"))
    stock_receive(lines=[StockLine(tee.pk, store.pk, 100)], reference="delivery")
    _, storefront = make_api_client(web, name="storefront")
    _, till = make_api_client(pos, store, name="till")
    staff = APIClient()
    staff.force_authenticate(
        make_staff(
            "care", "customers.view_member", "customers.change_member", "customers.delete_member"
        )
    )
    return {"web": as_client(storefront), "till": as_client(till), "staff": staff}


def buy(client, member, quantity=1, fulfillment="in_store", **extra):
    body = {
        "fulfillment": fulfillment,
        "lines": [{"sku": "TEE", "quantity": quantity}],
        "member": member,
        **extra,
    }
    response = client.post("/api/v1/orders/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_merge_moves_orders_points_channels_and_contact_and_leaves_no_orphan(shop):
    by_phone = buy(shop["till"], {"phone": "0612345678"})["member"]
    by_email = buy(
        shop["web"], {"email": "eve@example.com"}, fulfillment="pickup", pickup_location="lyon"
    )["member"]
    shop["web"].post(f"/api/v1/orders/{Order.objects.latest('id').pk}/picked-up/")
    points_before = Member.objects.aggregate(s=Sum("points"))["s"]
    response = shop["staff"].post(
        f"/api/v1/members/{by_phone}/merge/", {"other": by_email}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["email"], body["phone"]) == ("eve@example.com", "+33612345678")
    assert body["channels"] == ["pos", "web"]
    assert body["points"] == points_before == 200
    assert not Member.objects.filter(pk=by_email).exists()
    assert Order.objects.filter(member_id=by_phone).count() == 2
    assert not PointsEntry.objects.exclude(member_id=by_phone).exists()
    assert not MemberChannel.objects.exclude(member_id=by_phone).exists()
    event = MemberEvent.objects.get(kind="merged")
    assert (event.member_id_ref, event.other_id_ref) == (by_phone, by_email)
    # Now the email and the phone find the same person.
    again = shop["web"].post(
        "/api/v1/members/", {"email": "EVE@example.com", "phone": "+33612345678"}, format="json"
    )
    assert again.status_code == 200 and again.json()["id"] == by_phone


def test_erase_leaves_no_personal_data_and_sales_totals_unchanged(shop):
    shop["till"].post(
        "/api/v1/members/",
        {"email": "zoe@example.com", "phone": "0698765432", "first_name": "Zoé"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="signup-zoe",
    )
    member_id = buy(shop["till"], {"email": "zoe@example.com"}, quantity=2)["member"]
    totals_before = Order.objects.aggregate(s=Sum("total"))["s"]
    assert IdempotencyRecord.objects.filter(key="signup-zoe").exists()

    response = shop["staff"].post(f"/api/v1/members/{member_id}/erase/")
    assert response.status_code == 204
    assert not Member.objects.filter(pk=member_id).exists()
    assert Order.objects.aggregate(s=Sum("total"))["s"] == totals_before
    assert Order.objects.filter(member__isnull=True).count() == 1
    assert not PointsEntry.objects.exists()
    # Nowhere in any table (the change history and the admin log included) is she left.
    assert_no_trace_anywhere("zoe@example.com", "+33698765432", "zoé")
    assert MemberEvent.objects.filter(kind="erased", member_id_ref=member_id).exists()


def test_export_gives_everything_held_on_the_person(shop):
    member_id = buy(shop["till"], {"phone": "0611223344", "first_name": "Yann"})["member"]
    body = shop["staff"].get(f"/api/v1/members/{member_id}/export/").json()
    assert body["member"]["phone"] == "+33611223344"
    assert body["member"]["first_name"] == "Yann"
    assert [o["total"] for o in body["orders"]] == ["100.00"]
    assert body["points"] == [
        {"kind": "earned", "points": 100, "created_at": body["points"][0]["created_at"]}
    ]
    assert body["seen_in"][0]["channel"] == "pos"
    assert MemberEvent.objects.filter(kind="exported").count() == 1


def test_api_clients_and_staff_without_permission_cannot_merge_export_or_erase(shop):
    member_id = buy(shop["till"], {"phone": "0655555555"})["member"]
    viewer = APIClient()
    viewer.force_authenticate(make_staff("viewer", "customers.view_member"))
    for client in (shop["till"], viewer):
        assert client.post(f"/api/v1/members/{member_id}/erase/").status_code == 403
        assert (
            client.post(
                f"/api/v1/members/{member_id}/merge/", {"other": 1}, format="json"
            ).status_code
            == 403
        )
    assert shop["till"].get(f"/api/v1/members/{member_id}/export/").status_code == 403
    assert Member.objects.filter(pk=member_id).exists()


def test_a_user_who_is_not_staff_cannot_merge_export_or_erase_whatever_permissions(shop):
    """Permissions given to an account that is not (or no longer) staff do not open these:
    the rest of the API refuses such an account, and so do they."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    member_id = buy(shop["till"], {"phone": "0655555556"})["member"]
    other_id = buy(shop["till"], {"phone": "0655555557"})["member"]
    user = get_user_model().objects.create_user(username="ex-staff", password="pw-123-456-789")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_member", "change_member", "delete_member"])
    )
    outsider = APIClient()
    outsider.force_authenticate(user)
    assert outsider.get(f"/api/v1/members/{member_id}/").status_code == 403
    assert outsider.get(f"/api/v1/members/{member_id}/export/").status_code == 403
    merged = outsider.post(
        f"/api/v1/members/{member_id}/merge/", {"other": other_id}, format="json"
    )
    assert merged.status_code == 403
    assert outsider.post(f"/api/v1/members/{member_id}/erase/").status_code == 403
    assert Member.objects.filter(pk__in=[member_id, other_id]).count() == 2
    assert Member.objects.get(pk=member_id).phone  # not erased
    assert not MemberEvent.objects.exists()  # nothing exported, merged or erased


def test_expiry_removes_only_points_past_the_period_and_spends_oldest_first(shop):
    member_id = buy(shop["till"], {"phone": "0677777777"})["member"]  # +100, to age
    old = PointsEntry.objects.get(member_id=member_id)
    PointsEntry.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=400))
    buy(
        shop["till"], member_id, redeem_points=30, payments=[{"method": "card", "amount": "99.70"}]
    )  # spends 30 of the old 100, earns 99
    assert Member.objects.get(pk=member_id).points == 169
    assert points_expire() == 70  # the old 100 less the 30 already spent
    assert Member.objects.get(pk=member_id).points == 99  # the recent points stay
    assert points_expire() == 0  # twice is harmless
    ledger_sum = PointsEntry.objects.filter(member_id=member_id).aggregate(s=Sum("points"))["s"]
    assert ledger_sum == 99


def test_points_earned_on_one_local_day_expire_together_on_one_night(settings):
    """Beat expires points at 02:00 local time. 100 points earned at 01:00 Paris on 1 June
    2025 (23:00 UTC on 31 May) and 100 at 10:00 are points of one day. The cutoff was now
    less 365 days to the second: the run of 1 June 2026 took the first 100, kept the second,
    and noted "earned before 2025-06-01" (the cutoff's UTC date) on points earned on 1 June.
    The cutoff is the start of the local day: both go the night after, under a note naming
    the day they were earned before, and a second run that night takes nothing more."""
    settings.TIME_ZONE = "Europe/Paris"
    paris = ZoneInfo("Europe/Paris")
    member = Member.objects.create(email="ann@example.com", points=200)
    for hour in (1, 10):
        earned = PointsEntry.objects.create(member=member, kind="earned", points=100)
        PointsEntry.objects.filter(pk=earned.pk).update(
            created_at=datetime(2025, 6, 1, hour, 0, tzinfo=paris)
        )
    assert points_expire(now=datetime(2026, 6, 1, 2, 0, tzinfo=paris)) == 0  # a year on
    assert not PointsEntry.objects.filter(kind="expired").exists()
    assert points_expire(now=datetime(2026, 6, 2, 2, 0, tzinfo=paris)) == 200  # the night after
    assert points_expire(now=datetime(2026, 6, 2, 2, 5, tzinfo=paris)) == 0  # twice: nothing
    notes = list(PointsEntry.objects.filter(kind="expired").values_list("note", flat=True))
    assert notes == ["earned before 2025-06-02"]
    assert Member.objects.get(pk=member.pk).points == 0


def test_a_member_merged_away_during_the_nightly_expiry_does_not_stop_it(monkeypatch):
    """The run finds the members with old points, then locks each: one merged into another
    (or erased) in between raised Member.DoesNotExist and stopped the run, the members after
    them keeping their old points. The one gone is skipped; their points moved with the
    merge and expire on the survivor."""
    from customers import services
    from customers.privacy import member_merge

    members = [Member.objects.create(email=f"{n}@example.com", points=100) for n in "abc"]
    for member in members:
        earned = PointsEntry.objects.create(member=member, kind="earned", points=100)
        PointsEntry.objects.filter(pk=earned.pk).update(
            created_at=timezone.now() - timedelta(days=400)
        )
    lock = services._locked
    merged = []

    def merged_first(member_id):
        if not merged:  # staff merge the first member the run locks into another meanwhile
            survivor = next(m for m in members if m.pk != member_id)
            merged.append(member_merge(survivor_id=survivor.pk, other_id=member_id))
        return lock(member_id)

    monkeypatch.setattr(services, "_locked", merged_first)
    assert points_expire() == 300
    assert list(Member.objects.values_list("points", flat=True)) == [0, 0]
    assert PointsEntry.objects.aggregate(s=Sum("points"))["s"] == 0


def test_tier_follows_trailing_twelve_month_spend_and_multiplies_earnings(shop, settings):
    settings.TIER_SPEND_THRESHOLDS = {"gold": "1500.00", "silver": "500.00"}
    member_id = buy(shop["till"], {"phone": "0688888888"}, quantity=6)["member"]  # 600.00
    assert tiers_recompute() == 1
    assert Member.objects.get(pk=member_id).tier == "silver"
    assert buy(shop["till"], member_id)["points_earned"] == 125  # 100 x 1.25
    Order.objects.filter(member_id=member_id).update(
        created_at=timezone.now() - timedelta(days=400)
    )
    assert tiers_recompute() == 1
    assert Member.objects.get(pk=member_id).tier == "basic"
    assert tiers_recompute() == 0


def test_a_past_return_nets_the_same_spend_when_points_are_repriced(shop, settings):
    """Six tees (600.00), 100.00 of them paid with 10,000 points at 0.01; one comes back
    (worth 100.00): 500.00 of spend, silver. The return was valued as money given back plus
    points at today's POINT_VALUE: at 0.05 it counted 166.64 and the member fell to basic."""
    settings.TIER_SPEND_THRESHOLDS = {"gold": "1500.00", "silver": "500.00"}
    settings.POINT_VALUE = "0.01"
    member = Member.objects.create(phone="+33688888889", points=10_000)
    sale = buy(
        shop["till"],
        member.pk,
        quantity=6,
        redeem_points=10_000,
        payments=[{"method": "card", "amount": "500.00"}],
    )
    back = shop["till"].post(
        "/api/v1/returns/",
        {
            "order": sale["id"],
            "location": "lyon",
            "restock": True,
            "lines": [{"sku": "TEE", "quantity": 1}],
        },
        format="json",
    )
    assert back.status_code == 201, back.json()
    assert back.json()["lines"][0]["refund"] == "100.00"
    assert tiers_recompute() == 1
    assert Member.objects.get(pk=member.pk).tier == "silver"
    settings.POINT_VALUE = "0.05"  # the loyalty programme is repriced later on
    assert tiers_recompute() == 0
    assert Member.objects.get(pk=member.pk).tier == "silver"


def test_the_member_admin_stores_contact_details_as_the_tills_find_them(client):
    """Typed as they came, the next look-up by the lower-cased email missed the member and
    made the same person a second one."""
    from customers.services import Contact, member_upsert
    from tests.test_change_history import admin_form_data

    member, _ = member_upsert(contact=Contact(email="old@example.com"))
    client.force_login(make_staff("care", "customers.view_member", "customers.change_member"))
    url = f"/admin/customers/member/{member.pk}/change/"
    data = admin_form_data(client.get(url))
    data.update(email=" Jo.Doe@Example.COM ", phone="06 12 34 56 78")
    assert client.post(url, data).status_code == 302
    stored = Member.objects.get(pk=member.pk)
    assert (stored.email, stored.phone) == ("jo.doe@example.com", "+33612345678")
    again, created = member_upsert(contact=Contact(email="jo.doe@example.com"))
    assert (again.pk, created) == (member.pk, False)
    data.update(email="not an email", phone="12")
    refused = client.post(url, data)
    assert refused.status_code == 200
    assert set(refused.context["adminform"].form.errors) == {"email", "phone"}


def test_a_consent_withdrawn_in_the_admin_is_dated_so_a_merge_keeps_it_withdrawn(client):
    """The newer decision wins a merge: a withdrawal kept the old grant's date, so merging
    with a duplicate that had consented since switched the emails back on."""
    from datetime import timedelta

    from customers.privacy import member_merge
    from customers.services import Contact, member_upsert
    from tests.test_change_history import admin_form_data

    duplicate, _ = member_upsert(
        contact=Contact(phone="+33611111111", email_consent=True), source="pos"
    )
    Member.objects.filter(pk=duplicate.pk).update(
        email_consent_at=timezone.now() - timedelta(days=10)
    )
    member, _ = member_upsert(
        contact=Contact(email="jo@example.com", email_consent=True), source="web"
    )
    Member.objects.filter(pk=member.pk).update(email_consent_at=timezone.now() - timedelta(days=30))
    client.force_login(make_staff("care", "customers.view_member", "customers.change_member"))
    url = f"/admin/customers/member/{member.pk}/change/"
    data = admin_form_data(client.get(url))
    data.pop("email_consent")  # unticked
    assert client.post(url, data).status_code == 302
    withdrawn = Member.objects.get(pk=member.pk)
    assert withdrawn.email_consent is False and withdrawn.email_consent_source == "admin"
    assert withdrawn.email_consent_at > timezone.now() - timedelta(minutes=1)
    assert member_merge(survivor_id=member.pk, other_id=duplicate.pk).email_consent is False


def test_the_member_admin_erases_instead_of_deleting_and_only_for_the_whole_business(client):
    """Django's delete kept the person's history and log (the history page still showed
    their email) and was open to store-limited staff, whom the API refuses erasure."""
    from customers.services import Contact, member_upsert
    from omnichannel.models import StaffStoreLimit
    from tests.factories import LocationFactory

    member, _ = member_upsert(contact=Contact(email="gone@example.com", phone="+33699999999"))
    perms = ("customers.view_member", "customers.change_member", "customers.delete_member")
    limited = make_staff("store-a", *perms)
    StaffStoreLimit.objects.create(user=limited).locations.set([LocationFactory(code="a")])
    client.force_login(limited)
    assert client.get(f"/admin/customers/member/{member.pk}/delete/").status_code == 403
    listing = client.get("/admin/customers/member/")
    actions = [value for value, _ in listing.context["action_form"].fields["action"].choices]
    assert "erase" not in actions and "delete_selected" not in actions
    refused = client.post(
        "/admin/customers/member/", {"action": "erase", "_selected_action": [member.pk]}
    )
    assert refused.status_code in (200, 302)  # no such action for them: the list again
    assert Member.objects.filter(pk=member.pk).exists()

    client.force_login(make_staff("privacy-officer", *perms))
    done = client.post(
        "/admin/customers/member/", {"action": "erase", "_selected_action": [member.pk]}
    )
    assert done.status_code == 302
    assert not Member.objects.filter(pk=member.pk).exists()
    assert MemberEvent.objects.filter(kind="erased", member_id_ref=member.pk).exists()
    assert_no_trace_anywhere("gone@example.com", "+33699999999")


def test_merging_a_member_with_itself_is_invalid_with_the_field_named(shop):
    member_id = buy(shop["till"], {"phone": "0612340000"})["member"]
    response = shop["staff"].post(
        f"/api/v1/members/{member_id}/merge/", {"other": member_id}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert response.json()["errors"] == {"other": [response.json()["detail"]]}


def test_erasure_removes_stored_answers_under_old_and_merged_in_contacts(shop):
    """Stored signup answers (Idempotency-Key replays) hold the contact given then: an email
    changed since, or one of a member merged into this one, is the person's too. The
    erasure removes those answers, as it removes the ones under the current email."""
    changed = (
        shop["web"]
        .post(
            "/api/v1/members/",
            {"email": "old.address@example.com", "first_name": "Ursula"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="signup-ursula",
        )
        .json()
    )
    member = Member.objects.get(pk=changed["id"])
    member.email = "new.address@example.com"  # corrected later, by support
    member.save()
    online = (
        shop["web"]
        .post(
            "/api/v1/members/",
            {"email": "bob.home@example.com", "first_name": "Bobby"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="signup-bob",
        )
        .json()
    )
    survivor = (
        shop["till"]
        .post("/api/v1/members/", {"email": "bob.work@example.com"}, format="json")
        .json()
    )
    merged = shop["staff"].post(
        f"/api/v1/members/{survivor['id']}/merge/", {"other": online["id"]}, format="json"
    )
    assert merged.status_code == 200
    for erased in (member.pk, survivor["id"]):
        assert shop["staff"].post(f"/api/v1/members/{erased}/erase/").status_code == 204
    assert not IdempotencyRecord.objects.filter(key__in=["signup-ursula", "signup-bob"]).exists()
    assert_no_trace_anywhere("old.address@example.com", "ursula", "bob.home@example.com", "bobby")


def test_erasing_one_member_keeps_the_stored_answer_of_an_email_containing_theirs(shop):
    """Erasing an@example.com must not take joan@example.com's stored answer with it (its
    text contains the other): Joan's retry under her key still replays her first 201."""
    body = {"email": "joan@example.com"}
    first = shop["web"].post("/api/v1/members/", body, format="json", HTTP_IDEMPOTENCY_KEY="joan")
    assert first.status_code == 201
    ann = shop["till"].post("/api/v1/members/", {"email": "an@example.com"}, format="json")
    assert shop["staff"].post(f"/api/v1/members/{ann.json()['id']}/erase/").status_code == 204
    replay = shop["web"].post("/api/v1/members/", body, format="json", HTTP_IDEMPOTENCY_KEY="joan")
    assert (replay.status_code, replay.json()) == (201, first.json())


def test_the_export_holds_earlier_details_scores_payments_and_returns(shop):
    """Everything held on the person: the details they had before (the change history,
    theirs and of a member merged into them), the nightly profile members/{id}/ shows, and
    per order its payments and returns."""
    from datetime import date

    from analytics.models import MemberScore

    member_id = buy(shop["till"], {"phone": "0611223355"})["member"]
    other_id = (
        shop["web"]
        .post("/api/v1/members/", {"email": "first@example.com"}, format="json")
        .json()["id"]
    )
    merged = shop["staff"].post(
        f"/api/v1/members/{member_id}/merge/", {"other": other_id}, format="json"
    )
    assert merged.status_code == 200
    member = Member.objects.get(pk=member_id)
    member.email = "second@example.com"
    member.save()
    MemberScore.objects.create(
        member_id=member_id,
        as_of=date(2026, 11, 30),
        first_purchase=date(2026, 1, 1),
        last_purchase=date(2026, 11, 1),
        recency_days=29,
        frequency=3,
        monetary=Decimal("100.00"),
        r_score=3,
        f_score=3,
        m_score=4,
        segment="at_risk",
        first_channel="store",
        p_alive=0.42,
        clv_12m=Decimal("123.45"),
    )
    order = Order.objects.get(member_id=member_id)
    returned = shop["till"].post(
        "/api/v1/returns/",
        {
            "order": order.pk,
            "location": "lyon",
            "lines": [{"sku": "TEE", "quantity": 1}],
            "restock": True,
        },
        format="json",
    )
    assert returned.status_code == 201, returned.json()
    body = shop["staff"].get(f"/api/v1/members/{member_id}/export/").json()
    held = {(h["member"], h["email"]) for h in body["history"]}
    assert {(other_id, "first@example.com"), (member_id, "second@example.com")} <= held
    scores = body["profile_scores"]
    assert (scores["segment"], scores["rfm"], scores["clv_12m"]) == ("at_risk", [3, 3, 4], "123.45")
    [exported] = body["orders"]
    assert exported["payments"] == [
        {"method": p.method, "amount": str(p.amount)} for p in order.payments.all()
    ]
    [ret] = exported["returns"]
    assert (ret["location"], ret["refund"], ret["lines"]) == (
        "lyon",
        returned.json()["refund"],
        [{"sku": "TEE", "quantity": 1, "refund": "100.00"}],
    )


def test_a_phone_with_letters_is_refused_not_read_off_a_keypad(shop):
    """phonenumbers reads letters as a keypad's: "06 12 34 AD GJ" was +33612342345, another
    member's number, found and attached to; "ext 12" was dropped. Both are 400 now, for the
    upsert and the look-up."""
    owner = shop["till"].post("/api/v1/members/", {"phone": "0612342345"}, format="json").json()
    for phone in ("06 12 34 AD GJ", "0612ABCDEF", "0612342345 ext 12"):
        upsert = shop["web"].post("/api/v1/members/", {"phone": phone}, format="json")
        assert upsert.status_code == 400, phone
        assert upsert.json()["errors"]["phone"]
        look_up = shop["till"].get("/api/v1/members/", {"phone": phone})
        assert look_up.status_code == 400, phone
    assert list(Member.objects.values_list("pk", flat=True)) == [owner["id"]]
    for written in ("+33 (0)6 12-34.23/45", "0033612342345"):
        found = shop["till"].post("/api/v1/members/", {"phone": written}, format="json")
        assert (found.status_code, found.json()["id"]) == (200, owner["id"]), written


def test_a_merged_away_email_and_phone_still_find_the_person(shop, client):
    """Two accounts of one person, each with its own email and phone: the survivor keeps its
    own, and the merged-away ones were lost, so the next order under the home email made a
    third member with no points. They stay as aliases: the upsert and the look-up find the
    survivor, an order under them earns on the survivor, the export lists them, the admin
    refuses to give them to someone else, and the erasure takes them."""
    home = buy(
        shop["web"],
        {"email": "ann.home@example.com", "phone": "0611110000"},
        fulfillment="pickup",
        pickup_location="lyon",
    )["member"]
    work = buy(shop["till"], {"email": "ann.work@example.com", "phone": "0622220000"})["member"]
    merged = shop["staff"].post(f"/api/v1/members/{work}/merge/", {"other": home}, format="json")
    assert merged.status_code == 200
    assert (merged.json()["email"], merged.json()["phone"]) == (
        "ann.work@example.com",
        "+33622220000",
    )
    for contact in ({"email": " Ann.Home@Example.com"}, {"phone": "06 11 11 00 00"}):
        again = shop["web"].post("/api/v1/members/", contact, format="json")
        assert (again.status_code, again.json()["id"]) == (200, work), contact
        looked_up = shop["till"].get("/api/v1/members/", contact).json()["results"]
        assert [m["id"] for m in looked_up] == [work], contact
    points = Member.objects.get(pk=work).points
    earned = buy(shop["till"], {"email": "ann.home@example.com"})
    assert earned["member"] == work
    assert Member.objects.get(pk=work).points == points + earned["points_earned"]
    assert Member.objects.count() == 1
    exported = shop["staff"].get(f"/api/v1/members/{work}/export/").json()
    assert {(c["kind"], c["value"]) for c in exported["other_contacts"]} == {
        ("email", "ann.home@example.com"),
        ("phone", "+33611110000"),
    }
    other = Member.objects.create(email="someone@example.com")
    client.force_login(make_staff("desk", "customers.view_member", "customers.change_member"))
    url = f"/admin/customers/member/{other.pk}/change/"
    page = client.post(url, {**admin_form_data(client.get(url)), "email": "ann.home@example.com"})
    assert page.status_code == 200 and f"belongs to member {work}" in page.content.decode()
    assert Member.objects.get(pk=other.pk).email == "someone@example.com"
    assert shop["staff"].post(f"/api/v1/members/{work}/erase/").status_code == 204
    assert_no_trace_anywhere("ann.home@example.com", "+33611110000", "ann.work@example.com")


def test_merging_a_member_under_an_email_that_already_finds_the_survivor_is_done(shop, client):
    """A member made under an email the survivor already held as an alias (an upsert that
    raced an earlier merge did so): merging them into the survivor was a 500, the alias
    being made a second time. The one alias stays, and the email finds the survivor."""
    from customers.models import MemberAlias
    from customers.services import Contact, member_upsert

    survivor = Member.objects.create(email="keep@example.com")
    MemberAlias.objects.create(member=survivor, kind="email", value="gone@example.com")
    duplicate = Member.objects.create(email="gone@example.com", phone="+33612345678")
    merged = shop["staff"].post(
        f"/api/v1/members/{survivor.pk}/merge/", {"other": duplicate.pk}, format="json"
    )
    assert merged.status_code == 200, merged.json()
    assert list(MemberAlias.objects.values_list("member_id", "value")) == [
        (survivor.pk, "gone@example.com")
    ]
    assert member_upsert(contact=Contact(email="gone@example.com"))[0].pk == survivor.pk


def test_merging_a_member_whose_email_also_finds_a_third_member_is_a_409(shop, client):
    """The merged-away email an alias of someone else as well: making it the survivor's
    alias too was a 500 on the alias's constraint (from the API, and from the admin's
    action). It is a 409 member_conflict naming that member, and nothing moves."""
    from customers.models import MemberAlias

    survivor = Member.objects.create(email="keep@example.com")
    third = Member.objects.create(email="third@example.com")
    MemberAlias.objects.create(member=third, kind="email", value="gone@example.com")
    duplicate = Member.objects.create(email="gone@example.com", points=5)
    refused = shop["staff"].post(
        f"/api/v1/members/{survivor.pk}/merge/", {"other": duplicate.pk}, format="json"
    )
    assert refused.status_code == 409, refused.json()
    assert (refused.json()["code"], refused.json()["members"]) == ("member_conflict", [third.pk])
    assert f"member {third.pk}" in refused.json()["detail"]
    assert Member.objects.get(pk=duplicate.pk).points == 5
    assert not MemberEvent.objects.exists()
    client.force_login(make_staff("desk", "customers.view_member", "customers.change_member"))
    page = client.post(
        "/admin/customers/member/",
        {"action": "merge", "_selected_action": [survivor.pk, duplicate.pk]},
        follow=True,
    )
    assert page.status_code == 200
    assert f"also finds member {third.pk}, kept from an earlier merge" in page.content.decode()
    assert Member.objects.filter(pk=duplicate.pk).exists()
