"""Upgrading a catalog with real rows in it: the migrations run on the rows an older version
stored, and what the upgraded code then does with them.

Each test moves the test database to an older migration state, writes rows with that
state's models, and migrates forward; the `migrator` fixture puts the database back at the
latest migrations whatever happens (transaction=True: migrations are DDL)."""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.conftest import as_client
from tests.factories import ChannelPriceFactory, make_api_client

BEFORE_GTIN = [("catalog", "0003_variant_attributes_object")]
BEFORE_LOST_ZERO = [("catalog", "0005_sku_and_code_in_any_case")]
UPC_A = "012345678905"
LOST_ZERO = "12345678905"  # UPC_A through a spreadsheet that took the column for numbers


class Migrator:
    """Moves the test database to a migration state and hands out that state's models."""

    def migrate(self, targets):
        MigrationExecutor(connection).migrate(targets)
        return self.apps()

    def latest(self):
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
        return self.apps()

    def apps(self):
        """The models as the database now stands (every app at its applied migrations)."""
        executor = MigrationExecutor(connection)
        return executor._create_project_state(with_applied_migrations=True).apps


@pytest.fixture
def migrator():
    try:
        yield Migrator()
    finally:
        call_command("migrate", verbosity=0)


def legacy_catalog(apps, barcodes: dict[str, str | None]) -> None:
    """Variants as an older version saved them, in order. The state's models keep today's
    `Gtin14Field` (the migrations name its class), so an 11-digit barcode's key is taken
    off again after 0004: as 0004 and the code up to 0005 left it."""
    Category = apps.get_model("catalog", "Category")
    Product = apps.get_model("catalog", "Product")
    Variant = apps.get_model("catalog", "Variant")
    has_key = any(field.name == "gtin14" for field in Variant._meta.fields)
    category = Category.objects.create(name="Tees", slug="tees")
    product = Product.objects.create(code="TEE", name="Tee", category=category)
    for sku, barcode in barcodes.items():
        variant = Variant.objects.create(product=product, sku=sku, barcode=barcode, attributes={})
        if has_key and barcode and len(barcode) == 11:
            Variant.objects.filter(pk=variant.pk).update(gtin14=None)


def keys(apps) -> dict[str, str | None]:
    return dict(apps.get_model("catalog", "Variant").objects.values_list("sku", "gtin14"))


@pytest.mark.django_db(transaction=True)
def test_legacy_upc_a_that_lost_its_leading_zero_is_found_by_the_scan_after_upgrade(
    migrator, pos, store
):
    """Before 0004 an 11-digit barcode passed (8 to 14 digits): a sheet saved through a
    spreadsheet stored UPC-A 012345678905 as 12345678905. The till scans the label, read as
    UPC-A, EAN-13 or GTIN-14: each finds the variant after the upgrade."""
    from catalog.models import Variant

    apps = migrator.migrate(BEFORE_GTIN)
    legacy_catalog(apps, {"LEGACY-UPC": LOST_ZERO, "TEN": "1234567890", "ELEVEN": "12345678901"})
    migrator.latest()
    # Its barcode as stored, its key the UPC-A's; 10 digits, or 11 that are no UPC-A with
    # the zero back, are no GTIN: no key, as 0004 left them.
    assert dict(Variant.objects.values_list("sku", "gtin14")) == {
        "LEGACY-UPC": "00012345678905",
        "TEN": None,
        "ELEVEN": None,
    }
    legacy = Variant.objects.get(sku="LEGACY-UPC")
    assert legacy.barcode == LOST_ZERO
    ChannelPriceFactory(variant=legacy, channel=pos)  # the till sees what its channel sells
    _, token = make_api_client(pos, store, name="till")
    till = as_client(token)
    for scanned in (UPC_A, f"0{UPC_A}", f"00{UPC_A}", LOST_ZERO):
        answer = till.get("/api/v1/variants/", {"barcode": scanned})
        assert answer.status_code == 200
        assert [row["sku"] for row in answer.json()["results"]] == ["LEGACY-UPC"], scanned


