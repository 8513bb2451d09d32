import catalog.gtin
import catalog.models
from django.db import migrations, models

LENGTHS = (8, 12, 13, 14)


def gtin14(value):
    """catalog.gtin.gtin14 as of this migration: the GTIN zero-padded to 14 digits, None
    when the value is none (a length no GTIN has, not digits, a wrong GS1 check digit)."""
    if not value or len(value) not in LENGTHS or not (value.isascii() and value.isdigit()):
        return None
    body = value[:-1]
    total = sum(int(digit) * (3 if i % 2 == 0 else 1) for i, digit in enumerate(reversed(body)))
    if (10 - total % 10) % 10 != int(value[-1]):
        return None
    return value.zfill(14)


def fill_gtin14(apps, schema_editor):
    """Each barcode's number, the key the scan finds and one variant holds. A barcode that
    is no GTIN (saved when 9 to 11 digits and any last digit passed) keeps NULL: it stays
    as it is, and the admin or the sheet asks for a real one at its next edit. Two variants
    with one GTIN in two spellings are for staff to settle: listed, and nothing changes."""
    Variant = apps.get_model("catalog", "Variant")
    rows = Variant.objects.exclude(barcode=None).order_by("pk").values_list("pk", "sku", "barcode")
    holders: dict[str, list[tuple[int, str, str]]] = {}
    for pk, sku, barcode in rows.iterator(chunk_size=2000):
        key = gtin14(barcode)
        if key is not None:
            holders.setdefault(key, []).append((pk, sku, barcode))
    twins = [held for held in holders.values() if len(held) > 1]
    if twins:
        listed = "; ".join(
            ", ".join(f"{sku} ({barcode})" for _, sku, barcode in held) for held in twins[:20]
        )
        more = f" and {len(twins) - 20} more" if len(twins) > 20 else ""
        raise RuntimeError(
            f"{len(twins)} GTINs are the barcode of more than one variant, in different "
            f"lengths: {listed}{more}. A GTIN is one article: give each of these variants "
            "its own barcode (or none) before migrating."
        )
    batch = []
    for key, [(pk, _, _)] in holders.items():
        batch.append(Variant(pk=pk, gtin14=key))
        if len(batch) == 2000:
            Variant.objects.bulk_update(batch, ["gtin14"])
            batch = []
    Variant.objects.bulk_update(batch, ["gtin14"])


class Migration(migrations.Migration):

    dependencies = [
        ("catalog", "0003_variant_attributes_object"),
    ]

    operations = [
        migrations.AlterField(
            model_name="historicalvariant",
            name="barcode",
            field=models.CharField(
                blank=True,
                db_index=True,
                max_length=14,
                null=True,
                validators=[catalog.gtin.validate_gtin],
            ),
        ),
        migrations.AlterField(
            model_name="variant",
            name="barcode",
            field=models.CharField(
                blank=True,
                max_length=14,
                null=True,
                unique=True,
                validators=[catalog.gtin.validate_gtin],
            ),
        ),
        migrations.AddField(
            model_name="variant",
            name="gtin14",
            field=catalog.models.Gtin14Field(blank=True, editable=False, max_length=14, null=True),
        ),
        migrations.RunPython(fill_gtin14, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="variant",
            name="gtin14",
            field=catalog.models.Gtin14Field(
                blank=True, editable=False, max_length=14, null=True, unique=True
            ),
        ),
    ]
