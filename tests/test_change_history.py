"""Who changed a price, a stock level or a member, when, from where, from what to what: the
change history shown in the admin, and stock movements naming the person or till behind them.
"""

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from catalog.models import Product
from customers.models import Member, MemberEvent
from customers.services import Contact, member_upsert
from inventory.models import StockMovement
from inventory.services import StockLine, stock_receive
from omnichannel.roles import MANAGER, MERCHANDISER
from tests.conftest import as_client
from tests.factories import (
    ChannelLocationFactory,
    ChannelPriceFactory,
    LocationFactory,
    VariantFactory,
    make_api_client,
    make_staff,
)
from tests.privacy_helpers import assert_no_trace_anywhere

pytestmark = pytest.mark.django_db


def staff_in(role: str, username: str):
    user = make_staff(username)
    user.groups.add(Group.objects.get(name=role))
    return user


def admin_form_data(response) -> dict:
    """What the browser would post back from an admin change form as shown, inlines
    included: change a value in it and post it."""
    forms = [response.context["adminform"].form]
    data = {}
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
        forms += inline.formset.forms
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            data[form.add_prefix(name)] = "on" if value is True else value
    return data


def changes(record) -> dict[str, tuple]:
    """{field: (old, new)} between a history row and the one before it."""
    delta = record.diff_against(record.prev_record)
    return {change.field: (change.old, change.new) for change in delta.changes}


# --- prices ----------------------------------------------------------------------------


@pytest.fixture
def price(web):
    return ChannelPriceFactory(
        variant=VariantFactory(sku="TEE-M"), channel=web, amount=Decimal("19.90")
    )


