"""The merchandisers' stock pages: filters, read-only ledger, adjustments through services."""

import pytest
from django.contrib.auth.models import Group

from inventory.models import StockLevel, StockMovement, Transfer
from inventory.services import StockLine, stock_receive, stock_sell_now
from inventory.transfers import TransferItem, transfer_request
from omnichannel.roles import MERCHANDISER
from tests.concurrency import require_postgres
from tests.factories import LocationFactory, VariantFactory, make_staff
from tests.inventory_helpers import assert_ledger_matches_levels

pytestmark = pytest.mark.django_db


@pytest.fixture
def merchandiser(client):
    user = make_staff("merch")
    user.groups.add(Group.objects.get(name=MERCHANDISER))
    client.force_login(user)
    return user


@pytest.fixture
def stock(store):
    fine, low, oversold = (
        VariantFactory(sku="FINE"),
        VariantFactory(sku="LOW"),
        VariantFactory(sku="OVERSOLD"),
    )
    stock_receive(
        lines=[StockLine(fine.pk, store.pk, 50), StockLine(low.pk, store.pk, 2)], reference="d"
    )
    stock_sell_now(
        lines=[StockLine(oversold.pk, store.pk, 1)], reference="pos:off", allow_oversell=True
    )
    return fine, low, oversold


@pytest.mark.parametrize(
    ("health", "expected"), [("negative", ["OVERSOLD"]), ("low", ["LOW"]), ("out", ["OVERSOLD"])]
)
def test_stock_health_filters(client, merchandiser, stock, health, expected):
    response = client.get(f"/admin/inventory/stocklevel/?health={health}")
    assert response.status_code == 200
    shown = [row.variant.sku for row in response.context["cl"].result_list]
    assert shown == expected