@pytest.mark.django_db(transaction=True)
def test_legacy_upc_a_without_leading_zero_does_not_let_a_second_variant_take_its_gtin(migrator):
    """The legacy row holds its GTIN: staff giving another variant UPC-A 012345678905 (in
    any length, or spreadsheet-damaged the same way) are refused, naming the holder."""
    from catalog.models import Product, Variant

    apps = migrator.migrate(BEFORE_GTIN)
    legacy_catalog(apps, {"LEGACY-UPC": LOST_ZERO})
    migrator.latest()
    product = Product.objects.get(code="TEE")
    for n, barcode in enumerate((UPC_A, f"0{UPC_A}", f"00{UPC_A}", LOST_ZERO)):
        twin = Variant(product=product, sku=f"NEW-{n}", barcode=barcode)
        with pytest.raises(ValidationError) as refused:
            twin.full_clean()
        assert refused.value.message_dict["barcode"] == [
            f"Variant LEGACY-UPC already has this GTIN (as {LOST_ZERO})."
        ], barcode


@pytest.mark.django_db(transaction=True)
def test_an_installation_that_already_ran_0004_gets_the_legacy_upc_a_its_key(migrator):
    """Installed with 0004 and 0005 applied, the legacy row still without its key: the new
    migration gives it; saving the row (a rename) keeps it, and the admin's form then
    stores the UPC-A the label reads, as the catalog sheet does."""
    from catalog.models import Variant

    apps = migrator.migrate(BEFORE_LOST_ZERO)
    legacy_catalog(apps, {"LEGACY-UPC": LOST_ZERO, "EAN13": "4006381333931"})
    assert keys(apps) == {"LEGACY-UPC": None, "EAN13": "04006381333931"}
    migrator.latest()
    assert dict(Variant.objects.values_list("sku", "gtin14")) == {
        "LEGACY-UPC": "00012345678905",
        "EAN13": "04006381333931",
    }
    legacy = Variant.objects.get(sku="LEGACY-UPC")
    legacy.name = "Renamed"
    legacy.save()
    stored = Variant.objects.values_list("barcode", "gtin14")
    assert stored.get(pk=legacy.pk) == (LOST_ZERO, "00012345678905")
    legacy.full_clean()  # what the admin's form runs
    legacy.save()
    assert stored.get(pk=legacy.pk) == (UPC_A, "00012345678905")


@pytest.mark.django_db(transaction=True)
def test_the_migration_lists_a_legacy_upc_a_whose_gtin_another_variant_holds(migrator):
    """After 0004, staff gave a second variant UPC-A 012345678905 (the legacy one had no
    key, so nothing refused it): two variants for one article. The migration stops, naming
    both, and changes nothing; once staff settled it, it runs through."""
    apps = migrator.migrate(BEFORE_LOST_ZERO)
    legacy_catalog(apps, {"LEGACY-UPC": LOST_ZERO, "NEW-UPC": UPC_A})
    with pytest.raises(RuntimeError) as refused:
        migrator.latest()
    assert str(refused.value).startswith(
        "Barcodes of 11 digits that are a UPC-A without its leading zero, whose GTIN another "
        f"variant holds (1): LEGACY-UPC ({LOST_ZERO}), NEW-UPC ({UPC_A}). "
    )
    apps = migrator.apps()
    assert keys(apps) == {"LEGACY-UPC": None, "NEW-UPC": "00012345678905"}

    Variant = apps.get_model("catalog", "Variant")
    Variant.objects.filter(sku="NEW-UPC").update(barcode=None, gtin14=None)  # staff settle it
    assert keys(migrator.latest()) == {"LEGACY-UPC": "00012345678905", "NEW-UPC": None}


@pytest.mark.django_db(transaction=True)
def test_the_legacy_upc_a_migration_goes_back_to_0005_as_it_was(migrator):
    apps = migrator.migrate(BEFORE_LOST_ZERO)
    legacy_catalog(apps, {"LEGACY-UPC": LOST_ZERO, "UPC": "036000291452"})
    assert keys(migrator.latest()) == {"LEGACY-UPC": "00012345678905", "UPC": "00036000291452"}
    assert keys(migrator.migrate(BEFORE_LOST_ZERO)) == {
        "LEGACY-UPC": None,
        "UPC": "00036000291452",
    }
