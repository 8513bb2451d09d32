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


def _preview_count(client, csv):
    return client.post(
        "/admin/inventory/stocklevel/import/",
        {"import_file": _count_file(csv), "format": _format_choice(client)},
    )


@pytest.mark.parametrize(
    ("row", "column", "message"),
    [
        (",{store},45", "sku", "sku is required."),
        ("  ,{store},45", "sku", "sku is required."),
        ("FINE,,45", "location", "location is required."),
        ("NOPE,{store},45", "sku", "Unknown sku &#x27;NOPE&#x27;."),
        ("FINE,nowhere,45", "location", "Unknown location &#x27;nowhere&#x27;."),
    ],
)
def test_a_count_row_without_its_sku_or_location_says_which_column_is_missing(
    client, merchandiser, stock, store, row, column, message
):
    """A blank sku or location cell used to show PostgreSQL's own words as the row's error
    ("null value in column variant_id ... violates not-null constraint"); an unknown one,
    "Variant matching query does not exist". Now the row's error names the column, on it."""
    before = StockMovement.objects.count()
    preview = _preview_count(client, "sku,location,counted\n" + row.format(store=store.code) + "\n")
    assert preview.status_code == 200
    assert preview.context.get("confirm_form") is None
    page = preview.content.decode()
    assert message in page
    assert "constraint" not in page and "matching query" not in page
    [invalid] = preview.context["result"].invalid_rows
    assert list(invalid.error_dict) == [column]
    assert StockMovement.objects.count() == before
    assert StockLevel.objects.get(variant__sku="FINE").on_hand == 50


@pytest.mark.parametrize(
    ("header", "row", "missing"),
    [
        ("sku,location", "FINE,{store}", "counted"),
        ("sku,location,count", "FINE,{store},45", "counted"),
        ("sku,counted", "FINE,45", "location"),
        ("location,counted", "{store},45", "sku"),
        ("item,where,counted", "FINE,{store},45", "sku or location"),
    ],
)
def test_a_count_sheet_without_a_column_is_refused_naming_it(
    client, merchandiser, stock, store, header, row, missing
):
    """A sheet with no `counted` column used to end in "Import finished" with every row
    skipped, nothing counted; one without `sku` or `location` showed a not-null error on
    every row beside the library's note on "import_id_fields". The sheet is now refused
    whole before any row is read, naming the missing columns."""
    before = StockMovement.objects.count()
    preview = _preview_count(client, f"{header}\n{row.format(store=store.code)}\n")
    assert preview.status_code == 200
    assert preview.context.get("confirm_form") is None
    result = preview.context["result"]
    assert [str(error.error) for error in result.base_errors] == [
        f"The count sheet has no {missing} column: its first line must name the columns "
        "sku, location and counted."
    ]
    assert not result.row_errors() and not result.invalid_rows
    page = preview.content.decode()
    assert f"The count sheet has no {missing} column" in page
    assert "constraint" not in page and "import_id_fields" not in page and "ValueError" not in page
    assert StockMovement.objects.count() == before
    assert StockLevel.objects.get(variant__sku="FINE").on_hand == 50


@pytest.mark.parametrize(
    ("counted", "message"),
    [
        ("1e3", "counted must be a whole number of units"),  # was read as 1000
        ("1E3", "counted must be a whole number of units"),
        ("1_000", "counted must be a whole number of units"),  # was read as 1000
        ("1,000", "counted must be a whole number of units"),  # was "[<class 'decimal..."
        ("1.000,5", "counted must be a whole number of units"),
        ("abc", "counted must be a whole number of units"),
        ("0x10", "counted must be a whole number of units"),
        ("inf", "counted must be a whole number of units"),  # was "cannot convert Infinity"
        ("NaN", "counted must be a whole number of units"),
        ("1e400", "counted must be a whole number of units"),
        ("\u0661\u0662", "counted must be a whole number of units"),  # Arabic-Indic 12
        ("12.5", "counted must be a whole number of units"),
        ("-1", "counted must be between 0 and 1000000."),
        ("1000001", "counted must be between 0 and 1000000."),
        ("2147483648", "counted must be between 0 and 1000000."),  # past the integer column
        ("9" * 5000, "counted must be between 0 and 1000000."),
        ("", "counted is required."),
        ("   ", "counted is required."),
    ],
)
def test_a_count_that_is_not_a_whole_number_of_units_is_refused_on_its_row(
    client, merchandiser, stock, store, counted, message
):
    """A count is a whole number of units, zero or more, written in digits. `1e3` and
    `1_000` were read as 1000 without a word; `1,000` or `inf` showed a Python exception
    as the row's error. Each is now refused on its row with a sentence, nothing written."""
    before = StockMovement.objects.count()
    preview = _preview_count(client, f'sku,location,counted\nFINE,{store.code},"{counted}"\n')
    assert preview.status_code == 200
    assert preview.context.get("confirm_form") is None
    [invalid] = preview.context["result"].invalid_rows
    assert list(invalid.error_dict) == ["counted"]
    assert invalid.error_dict["counted"][0].startswith(message), invalid.error_dict
    assert not preview.context["result"].row_errors()
    assert StockMovement.objects.count() == before
    assert StockLevel.objects.get(variant__sku="FINE").on_hand == 50


