"""CSV sheets: export -> import changes nothing; a bad file reports rows and writes nothing."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
import tablib
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.models import Category, ChannelPrice, Product, Variant
from catalog.resources import ChannelPriceResource, VariantResource
from catalog.services import product_refresh_search
from omnichannel.roles import MERCHANDISER
from tests.concurrency import require_postgres
from tests.factories import (
    CategoryFactory,
    ChannelPriceFactory,
    ProductFactory,
    VariantFactory,
    make_staff,
)

pytestmark = pytest.mark.django_db

HEADER = (
    "sku,barcode,name,attributes,is_active,product_code,product_name,product_description,category"
)


def snapshot():
    return {
        "products": list(
            Product.objects.order_by("code").values_list(
                "code", "name", "description", "category_id", "is_active", "updated_at"
            )
        ),
        "variants": list(
            Variant.objects.order_by("sku").values_list(
                "sku", "barcode", "name", "attributes", "is_active", "product_id"
            )
        ),
        "prices": list(
            ChannelPrice.objects.order_by("variant__sku", "channel__code").values_list(
                "variant_id", "channel_id", "amount", "published"
            )
        ),
        "categories": Category.objects.count(),
    }


@pytest.fixture
def catalog(web, pos):
    shirts = CategoryFactory(slug="shirts", name="Shirts")
    for n in range(3):
        product = ProductFactory(category=shirts, description=f"Line {n}, with a comma")
        for size in ("S", "M"):
            variant = VariantFactory(product=product, attributes={"size": size, "fit": "slim"})
            ChannelPriceFactory(variant=variant, channel=web, amount=Decimal("19.90"))
            ChannelPriceFactory(
                variant=variant, channel=pos, amount=Decimal("18.00"), published=False
            )
    VariantFactory(product=ProductFactory(category=None), barcode=None)  # no barcode, no category
    return shirts


def reimport(resource, csv_text, dry_run=False):
    dataset = tablib.Dataset().load(csv_text, format="csv")
    return resource.import_data(dataset, dry_run=dry_run, raise_errors=False)


@pytest.mark.parametrize("resource_class", [VariantResource, ChannelPriceResource])
def test_export_then_import_leaves_everything_unchanged(catalog, resource_class):
    before = snapshot()
    exported = resource_class().export().csv
    result = reimport(resource_class(), exported)
    assert not result.has_errors() and not result.has_validation_errors()
    assert result.totals["skip"] == len(exported.strip().splitlines()) - 1
    assert result.totals["new"] == result.totals["update"] == 0
    assert snapshot() == before


def test_catalog_sheet_creates_products_variants_grouped_by_product_code(web, catalog):
    csv = "\n".join(
        [
            HEADER,
            'NEW-S,4006381333931,S,"{""size"": ""S""}",1,NEW,Linen shirt,Soft,shirts',
            'NEW-M,,M,"{""size"": ""M""}",1,NEW,Linen shirt,Soft,shirts',
        ]
    )
    result = reimport(VariantResource(), csv)
    assert not result.has_errors() and not result.has_validation_errors()
    product = Product.objects.get(code="NEW")
    assert (product.name, product.description, product.category.slug) == (
        "Linen shirt",
        "Soft",
        "shirts",
    )
    assert list(product.variants.values_list("sku", "barcode", "attributes")) == [
        ("NEW-M", None, {"size": "M"}),
        ("NEW-S", "4006381333931", {"size": "S"}),
    ]
    prices = reimport(ChannelPriceResource(), "sku,channel,amount,published\nNEW-S,web,24.50,1\n")
    assert not prices.has_errors() and not prices.has_validation_errors()
    assert ChannelPrice.objects.get(variant__sku="NEW-S", channel=web).amount == Decimal("24.50")


def test_a_changed_product_name_is_an_update_not_a_skip(catalog):
    variant = Variant.objects.filter(barcode__isnull=False).first()
    exported = VariantResource().export().csv
    changed = exported.replace(variant.product.name, "Renamed shirt")
    result = reimport(VariantResource(), changed)
    assert result.totals["update"] >= 1
    assert Product.objects.get(pk=variant.product_id).name == "Renamed shirt"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("BAD-1,,X,{},1,NEW2,Thing,,nope", "Unknown category 'nope'"),
        ("BAD-2,12,X,{},1,NEW2,Thing,,shirts", "GTIN"),
        ('BAD-3,,X,"[1,2]",1,NEW2,Thing,,shirts', "JSON object"),
        ("BAD-4,,X,{oops,1,NEW2,Thing,,shirts", "JSON object"),
        (",,X,{},1,NEW2,Thing,,shirts", "sku"),
        ("BAD-6,,X,{},1,,Thing,,shirts", "product_code is required"),
        ("BAD-7,,X,{},1,NEW3,,,shirts", "product_name is required"),
    ],
)
def test_a_bad_catalog_file_reports_the_row_and_writes_nothing(catalog, row, message):
    good = "GOOD-1,,X,{},1,GOODP,Good thing,,shirts"
    before = snapshot()
    result = reimport(VariantResource(), "\n".join([HEADER, good, row]))
    errors = [(invalid.number, str(invalid.error)) for invalid in result.invalid_rows] + [
        (number, str(errs[0].error)) for number, errs in result.row_errors()
    ]
    assert errors, "the bad row must be reported"
    assert [number for number, _ in errors] == [2]  # the second data row
    assert message in errors[0][1]
    assert snapshot() == before  # not even the good row was written
    assert not Product.objects.filter(code__in=["GOODP", "NEW2", "NEW3"]).exists()


def test_a_duplicate_barcode_within_the_file_is_a_row_error(catalog):
    rows = [
        HEADER,
        "DUP-1,4006381333931,X,{},1,NEWD,Thing,,shirts",
        "DUP-2,4006381333931,Y,{},1,NEWD,Thing,,shirts",
    ]
    before = snapshot()
    result = reimport(VariantResource(), "\n".join(rows))
    assert result.has_validation_errors()
    assert [invalid.number for invalid in result.invalid_rows] == [2]
    assert snapshot() == before


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("NOPE,web,10.00,1", "Unknown sku 'NOPE'"),
        ("{sku},mars,10.00,1", "Unknown channel 'mars'"),
        ("{sku},web,-1.00,1", "greater than or equal to 0"),
        ("{sku},web,ten,1", "amount"),
    ],
)
def test_a_bad_price_file_reports_the_row_and_writes_nothing(catalog, row, message):
    first, sku = Variant.objects.order_by("sku").values_list("sku", flat=True)[:2]
    before = snapshot()
    csv = f"sku,channel,amount,published\n{first},web,99.00,1\n{row.format(sku=sku)}\n"
    result = reimport(ChannelPriceResource(), csv)
    reported = [str(invalid.error) for invalid in result.invalid_rows] + [
        str(errs[0].error) for _, errs in result.row_errors()
    ]
    assert any(message in text for text in reported), reported
    assert snapshot() == before


@pytest.fixture
def merchandiser_client(client):
    user = make_staff("merch")
    user.groups.add(Group.objects.get(name=MERCHANDISER))
    client.force_login(user)
    return client


def _upload(client, url, text):
    form = client.get(url).context["form"]
    csv_choice = next(value for value, label in form.fields["format"].choices if label == "csv")
    data = {"import_file": SimpleUploadedFile("sheet.csv", text.encode()), "format": csv_choice}
    if "resource" in form.fields:
        data["resource"] = form.fields["resource"].choices[0][0]
    return client.post(url, data)


def test_admin_import_previews_then_writes_on_confirm(catalog, merchandiser_client):
    csv = "\n".join([HEADER, 'ADM-1,,One,"{""size"": ""M""}",1,ADM,Admin shirt,,shirts'])
    preview = _upload(merchandiser_client, "/admin/catalog/variant/import/", csv)
    assert preview.status_code == 200
    assert "ADM-1" in preview.content.decode()
    assert not Variant.objects.filter(sku="ADM-1").exists()  # the preview wrote nothing
    confirm = preview.context["confirm_form"].initial
    done = merchandiser_client.post("/admin/catalog/variant/process_import/", confirm)
    assert done.status_code == 302
    assert Variant.objects.get(sku="ADM-1").product.name == "Admin shirt"


def test_admin_import_of_a_bad_file_shows_errors_and_offers_no_confirm(
    catalog, merchandiser_client
):
    before = snapshot()
    csv = "\n".join([HEADER, "ADM-2,,Two,{},1,ADM2,Bad,,no-such-category"])
    preview = _upload(merchandiser_client, "/admin/catalog/variant/import/", csv)
    assert preview.status_code == 200
    assert "no-such-category" in preview.content.decode()
    assert preview.context.get("confirm_form") is None
    assert snapshot() == before


def test_admin_export_gives_the_catalog_sheet_header(catalog, merchandiser_client):
    form = merchandiser_client.get("/admin/catalog/variant/export/").context["form"]
    csv_choice = next(value for value, label in form.fields["format"].choices if label == "csv")
    data = {
        "format": csv_choice,
        "export_items": list(Variant.objects.values_list("pk", flat=True)),
    }
    if "resource" in form.fields:
        data["resource"] = form.fields["resource"].choices[0][0]
    for name in form.fields:
        if name.startswith("variantresource_"):
            data[name] = True
    response = merchandiser_client.post("/admin/catalog/variant/export/", data)
    assert response.status_code == 200
    assert response.content.decode().splitlines()[0].strip() == HEADER


def test_a_row_id_given_twice_in_one_file_is_an_error_not_last_row_wins(catalog):
    sku = Variant.objects.order_by("sku").first().sku
    before = snapshot()
    csv = f"sku,channel,amount,published\n{sku},web,11.00,1\n{sku},web,12.00,1\n"
    result = reimport(ChannelPriceResource(), csv)
    assert [invalid.number for invalid in result.invalid_rows] == [2]
    assert "already on row 1" in str(result.invalid_rows[0].error)
    assert snapshot() == before


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("1", True), ("yes", True), ("Y", True), ("true", True), ("0", False), ("no", False)],
)
def test_published_reads_every_spreadsheet_spelling(catalog, cell, expected):
    sku = Variant.objects.order_by("sku").first().sku
    result = reimport(ChannelPriceResource(), f"sku,channel,amount,published\n{sku},pos,5,{cell}")
    assert not result.has_validation_errors() and not result.has_errors()
    assert ChannelPrice.objects.get(variant__sku=sku, channel__code="pos").published is expected


def test_an_unreadable_flag_is_a_row_error_never_a_silent_false(catalog):
    sku = Variant.objects.order_by("sku").first().sku
    before = snapshot()
    result = reimport(ChannelPriceResource(), f"sku,channel,amount,published\n{sku},web,5,maybe")
    assert "not 'maybe'" in str(result.invalid_rows[0].error)
    assert snapshot() == before


def test_rows_of_one_product_must_describe_it_the_same_way(catalog):
    rows = [
        HEADER,
        "TWO-1,,A,{},1,TWO,Two-way shirt,,shirts",
        "TWO-2,,B,{},1,TWO,Another name,,shirts",
    ]
    before = snapshot()
    result = reimport(VariantResource(), "\n".join(rows))
    assert [invalid.number for invalid in result.invalid_rows] == [2]
    assert "product_name 'Two-way shirt' on row 1" in str(result.invalid_rows[0].error)
    assert snapshot() == before


def test_staff_without_the_add_and_change_rights_cannot_import(catalog, client):
    viewer = make_staff("viewer")  # staff, no catalog permissions beyond what is granted here
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_variant", "view_channelprice"])
    )
    client.force_login(viewer)
    assert client.get("/admin/catalog/variant/import/").status_code == 403
    assert client.get("/admin/catalog/channelprice/import/").status_code == 403
    assert client.get("/admin/catalog/variant/export/").status_code == 200


def test_a_category_cannot_be_moved_under_its_own_subcategory(catalog, merchandiser_client):
    child = CategoryFactory(slug="tees", name="Tees", parent=catalog)
    response = merchandiser_client.post(
        f"/admin/catalog/category/{catalog.pk}/change/",
        {"name": catalog.name, "slug": catalog.slug, "parent": child.pk},
    )
    assert response.status_code == 200  # the form again, with the error
    assert "cannot sit under itself" in response.content.decode()
    catalog.refresh_from_db()
    assert catalog.parent_id is None


def test_an_empty_flag_cell_keeps_an_existing_rows_flag_and_gives_a_new_row_the_default(web):
    """A hidden price and a discontinued variant stay so when their flag cell is left empty
    (they were re-published and brought back); a new price with an empty cell is published,
    and a cell that says so still changes the flag."""
    hidden = ChannelPriceFactory(
        variant=VariantFactory(sku="RECALLED"),
        channel=web,
        amount=Decimal("10.00"),
        published=False,
    )
    VariantFactory(sku="NEW-PRICE")
    sheet = tablib.Dataset().load(
        "sku,channel,amount,published\nRECALLED,web,12.00,\nNEW-PRICE,web,5.00,\n", format="csv"
    )
    result = ChannelPriceResource().import_data(sheet, dry_run=False)
    assert not result.has_errors() and not result.has_validation_errors()
    hidden.refresh_from_db()
    assert (hidden.amount, hidden.published) == (Decimal("12.00"), False)
    assert ChannelPrice.objects.get(variant__sku="NEW-PRICE").published is True

    gone = VariantFactory(sku="OLD-1", is_active=False)
    header = "sku,barcode,name,attributes,is_active,product_code,product_name\n"
    for flag, expected in (("", False), ("1", True)):
        cells = ["OLD-1", gone.barcode, gone.name, "{}", flag, gone.product.code, gone.product.name]
        sheet = tablib.Dataset().load(header + ",".join(cells) + "\n", format="csv")
        result = VariantResource().import_data(sheet, dry_run=False)
        assert not result.has_errors() and not result.has_validation_errors()
        assert Variant.objects.get(sku="OLD-1").is_active is expected, flag


def test_a_blank_product_description_keeps_the_description(catalog):
    """Only one row of a product need describe it: a blank product_description on its
    other rows, or on a later sheet that does not carry the column's text, keeps the
    description (it was wiped, where a blank name or category kept theirs)."""
    rows = [
        HEADER,
        "LIN-S,,S,{},1,LIN,Linen shirt,Soft and cool,shirts",
        "LIN-M,,M,{},1,LIN,,,",
    ]
    result = reimport(VariantResource(), "\n".join(rows))
    assert not result.has_errors() and not result.has_validation_errors()
    product = Product.objects.get(code="LIN")
    assert (product.name, product.description, product.category.slug) == (
        "Linen shirt",
        "Soft and cool",
        "shirts",
    )
    result = reimport(VariantResource(), f"{HEADER}\nLIN-L,,L,{{}},1,LIN,,  ,\n")
    assert not result.has_errors() and not result.has_validation_errors()
    product.refresh_from_db()
    assert product.description == "Soft and cool"
    assert product.variants.count() == 3


def test_a_variant_moved_to_another_product_changes_the_one_it_left(
    catalog, django_capture_on_commit_callbacks
):
    """The product a variant leaves is no longer found by the variant's SKU, and shows in
    `updated_since` (only the product it joined did)."""
    left, joined = ProductFactory(code="LEFT"), ProductFactory(code="JOINED", category=None)
    VariantFactory(product=left, sku="MOVE-ME", barcode=None)
    product_refresh_search(product_ids=[left.pk, joined.pk])
    long_ago = timezone.now() - timedelta(days=2)
    Product.objects.filter(pk__in=[left.pk, joined.pk]).update(updated_at=long_ago)

    row = f"MOVE-ME,,M,{{}},1,JOINED,{joined.name},,"
    with django_capture_on_commit_callbacks(execute=True):
        result = reimport(VariantResource(), f"{HEADER}\n{row}\n")
    assert not result.has_errors() and not result.has_validation_errors()
    assert Variant.objects.get(sku="MOVE-ME").product_id == joined.pk
    left.refresh_from_db()
    joined.refresh_from_db()
    assert "move-me" not in left.search_text and "move-me" in joined.search_text
    assert left.updated_at > long_ago and joined.updated_at > long_ago


def test_export_writes_accented_attributes_as_typed_and_reads_them_back(catalog):
    """A spreadsheet shows `\\u00e9` as it is: the sheet is UTF-8 and carries "écru"."""
    VariantFactory(sku="ECRU-1", attributes={"couleur": "écru", "taille": "M"})
    exported = VariantResource().export().csv
    [line] = [line for line in exported.splitlines() if line.startswith("ECRU-1,")]
    assert "écru" in line and "\\u" not in line
    before = snapshot()
    result = reimport(VariantResource(), exported)
    assert not result.has_errors() and not result.has_validation_errors()
    assert result.totals["new"] == result.totals["update"] == 0
    assert snapshot() == before
    assert Variant.objects.get(sku="ECRU-1").attributes == {"couleur": "écru", "taille": "M"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_price_sheet_is_seen_by_an_updated_since_poll_made_while_it_imported(
    web, web_client, monkeypatch
):
    """A long sheet is one transaction. Its first row dated its product when written, but
    the change became visible only at the commit, dated before the storefront's poll made
    meanwhile: the next poll, since that one, never saw it. The products are dated again
    just before the commit."""
    require_postgres()
    first = VariantFactory(product=ProductFactory(code="FIRST"), sku="A1")
    last = VariantFactory(product=ProductFactory(code="LAST"), sku="B1")
    for variant in (first, last):
        ChannelPriceFactory(variant=variant, channel=web, amount=Decimal("10.00"))
    Product.objects.update(updated_at=timezone.now() - timedelta(days=1))
    an_hour_ago = (timezone.now() - timedelta(hours=1)).isoformat()

    first_row_written, carry_on = threading.Event(), threading.Event()
    import_row = ChannelPriceResource.import_row

    def import_row_slowly(self, row, instance_loader, **kwargs):  # a long file, in short
        result = import_row(self, row, instance_loader, **kwargs)
        if row["sku"] == "A1":
            first_row_written.set()
            carry_on.wait(10)
        return result

    monkeypatch.setattr(ChannelPriceResource, "import_row", import_row_slowly)
    results = []

    def merchandiser_imports():
        try:
            sheet = "sku,channel,amount,published\nA1,web,12.00,1\nB1,web,12.00,1\n"
            dataset = tablib.Dataset().load(sheet, format="csv")
            results.append(ChannelPriceResource().import_data(dataset, dry_run=False))
        finally:
            connections.close_all()

    importer = threading.Thread(target=merchandiser_imports)
    importer.start()
    try:
        assert first_row_written.wait(10)
        polled_at = timezone.now()
        during = web_client.get("/api/v1/products/", {"updated_since": an_hour_ago})
        assert during.json()["results"] == []  # nothing committed yet
    finally:
        carry_on.set()
        importer.join(20)
    [result] = results
    assert not result.has_errors() and not result.has_validation_errors()
    assert set(ChannelPrice.objects.values_list("amount", flat=True)) == {Decimal("12.00")}

    since_that_poll = web_client.get("/api/v1/products/", {"updated_since": polled_at.isoformat()})
    assert sorted(p["code"] for p in since_that_poll.json()["results"]) == ["FIRST", "LAST"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_import_never_sets_the_id_sequence_back_under_a_colleague_adding_a_price(
    web, monkeypatch
):
    """After a real import that added rows, the library reset the id sequence to max(id) as
    the import's transaction saw it. A colleague's price saved meanwhile, not yet committed,
    held a higher id: the sequence went back below it, and the next price added took that id
    again (IntegrityError on the primary key, a 500 in the admin)."""
    require_postgres()
    for sku in ("A1", "B1", "C1"):
        VariantFactory(sku=sku)
    rows_written, colleague_saved, carry_on, colleague_commits = (
        threading.Event() for _ in range(4)
    )
    after_import = ChannelPriceResource.after_import

    def after_import_later(self, dataset, result, **kwargs):
        rows_written.set()
        carry_on.wait(10)
        return after_import(self, dataset, result, **kwargs)

    monkeypatch.setattr(ChannelPriceResource, "after_import", after_import_later)
    results = []

    def merchandiser_imports():
        try:
            sheet = tablib.Dataset().load("sku,channel,amount,published\nA1,web,12.00,1\n")
            results.append(ChannelPriceResource().import_data(sheet, dry_run=False))
        finally:
            connections.close_all()

    def colleague_adds_a_price():  # "Save" on the price admin, while the import runs
        try:
            with transaction.atomic():
                ChannelPriceFactory(
                    variant=Variant.objects.get(sku="B1"), channel=web, amount=Decimal("5.00")
                )
                colleague_saved.set()
                colleague_commits.wait(10)
        finally:
            connections.close_all()

    importer = threading.Thread(target=merchandiser_imports)
    colleague = threading.Thread(target=colleague_adds_a_price)
    importer.start()
    try:
        assert rows_written.wait(10)
        colleague.start()
        assert colleague_saved.wait(10)
    finally:
        carry_on.set()
        importer.join(20)
        colleague_commits.set()
        colleague.join(20)
    [result] = results
    assert not result.has_errors() and not result.has_validation_errors()
    assert ChannelPrice.objects.count() == 2

    try:
        ChannelPriceFactory(
            variant=Variant.objects.get(sku="C1"), channel=web, amount=Decimal("7.00")
        )
    except IntegrityError as exc:
        pytest.fail(f"the next price added took an id already held: {exc}")
    assert sorted(ChannelPrice.objects.values_list("variant__sku", flat=True)) == [
        "A1",
        "B1",
        "C1",
    ]


@pytest.mark.parametrize("sheet", ["catalog", "prices"])
def test_no_sheet_adding_rows_resets_an_id_sequence(web, sheet):
    """No sheet carries an id, so none needs its table's sequence reset after adding rows:
    the library's `setval` is never sent. (A count sheet never adds rows: its stock rows are
    made when it locks them, before the first row is read.)"""
    VariantFactory(sku="A1")
    resource, csv_text = {
        "catalog": (VariantResource(), f"{HEADER}\nNEW-1,,M,{{}},1,NEWP,New product,,\n"),
        "prices": (ChannelPriceResource(), "sku,channel,amount,published\nA1,web,12.00,1\n"),
    }[sheet]
    with CaptureQueriesContext(connection) as captured:
        result = reimport(resource, csv_text)
    assert not result.has_errors() and not result.has_validation_errors()
    assert [row.import_type for row in result.rows] == ["new"]
    assert not [q["sql"] for q in captured.captured_queries if "setval" in q["sql"].lower()]


@pytest.mark.parametrize(
    "resource_class, csv_text, message",
    [
        (VariantResource, "barcode,name\n123,Tee\n", "The catalog sheet has no sku column"),
        (
            ChannelPriceResource,
            "sku,amount\nTEE,10.00\n",
            "The price sheet has no channel column: its first line must name the columns "
            "sku and channel.",
        ),
        (ChannelPriceResource, "amount\n10.00\n", "The price sheet has no sku or channel column"),
    ],
)
def test_a_catalog_or_price_sheet_without_its_key_column_is_refused_naming_it(
    catalog, resource_class, csv_text, message
):
    """Without its row id's column the library showed its note on `import_id_fields` with a
    traceback under each row; the count sheet was refused whole naming the column, and so
    are these now."""
    before = snapshot()
    result = reimport(resource_class(), csv_text)
    assert [row.errors for row in result.rows if row.errors] == []
    (refusal,) = result.base_errors
    assert message in str(refusal.error)
    assert refusal.traceback == ""
    assert snapshot() == before


def test_a_price_sheet_row_in_another_currency_than_its_channel_is_refused(web):
    """The web shop sells in EUR; a sheet that says its amounts are USD must not set them
    as EUR prices (the column was dropped: 12.90 USD became 12.90 EUR). The channel's own
    currency, in any case, or an empty cell is accepted; the export says the currency."""
    assert web.currency == "EUR"
    ChannelPriceFactory(variant=VariantFactory(sku="A-1"), channel=web, amount=Decimal("10.00"))
    result = reimport(
        ChannelPriceResource(), "sku,channel,amount,currency,published\nA-1,web,12.90,USD,1\n"
    )
    reported = [str(i.error) for i in result.invalid_rows] + [
        str(e.error) for _, errs in result.row_errors() for e in errs
    ]
    assert reported and "EUR" in " ".join(reported), reported
    assert result.invalid_rows[0].error_dict.keys() == {"currency"}
    assert ChannelPrice.objects.get().amount == Decimal("10.00")

    for cell, amount in (("eur", "12.90"), ("", "13.90")):
        sheet = f"sku,channel,amount,currency,published\nA-1,web,{amount},{cell},1\n"
        result = reimport(ChannelPriceResource(), sheet)
        assert not result.has_errors() and not result.has_validation_errors(), cell
        assert ChannelPrice.objects.get().amount == Decimal(amount)
    exported = ChannelPriceResource().export()
    assert exported.headers == ["sku", "channel", "amount", "currency", "published"]
    assert exported.dict[0]["currency"] == "EUR"


def problems(result):
    """Every problem an import reported, as text."""
    out = [str(invalid.error) for invalid in result.invalid_rows]
    out += [str(error.error) for _, errors in result.row_errors() for error in errors]
    return out + [str(error.error) for error in result.base_errors]


def test_the_catalog_sheet_refuses_a_gtin_another_variant_holds_in_another_length():
    """UPC-A 012345678905 and EAN-13 0012345678905 are one GTIN: the row giving it to a
    second variant is refused, naming the variant that has it."""
    VariantFactory(sku="A-1", barcode="012345678905")
    result = reimport(VariantResource(), f"{HEADER}\nB-1,0012345678905,M,{{}},1,PX,Thing,,\n")
    [invalid] = result.invalid_rows
    assert invalid.error_dict == {
        "barcode": ["Variant A-1 already has this GTIN (as 012345678905)."]
    }
    assert not Variant.objects.filter(sku="B-1").exists()
    assert not Product.objects.filter(code="PX").exists()


def test_one_sheet_giving_one_gtin_to_two_rows_in_two_lengths_is_an_error():
    rows = [HEADER, "B-1,4006381333931,M,{},1,PX,Thing,,", "B-2,04006381333931,L,{},1,PX,Thing,,"]
    result = reimport(VariantResource(), "\n".join(rows))
    [invalid] = result.invalid_rows
    assert invalid.number == 2
    assert invalid.error_dict == {
        "barcode": ["Variant B-1 already has this GTIN (as 4006381333931)."]
    }
    assert not Variant.objects.exists()


@pytest.mark.parametrize(
    ("cell", "message"), [("4006381333932", "check digit"), ("1234567890", "digits")]
)
def test_the_catalog_sheet_refuses_a_barcode_that_is_no_gtin(cell, message):
    result = reimport(VariantResource(), f"{HEADER}\nB-1,{cell},M,{{}},1,PX,Thing,,\n")
    [invalid] = result.invalid_rows
    assert message in " ".join(invalid.error_dict["barcode"])
    assert not Variant.objects.exists()


@pytest.mark.parametrize(
    ("stored", "cell"),
    [
        ("012345678905", "12345678905"),  # the UPC-A's zero dropped by a spreadsheet
        ("0012345678905", "12345678905"),  # stored as its EAN-13
        ("0012345678905", "012345678905"),  # the same number in another length
        ("01234565", "1234565"),  # an EAN-8's zero dropped
        ("4006381333931", "04006381333931"),
    ],
)
def test_a_sheet_whose_barcode_lost_its_leading_zero_does_not_change_the_barcode(stored, cell):
    """A catalog sheet opened in a spreadsheet and saved drops the UPC-A's leading zero
    (012345678905 -> 12345678905, 11 digits, no GTIN length): the number is the one the
    variant has, so the row changes nothing, the barcode keeps the spelling on the label."""
    variant = VariantFactory(sku="A-1", barcode=stored)
    sheet = VariantResource().export().csv.replace(stored, cell)
    assert cell in sheet
    result = reimport(VariantResource(), sheet)
    assert problems(result) == []
    assert result.totals["skip"] == 1
    variant.refresh_from_db()
    assert (variant.barcode, variant.gtin14) == (stored, stored.zfill(14))


@pytest.mark.parametrize("cell", ["12345678905", "012345678905", "0012345678905", "00012345678905"])
def test_a_sheet_with_a_legacy_11_digit_barcodes_own_number_changes_nothing(cell):
    """A barcode stored before barcodes had to be GTINs as a UPC-A without its leading zero
    (12345678905, its key the UPC-A's since migration 0006): export -> import, with the
    cell as exported or in another spelling of the same number, changes nothing. (The row
    was counted as an update and its barcode re-spelt 012345678905.)"""
    variant = VariantFactory(sku="LEGACY-UPC", barcode="12345678905")
    assert variant.gtin14 == "00012345678905"
    sheet = VariantResource().export().csv
    assert "12345678905" in sheet
    result = reimport(VariantResource(), sheet.replace("12345678905", cell))
    assert problems(result) == []
    assert result.totals["skip"] == 1
    variant.refresh_from_db()
    assert (variant.barcode, variant.gtin14) == ("12345678905", "00012345678905")


def test_a_new_rows_upc_a_that_lost_its_leading_zero_is_read_as_the_upc_a():
    result = reimport(VariantResource(), f"{HEADER}\nB-1,12345678905,M,{{}},1,PX,Thing,,\n")
    assert problems(result) == []
    assert Variant.objects.get(sku="B-1").barcode == "012345678905"
    bad = reimport(VariantResource(), f"{HEADER}\nB-2,12345678906,M,{{}},1,PX,Thing,,\n")
    assert "digits" in " ".join(bad.invalid_rows[0].error_dict["barcode"])  # no UPC-A either


def test_a_sheet_giving_a_variant_another_gtin_changes_it():
    variant = VariantFactory(sku="A-1", barcode="012345678905")
    sheet = VariantResource().export().csv.replace("012345678905", "4006381333931")
    assert problems(reimport(VariantResource(), sheet)) == []
    variant.refresh_from_db()
    assert (variant.barcode, variant.gtin14) == ("4006381333931", "04006381333931")


def test_a_sheet_row_whose_sku_differs_only_by_case_is_not_a_second_variant():
    """`sku-1` is the SKU `SKU-1`: the row is refused naming the spelling the catalog has
    (it made a second variant, one the till's `SKU-1` never found)."""
    VariantFactory(sku="SKU-1", barcode=None)
    result = reimport(VariantResource(), f"{HEADER}\nsku-1,,M,{{}},1,PX,Thing,,\n")
    [invalid] = result.invalid_rows
    assert invalid.error_dict == {
        "sku": ["Variant SKU-1 has this SKU: SKUs are the same in upper and lower case."]
    }
    assert sorted(Variant.objects.values_list("sku", flat=True)) == ["SKU-1"]
    assert not Product.objects.filter(code="PX").exists()


def test_one_sheet_giving_a_sku_twice_in_two_cases_is_an_error():
    rows = [HEADER, "NEW-1,,M,{},1,PX,Thing,,", "new-1,,M,{},1,PX,Thing,,"]
    result = reimport(VariantResource(), "\n".join(rows))
    [invalid] = result.invalid_rows
    assert (invalid.number, invalid.error_dict) == (
        2,
        {"sku": ["sku new-1 is already on row 1 of this file (as NEW-1)."]},
    )
    assert not Variant.objects.exists()


def test_a_sheet_row_whose_product_code_differs_only_by_case_is_refused():
    product = ProductFactory(code="PX")
    rows = [
        HEADER,
        "NEW-1,,M,{},1,px,Thing,,",
        "NEW-2,,M,{},1,NEWP,Thing,,",
        "NEW-3,,M,{},1,newp,,,",
    ]
    result = reimport(VariantResource(), "\n".join(rows))
    said = "has this code: codes are the same in upper and lower case."
    assert [(row.number, row.error_dict) for row in result.invalid_rows] == [
        (1, {"product_code": [f"Product PX {said}"]}),
        (3, {"product_code": [f"Product NEWP {said}"]}),
    ]
    assert list(Product.objects.values_list("code", flat=True)) == [product.code]
    assert not Variant.objects.exists()


def test_a_sheet_row_with_a_variants_own_sku_still_updates_it():
    """The row id is found as spelt: the variant's own SKU updates it, as before."""
    variant = VariantFactory(sku="SKU-1", name="Old", barcode=None)
    sheet = VariantResource().export().csv.replace(",Old,", ",New,")
    assert problems(reimport(VariantResource(), sheet)) == []
    variant.refresh_from_db()
    assert variant.name == "New"
