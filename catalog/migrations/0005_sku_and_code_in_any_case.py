import django.db.models.functions.text
from django.db import migrations, models
from django.db.models import Count
from django.db.models.functions import Upper


def case_twins(model, field: str) -> list[list[str]]:
    """The values of `field` that two or more rows hold in different cases."""
    twice = (
        model.objects.annotate(key=Upper(field))
        .values("key")
        .annotate(rows=Count("pk"))
        .filter(rows__gt=1)
        .values("key")
    )
    spellings: dict[str, list[str]] = {}
    rows = model.objects.annotate(key=Upper(field)).filter(key__in=twice).order_by(field)
    for key, value in rows.values_list("key", field):
        spellings.setdefault(key, []).append(value)
    return list(spellings.values())


def refuse_case_twins(apps, schema_editor):
    """SKUs and product codes become one in upper and lower case. Rows already holding one
    in two cases (`SKU-1`, `sku-1`) are two variants whose stock, orders and prices staff
    must settle, not this migration: it stops, listing them, before the constraints'
    IntegrityError would."""
    found = []
    for model, what in (
        (apps.get_model("catalog", "Variant"), "sku"),
        (apps.get_model("catalog", "Product"), "code"),
    ):
        twins = case_twins(model, what)
        if twins:
            listed = "; ".join(", ".join(spellings) for spellings in twins[:20])
            more = f" and {len(twins) - 20} more" if len(twins) > 20 else ""
            label = {"sku": "SKU", "code": "product code"}[what] + ("s" if twins[1:] else "")
            found.append(f"{len(twins)} {label} in more than one case: {listed}{more}")
    if found:
        raise RuntimeError(
            ". ".join(found) + ". SKUs and product codes are now the same in upper and lower "
            "case: rename (or merge) these rows so that each is spelt once before migrating."
        )


class Migration(migrations.Migration):

    dependencies = [
        ("catalog", "0004_variant_gtin14"),
    ]

    operations = [
        migrations.RunPython(refuse_case_twins, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="product",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Upper("code"), name="uniq_product_code_any_case"
            ),
        ),
        migrations.AddConstraint(
            model_name="variant",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Upper("sku"), name="uniq_variant_sku_any_case"
            ),
        ),
    ]