def test_ledger_and_levels_cannot_be_edited_in_the_admin(client, merchandiser, stock):
    movement = StockMovement.objects.first()
    level = StockLevel.objects.first()
    assert client.get(f"/admin/inventory/stockmovement/{movement.pk}/change/").status_code == 200
    response = client.post(f"/admin/inventory/stockmovement/{movement.pk}/change/", {"delta": 999})
    assert response.status_code == 403
    assert (
        client.post(f"/admin/inventory/stocklevel/{level.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert client.get("/admin/inventory/stockmovement/add/").status_code == 403


def test_adjust_and_count_forms_go_through_the_services(client, merchandiser, stock, store):
    changelist = client.get("/admin/inventory/stocklevel/").content.decode()
    assert (
        "Adjust or count stock" in changelist
        and "/admin/inventory/stocklevel/import/" in changelist
    )
    page = client.get("/admin/inventory/stocklevel/adjust/")
    assert page.status_code == 200
    response = client.post(
        "/admin/inventory/stocklevel/adjust/",
        {
            "sku": "FINE",
            "location": store.code,
            "kind": "delta",
            "quantity": -3,
            "reason": "damage",
            "note": "crushed",
        },
    )
    assert response.status_code == 302
    assert StockLevel.objects.get(variant__sku="FINE").on_hand == 47
    movement = StockMovement.objects.latest("id")
    assert (movement.reason, movement.created_by, movement.note) == (
        "damage",
        merchandiser,
        "crushed",
    )
    client.post(
        "/admin/inventory/stocklevel/adjust/",
        {
            "sku": "FINE",
            "location": store.code,
            "kind": "counted",
            "quantity": 40,
            "reason": "correction",
        },
    )
    assert StockLevel.objects.get(variant__sku="FINE").on_hand == 40
    assert StockMovement.objects.latest("id").reason == "count"
    refused = client.post(
        "/admin/inventory/stocklevel/adjust/",
        {"sku": "LOW", "location": store.code, "kind": "delta", "quantity": -5, "reason": "theft"},
    )
    assert refused.status_code == 200
    assert "less than nothing" in refused.content.decode()
    assert StockLevel.objects.get(variant__sku="LOW").on_hand == 2
    assert_ledger_matches_levels()


@pytest.mark.postgres
def test_a_receipt_past_the_levels_range_is_a_form_error(client, merchandiser, store):
    """A level near the top of its column (2,147,000,000 received) and
    a receipt of a million more: PostgreSQL refuses the value; the page says so on the form
    (the API's 400 out_of_range), nothing is written, no 500."""
    require_postgres()
    big = VariantFactory(sku="BIG")
    stock_receive(lines=[StockLine(big.pk, store.pk, 1_000_000)] * 2147, reference="d")
    refused = client.post(
        "/admin/inventory/stocklevel/adjust/",
        {
            "sku": "BIG",
            "location": store.code,
            "kind": "delta",
            "quantity": 1_000_000,
            "reason": "receipt",
        },
    )
    assert refused.status_code == 200
    assert "too large to be recorded" in refused.content.decode()
    assert StockLevel.objects.get(variant=big).on_hand == 2_147_000_000
    assert_ledger_matches_levels()


def test_staff_without_permission_cannot_adjust(client, stock):
    client.force_login(make_staff("viewer", "inventory.view_stocklevel"))
    assert client.get("/admin/inventory/stocklevel/").status_code == 200
    assert client.get("/admin/inventory/stocklevel/adjust/").status_code == 403
    before = StockMovement.objects.count()
    adjust = dict(sku="FINE", location="lyon", kind="delta", quantity=5, reason="receipt")
    assert client.post("/admin/inventory/stocklevel/adjust/", adjust).status_code == 403
    assert StockMovement.objects.count() == before
    assert StockLevel.objects.get(variant__sku="FINE").on_hand == 50


def test_transfer_actions_ship_and_receive(client, merchandiser, stock, store):
    fine = stock[0]
    paris = LocationFactory(code="paris")
    transfer = transfer_request(
        from_location_id=store.pk, to_location_id=paris.pk, items=[TransferItem(fine.pk, 5)]
    )
    assert client.get(f"/admin/inventory/transfer/{transfer.pk}/change/").status_code == 200
    client.post("/admin/inventory/transfer/", {"action": "ship", "_selected_action": [transfer.pk]})
    client.post(
        "/admin/inventory/transfer/",
        {"action": "receive_as_shipped", "_selected_action": [transfer.pk]},
    )
    assert Transfer.objects.get(pk=transfer.pk).status == "received"
    assert StockLevel.objects.get(variant=fine, location=paris).on_hand == 5
    assert_ledger_matches_levels()


def _count_file(text):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("count.csv", text.encode(), content_type="text/csv")


def _format_choice(client):
    form = client.get("/admin/inventory/stocklevel/import/").context["form"]
    return next(value for value, label in form.fields["format"].choices if label == "csv")


def test_cycle_count_csv_preview_then_confirm_writes_through_the_ledger(
    client, merchandiser, stock, store
):
    csv = f"sku,location,counted\nFINE,{store.code},45\nLOW,{store.code},2\n"
    preview = client.post(
        "/admin/inventory/stocklevel/import/",
        {"import_file": _count_file(csv), "format": _format_choice(client)},
    )
    assert preview.status_code == 200
    assert preview.context["confirm_form"] is not None
    assert StockLevel.objects.get(variant__sku="FINE").on_hand == 50  # nothing written yet

    confirm = preview.context["confirm_form"].initial
    done = client.post("/admin/inventory/stocklevel/process_import/", confirm)
    assert done.status_code == 302
    assert StockLevel.objects.get(variant__sku="FINE").on_hand == 45
    movement = StockMovement.objects.filter(reason="count").get()
    assert (movement.delta, movement.created_by, movement.reference) == (
        -5,
        merchandiser,
        "count-import",
    )
    assert_ledger_matches_levels()


def test_cycle_count_csv_with_a_bad_row_shows_errors_and_writes_nothing(
    client, merchandiser, stock, store
):
    before = StockMovement.objects.count()
    csv = (
        f"sku,location,counted\nFINE,{store.code},45\nNOPE,{store.code},1\n"
        f"LOW,{store.code},-4\nLOW,nowhere,1\n"
    )
    preview = client.post(
        "/admin/inventory/stocklevel/import/",
        {"import_file": _count_file(csv), "format": _format_choice(client)},
    )
    assert preview.status_code == 200
    result = preview.context["result"]
    assert result.has_errors() or result.has_validation_errors()
    assert preview.context.get("confirm_form") is None
    assert len(result.invalid_rows) + len(result.row_errors()) == 3
    assert StockMovement.objects.count() == before
    assert StockLevel.objects.get(variant__sku="FINE").on_hand == 50


def test_only_staff_who_may_adjust_can_import_counts(client, merchandiser, stock, store):
    csv = f"sku,location,counted\nFINE,{store.code},45\n"
    form = {"import_file": _count_file(csv), "format": _format_choice(client)}
    preview = client.post("/admin/inventory/stocklevel/import/", form)
    confirm = preview.context["confirm_form"].initial  # a merchandiser's, ready to confirm
    client.force_login(make_staff("viewer", "inventory.view_stocklevel"))
    assert client.get("/admin/inventory/stocklevel/import/").status_code == 403
    form["import_file"] = _count_file(csv)
    assert client.post("/admin/inventory/stocklevel/import/", form).status_code == 403
    assert client.post("/admin/inventory/stocklevel/process_import/", confirm).status_code == 403
    assert not StockMovement.objects.filter(reason="count").exists()
    assert StockLevel.objects.get(variant__sku="FINE").on_hand == 50


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        # The same shelf counted twice in one file: two answers to one question (the last
        # row used to win, after both were written to the ledger).
        (["FINE,{store},45", "FINE,{store},5"], "is already on row 1 of this file"),
        # 2.9 units: the library's integer widget cut it to 2 without a word.
        (["FINE,{store},2.9"], "whole number"),
    ],
)
def test_a_count_file_that_does_not_say_one_whole_count_per_shelf_writes_nothing(
    client, merchandiser, stock, store, rows, message
):
    before = StockMovement.objects.count()
    csv = "sku,location,counted\n" + "\n".join(rows).format(store=store.code) + "\n"
    preview = client.post(
        "/admin/inventory/stocklevel/import/",
        {"import_file": _count_file(csv), "format": _format_choice(client)},
    )
    assert preview.status_code == 200
    assert preview.context.get("confirm_form") is None
    assert message in preview.content.decode()
    assert StockMovement.objects.count() == before
    assert StockLevel.objects.get(variant__sku="FINE").on_hand == 50


def test_a_count_confirmed_after_it_stopped_fitting_says_nothing_was_imported(
    client, merchandiser, stock, store
):
    """Between the preview and the confirm the merchandiser's account was limited to another
    store: the confirm writes nothing, and the page says so instead of "Import finished"."""
    from omnichannel.models import StaffStoreLimit

    preview = client.post(
        "/admin/inventory/stocklevel/import/",
        {
            "import_file": _count_file(f"sku,location,counted\nFINE,{store.code},45\n"),
            "format": _format_choice(client),
        },
    )
    confirm = preview.context["confirm_form"].initial
    StaffStoreLimit.objects.create(user=merchandiser).locations.set([LocationFactory(code="x")])
    done = client.post("/admin/inventory/stocklevel/process_import/", confirm, follow=True)
    shown = [(m.level_tag, str(m)) for m in done.context["messages"]]  # on the import page
    assert [tag for tag, _ in shown] == ["error"], shown
    assert "Nothing was imported" in shown[0][1] and "may not count stock" in shown[0][1]
    assert StockLevel.objects.get(variant__sku="FINE").on_hand == 50