def test_a_price_changed_in_the_admin_shows_who_when_and_old_to_new_on_its_history_page(
    client, price
):
    merchandiser = staff_in(MERCHANDISER, "mia")
    client.force_login(merchandiser)
    url = f"/admin/catalog/channelprice/{price.pk}/change/"
    data = admin_form_data(client.get(url))
    data["amount"] = "24.50"
    assert client.post(url, data).status_code == 302

    record = price.history.first()  # newest first
    assert (record.history_type, record.history_user, record.history_source) == (
        "~",
        merchandiser,
        "admin",
    )
    assert record.history_api_client is None
    assert changes(record) == {"amount": (Decimal("19.90"), Decimal("24.50"))}
    page = client.get(f"/admin/catalog/channelprice/{price.pk}/history/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "19.90" in text and "24.50" in text and "mia" in text and "Admin" in text

    # Anyone who may see prices reads the history; a manager cannot edit, nor revert.
    client.force_login(staff_in(MANAGER, "max"))
    assert client.get(f"/admin/catalog/channelprice/{price.pk}/history/").status_code == 200


def test_a_price_edited_inline_on_its_variant_page_names_the_staff_member(client, price):
    merchandiser = staff_in(MERCHANDISER, "mia")
    client.force_login(merchandiser)
    url = f"/admin/catalog/variant/{price.variant_id}/change/"
    data = admin_form_data(client.get(url))
    [amount_field] = [key for key in data if key.endswith("-amount")]
    data[amount_field] = "17.00"
    response = client.post(url, data)
    assert response.status_code == 302, response.context["errors"]
    record = price.history.first()
    assert (record.history_user, record.history_source) == (merchandiser, "admin")
    assert changes(record) == {"amount": (Decimal("19.90"), Decimal("17.00"))}


def test_a_price_sheet_import_records_the_importer_and_old_to_new(client, price, pos):
    unchanged = ChannelPriceFactory(variant=price.variant, channel=pos, amount=Decimal("18.00"))
    merchandiser = staff_in(MERCHANDISER, "mia")
    client.force_login(merchandiser)
    sheet = "sku,channel,amount,published\nTEE-M,web,21.00,1\nTEE-M,pos,18.00,1\n"
    form = client.get("/admin/catalog/channelprice/import/").context["form"]
    csv = next(value for value, label in form.fields["format"].choices if label == "csv")
    preview = client.post(
        "/admin/catalog/channelprice/import/",
        {"import_file": SimpleUploadedFile("prices.csv", sheet.encode()), "format": csv},
    )
    assert price.history.count() == 1  # the preview wrote nothing, history neither
    confirm = preview.context["confirm_form"].initial
    assert client.post("/admin/catalog/channelprice/process_import/", confirm).status_code == 302

    record = price.history.first()
    assert (record.history_user, record.history_source) == (merchandiser, "import")
    assert changes(record) == {"amount": (Decimal("19.90"), Decimal("21.00"))}
    assert unchanged.history.count() == 1  # a row the sheet leaves as it was adds no history
    text = client.get(f"/admin/catalog/channelprice/{price.pk}/history/").content.decode()
    assert "CSV import" in text and "21.00" in text


def test_a_price_changed_by_a_command_or_task_is_recorded_as_the_system(price):
    price.amount = Decimal("9.99")
    price.save()
    record = price.history.first()
    assert (record.history_user, record.history_api_client, record.history_source) == (
        None,
        None,
        "system",
    )


def test_price_changes_list_shows_old_and_new_amounts_with_constant_queries(
    client, price, web, django_assert_max_num_queries
):
    client.force_login(staff_in(MANAGER, "max"))
    with django_assert_max_num_queries(30) as few:
        page = client.get("/admin/catalog/historicalchannelprice/")
    assert page.status_code == 200
    for n in range(10):
        price.amount = Decimal("20.00") + n
        price.save()
        ChannelPriceFactory(channel=web)
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = client.get("/admin/catalog/historicalchannelprice/")
    rows = list(page.context["cl"].result_list)
    assert len(rows) == 21
    newest = next(row for row in rows if row.id == price.pk)  # newest first
    assert (newest.amount_before, newest.amount) == (Decimal("28.00"), Decimal("29.00"))
    created = [row for row in rows if row.history_type == "+"]
    assert all(row.amount_before is None for row in created)  # nothing before a new price

    client.force_login(make_staff("nobody"))
    assert client.get("/admin/catalog/historicalchannelprice/").status_code == 403


def test_the_history_is_read_only_a_past_version_is_never_saved_back(client, price):
    price.amount = Decimal("30.00")
    price.save()
    client.force_login(make_staff("root", superuser=True))
    first = price.history.last()
    url = f"/admin/catalog/channelprice/{price.pk}/history/{first.history_id}/"
    page = client.get(url)
    assert page.status_code == 200 and "Revert" not in page.content.decode()
    data = {"variant": price.variant_id, "channel": price.channel_id, "amount": "19.90"}
    assert client.post(url, data).status_code == 403
    price.refresh_from_db()
    assert price.amount == Decimal("30.00")


def test_a_product_edit_in_the_admin_is_in_its_history_without_bookkeeping_fields(client):
    product = VariantFactory(sku="MUG").product
    merchandiser = staff_in(MERCHANDISER, "mia")
    client.force_login(merchandiser)
    url = f"/admin/catalog/product/{product.pk}/change/"
    data = admin_form_data(client.get(url))
    data["name"] = "Big mug"
    assert client.post(url, data).status_code == 302
    record = Product.history.filter(id=product.pk).first()
    assert record.history_user == merchandiser
    assert changes(record) == {"name": (product.name, "Big mug")}  # not updated_at


# --- stock -----------------------------------------------------------------------------


@pytest.fixture
def stores(pos, store):
    paris = LocationFactory(code="paris")
    ChannelLocationFactory(channel=pos, location=paris, priority=2)
    tee = VariantFactory(sku="TEE-M")
    stock_receive(lines=[StockLine(tee.pk, store.pk, 10)], reference="delivery")
    lyon_till, lyon_token = make_api_client(pos, store, name="lyon till")
    paris_till, paris_token = make_api_client(pos, paris, name="paris till")
    return lyon_till, as_client(lyon_token), paris_till, as_client(paris_token)


def actors(queryset) -> list[tuple]:
    return [
        (m.reason, m.created_by and m.created_by.username, m.api_client and m.api_client.name)
        for m in queryset.select_related("created_by", "api_client").order_by("id")
    ]


def test_stock_adjustments_counts_and_transfers_by_api_name_the_till_or_staff_member(stores):
    _, lyon, _, paris = stores
    start = StockMovement.objects.latest("id").pk
    body = {"sku": "TEE-M", "location": "lyon", "delta": -1, "reason": "damage"}
    assert lyon.post("/api/v1/stock/adjustments/", body, format="json").status_code == 201
    counted = {"sku": "TEE-M", "location": "lyon", "counted": 8, "reason": "count"}
    assert lyon.post("/api/v1/stock/adjustments/", counted, format="json").status_code == 201
    transfer = lyon.post(
        "/api/v1/stock/transfers/",
        {
            "from_location": "lyon",
            "to_location": "paris",
            "lines": [{"sku": "TEE-M", "quantity": 2}],
        },
        format="json",
    ).json()["id"]
    assert lyon.post(f"/api/v1/stock/transfers/{transfer}/ship/").status_code == 200
    assert paris.post(f"/api/v1/stock/transfers/{transfer}/receive/").status_code == 200
    staff = APIClient()
    staff.force_authenticate(make_staff("clerk", "inventory.add_stockmovement"))
    correction = {"sku": "TEE-M", "location": "paris", "delta": 1, "reason": "correction"}
    assert staff.post("/api/v1/stock/adjustments/", correction, format="json").status_code == 201

    assert actors(StockMovement.objects.filter(pk__gt=start)) == [
        ("damage", None, "lyon till"),
        ("count", None, "lyon till"),
        ("reservation", None, "lyon till"),
        ("transfer_out", None, "lyon till"),
        ("transfer_in", None, "paris till"),
        ("correction", "clerk", None),
    ]


def test_stock_adjustments_and_counts_in_the_admin_name_the_staff_member_in_the_ledger(
    client, stores
):
    _, lyon, _, _ = stores
    merchandiser = staff_in(MERCHANDISER, "mia")
    client.force_login(merchandiser)
    start = StockMovement.objects.latest("id").pk
    for kind, quantity in (("delta", 3), ("counted", 20)):
        form = {
            "sku": "TEE-M",
            "location": "lyon",
            "kind": kind,
            "quantity": quantity,
            "reason": "receipt",
        }
        assert client.post("/admin/inventory/stocklevel/adjust/", form).status_code == 302
    assert actors(StockMovement.objects.filter(pk__gt=start)) == [
        ("receipt", "mia", None),
        ("count", "mia", None),
    ]
    # The ledger page names them, and finds a person's or a till's movements.
    lyon.post(
        "/api/v1/stock/adjustments/",
        {"sku": "TEE-M", "location": "lyon", "delta": -1, "reason": "theft"},
        format="json",
    )
    ledger = client.get("/admin/inventory/stockmovement/").content.decode()
    assert "mia" in ledger and "lyon till" in ledger
    found = client.get("/admin/inventory/stockmovement/", {"q": "lyon till"})
    assert [m.reason for m in found.context["cl"].result_list] == ["theft"]


# --- members ---------------------------------------------------------------------------


@pytest.fixture
def shop(web, pos, store):
    tee = VariantFactory(sku="TEE")
    for channel in (web, pos):
        ChannelPriceFactory(variant=tee, channel=channel, amount=Decimal("10.00"))
    stock_receive(lines=[StockLine(tee.pk, store.pk, 100)], reference="delivery")
    till, till_token = make_api_client(pos, store, name="till")
    _, web_token = make_api_client(web, name="storefront")
    return till, as_client(till_token), as_client(web_token)


def test_a_till_signing_a_member_up_and_completing_them_is_in_their_history(client, shop):
    till, till_api, _ = shop
    created = till_api.post("/api/v1/members/", {"email": "ana@example.com"}, format="json")
    assert created.status_code == 201
    member = Member.objects.get(pk=created.json()["id"])
    completed = {"email": "ana@example.com", "phone": "0611111111", "first_name": "Ana"}
    assert till_api.post("/api/v1/members/", completed, format="json").status_code == 200

    new, done = member.history.order_by("history_id")
    assert (new.history_type, new.history_api_client, new.history_source) == ("+", till, "api")
    assert (done.history_type, done.history_api_client, done.history_user) == ("~", till, None)
    assert changes(done) == {"phone": (None, "+33611111111"), "first_name": ("", "Ana")}
    client.force_login(make_staff("care", "customers.view_member"))
    page = client.get(f"/admin/customers/member/{member.pk}/history/").content.decode()
    assert "till [pos/lyon]" in page and "+33611111111" in page


def test_finding_a_member_again_or_selling_to_them_adds_no_history(shop):
    _, till_api, _ = shop
    signup = till_api.post("/api/v1/members/", {"phone": "0622222222"}, format="json")
    member_id = signup.json()["id"]
    before = Member.history.count()
    again = till_api.post("/api/v1/members/", {"phone": "06 22 22 22 22"}, format="json")
    assert again.status_code == 200
    sale = {
        "fulfillment": "in_store",
        "lines": [{"sku": "TEE", "quantity": 1}],
        "member": {"phone": "+33622222222"},
    }
    response = till_api.post("/api/v1/orders/", sale, format="json")
    assert response.status_code == 201 and response.json()["points_earned"] > 0
    assert Member.objects.get(pk=member_id).points > 0  # points moved: their ledger says so
    assert Member.history.count() == before


def test_a_member_edited_in_the_admin_shows_who_and_old_to_new(client):
    member, _ = member_upsert(contact=Contact(email="bo@example.com", first_name="Bo"))
    care = make_staff("care", "customers.view_member", "customers.change_member")
    client.force_login(care)
    url = f"/admin/customers/member/{member.pk}/change/"
    data = admin_form_data(client.get(url))
    data["first_name"] = "Bob"
    response = client.post(url, data)
    assert response.status_code == 302, response.context["errors"]
    record = member.history.first()
    assert (record.history_user, record.history_source) == (care, "admin")
    assert changes(record) == {"first_name": ("Bo", "Bob")}
    text = client.get(f"/admin/customers/member/{member.pk}/history/").content.decode()
    assert "Bo" in text and "Bob" in text and "care" in text


def test_a_merge_is_in_both_members_histories_with_the_staff_member(shop):
    _, till_api, web_api = shop
    by_phone = till_api.post("/api/v1/members/", {"phone": "0633333333"}, format="json").json()
    by_email = web_api.post("/api/v1/members/", {"email": "cy@example.com"}, format="json").json()
    care = make_staff("care", "customers.view_member", "customers.change_member")
    staff = APIClient()
    staff.force_authenticate(care)
    merged = staff.post(
        f"/api/v1/members/{by_phone['id']}/merge/", {"other": by_email["id"]}, format="json"
    )
    assert merged.status_code == 200

    survivor = Member.history.filter(id=by_phone["id"]).first()
    assert (survivor.history_user, survivor.history_change_reason) == (
        care,
        f"member {by_email['id']} merged into this one",
    )
    assert changes(survivor) == {"email": (None, "cy@example.com")}
    gone = Member.history.filter(id=by_email["id"]).first()
    assert (gone.history_type, gone.history_user, gone.history_change_reason) == (
        "-",
        care,
        f"merged into member {by_phone['id']}",
    )


def test_erase_deletes_the_history_of_the_person_and_of_members_merged_into_them(client, shop):
    _, till_api, web_api = shop
    kept = till_api.post("/api/v1/members/", {"phone": "0644444444"}, format="json").json()
    older = kept["id"]
    newer = web_api.post(
        "/api/v1/members/", {"email": "dee@example.com", "first_name": "Deirdre"}, format="json"
    ).json()["id"]
    bystander, _ = member_upsert(contact=Contact(email="eli@example.com"))
    care = make_staff(
        "care", "customers.view_member", "customers.change_member", "customers.delete_member"
    )
    client.force_login(care)
    url = f"/admin/customers/member/{newer}/change/"
    data = admin_form_data(client.get(url))
    data["last_name"] = "Quill"
    assert client.post(url, data).status_code == 302  # an admin log entry named after her
    assert LogEntry.objects.filter(object_repr="dee@example.com").exists()
    merge = {"action": "merge", "_selected_action": [older, newer]}
    assert client.post("/admin/customers/member/", merge).status_code == 302
    assert Member.history.filter(id__in=[older, newer]).count() >= 5

    staff = APIClient()
    staff.force_authenticate(care)
    assert staff.post(f"/api/v1/members/{older}/erase/").status_code == 204

    assert_no_trace_anywhere("dee@example.com", "+33644444444", "deirdre", "quill")
    assert not Member.history.filter(id__in=[older, newer]).exists()
    # Who did what stays, without her details.
    assert set(
        LogEntry.objects.filter(object_id=str(newer)).values_list("object_repr", "user__username")
    ) == {(f"member #{newer}", "care")}
    assert set(MemberEvent.objects.values_list("kind", "member_id_ref", "staff__username")) == {
        ("merged", older, "care"),
        ("erased", older, "care"),
    }
    assert bystander.history.count() == 1  # someone else's history is untouched
