from django.db import migrations


def gtin14(value):
    """catalog.gtin.gtin14 as of this migration: the GTIN zero-padded to 14 digits, None
    when the value is none (a length no GTIN has, not digits, a wrong GS1 check digit)."""
    if not value or len(value) not in (8, 12, 13, 14) or not (value.isascii() and value.isdigit()):
        return None
    body = value[:-1]
    total = sum(int(digit) * (3 if i % 2 == 0 else 1) for i, digit in enumerate(reversed(body)))
    if (10 - total % 10) % 10 != int(value[-1]):
        return None
    return value.zfill(14)


def lost_zero_key(barcode):
    """The key of an 11-digit barcode that is a UPC-A without its leading zero (a catalog
    sheet saved through a spreadsheet before 0004 made 012345678905 into 12345678905), as
    catalog.gtin.barcode_key gives it; None for any other barcode."""
    if barcode and len(barcode) == 11:
        return gtin14(f"0{barcode}")
    return None


def fill_lost_zero_gtin14(apps, schema_editor):
    """0004 left such a barcode without its key (11 digits is no GTIN length): the till
    scanning its label (012345678905) found nothing, and another variant could be given
    that GTIN. Each gets its UPC-A's key; its barcode stays as stored. When another variant
    holds that GTIN already (in another spelling), the two are one article for staff to
    settle: listed, and nothing changes."""
    Variant = apps.get_model("catalog", "Variant")
    found = {}
    rows = Variant.objects.filter(gtin14=None, barcode__regex=r"^[0-9]{11}$").order_by("pk")
    for pk, sku, barcode in rows.values_list("pk", "sku", "barcode").iterator(chunk_size=2000):
        key = lost_zero_key(barcode)
        if key is not None:
            found[key] = (pk, sku, barcode)
    holders = {}
    keys = list(found)
    for start in range(0, len(keys), 2000):
        held = Variant.objects.filter(gtin14__in=keys[start : start + 2000])
        for key, sku, barcode in held.values_list("gtin14", "sku", "barcode"):
            holders[key] = (sku, barcode)
    twins = [(found[key], holders[key]) for key in keys if key in holders]
    if twins:
        listed = "; ".join(
            f"{sku} ({barcode}), {other_sku} ({other_barcode})"
            for (_, sku, barcode), (other_sku, other_barcode) in twins[:20]
        )
        more = f" and {len(twins) - 20} more" if len(twins) > 20 else ""
        raise RuntimeError(
            f"Barcodes of 11 digits that are a UPC-A without its leading zero, whose GTIN "
            f"another variant holds ({len(twins)}): {listed}{more}. A GTIN is one article: "
            "give each of these variants its own barcode (or none) before migrating."
        )
    batch = [Variant(pk=pk, gtin14=key) for key, (pk, _, _) in found.items()]
    Variant.objects.bulk_update(batch, ["gtin14"], batch_size=2000)


def unfill_lost_zero_gtin14(apps, schema_editor):
    """Back to 0005: an 11-digit barcode has no key there."""
    Variant = apps.get_model("catalog", "Variant")
    Variant.objects.filter(barcode__regex=r"^[0-9]{11}$").update(gtin14=None)


class Migration(migrations.Migration):

    dependencies = [
        ("catalog", "0005_sku_and_code_in_any_case"),
    ]

    operations = [
        migrations.RunPython(fill_lost_zero_gtin14, unfill_lost_zero_gtin14),
    ]