@pytest.mark.parametrize(
    ("counted", "on_hand"),
    [(" 12 ", 12), ("12", 12), ("012", 12), ("12.0", 12), ("12.", 12), ("+12", 12), ("0", 0)],
)
def test_a_whole_count_is_accepted_with_the_spaces_and_zeros_a_spreadsheet_leaves(
    client, merchandiser, stock, store, counted, on_hand
):
    """Spaces around the cell, and `12.0` as a spreadsheet writes a number cell (the adjust
    form and the API's `counted` accept it too), are the count of 12."""
    preview = _preview_count(client, f'sku,location,counted\nFINE,{store.code},"{counted}"\n')
    assert preview.context["confirm_form"] is not None, preview.context["result"].invalid_rows
    done = client.post(
        "/admin/inventory/stocklevel/process_import/", preview.context["confirm_form"].initial
    )
    assert done.status_code == 302
    assert StockLevel.objects.get(variant__sku="FINE").on_hand == on_hand
    assert_ledger_matches_levels()


@pytest.mark.parametrize(
    ("counted", "accepted"),
    [(12, True), (12.0, True), (0, True), (12.5, False), (-1, False), (True, False)],
)
def test_a_count_given_as_a_number_cell_is_checked_the_same_way(store, stock, counted, accepted):
    """A spreadsheet or JSON file hands over numbers, not text: 12.0 is 12; 12.5, -1 and a
    yes/no cell are refused."""
    import tablib

    from inventory.resources import CycleCountResource

    data = tablib.Dataset(headers=["sku", "location", "counted"])
    data.append(["FINE", store.code, counted])
    result = CycleCountResource(limit=None).import_data(data, dry_run=False)
    assert not result.has_errors()
    assert result.has_validation_errors() is not accepted
    assert StockLevel.objects.get(variant__sku="FINE").on_hand == (int(counted) if accepted else 50)


def test_the_dashboard_counts_out_of_stock_shelves_as_the_admin_filter_shows_them(
    client, merchandiser, stock, store
):
    """An oversold shelf (negative on hand) has nothing available to sell: the admin's
    "Nothing available" filter showed it, the dashboard's `out` count left it out (it was
    only under `negative`). Both now count every shelf with nothing available, oversold
    included; `negative` still flags the oversold ones to review."""
    from inventory.selectors import stock_health_by_location
    from inventory.services import stock_reserve

    held, short = VariantFactory(sku="HELD"), VariantFactory(sku="SHORT")
    stock_receive(
        lines=[StockLine(held.pk, store.pk, 2), StockLine(short.pk, store.pk, 2)], reference="d"
    )
    # Every unit promised; then one of SHORT's sold offline too: 1 on hand, 2 reserved.
    stock_reserve(
        lines=[StockLine(held.pk, store.pk, 2), StockLine(short.pk, store.pk, 2)], reference="o"
    )
    stock_sell_now(
        lines=[StockLine(short.pk, store.pk, 1)], reference="pos:off", allow_oversell=True
    )

    def filtered(health):
        response = client.get(f"/admin/inventory/stocklevel/?health={health}")
        return sorted(row.variant.sku for row in response.context["cl"].result_list)

    assert filtered("out") == ["HELD", "OVERSOLD", "SHORT"]
    [health] = stock_health_by_location()
    assert health == {
        "location_code": store.code,
        "out": len(filtered("out")),
        "low": len(filtered("low")),
        "negative": len(filtered("negative")),
        "skus": 5,
    }
    assert (health["out"], health["low"], health["negative"]) == (3, 1, 1)
