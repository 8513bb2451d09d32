"""Demo catalog for `seed_demo`: a category tree, products with sized or coloured variants,
valid EAN-13 barcodes, and prices in every channel. Deterministic and idempotent."""

import random
from collections.abc import Callable
from decimal import Decimal

from django.db.models import Max
from django.utils import timezone
from django.utils.text import slugify

from omnichannel.models import Channel

from .models import Category, ChannelPrice, Product, Variant
from .services import product_refresh_search

SIZES = {"small": 500, "large": 5000}

TREE = {
    "Clothing": {
        "T-shirts": ("T-shirt", "size"),
        "Shirts": ("Shirt", "size"),
        "Jeans": ("Jeans", "size"),
        "Jackets": ("Jacket", "size"),
        "Knitwear": ("Sweater", "size"),
    },
    "Shoes": {"Sneakers": ("Sneakers", "size"), "Boots": ("Boots", "size")},
    "Accessories": {
        "Bags": ("Bag", "colour"),
        "Scarves": ("Scarf", "colour"),
        "Belts": ("Belt", "size"),
    },
    "Home": {
        "Mugs": ("Mug", "colour"),
        "Candles": ("Candle", "colour"),
        "Throws": ("Throw", "colour"),
    },
}
ADJECTIVES = [
    "Classic",
    "Relaxed",
    "Slim",
    "Organic",
    "Vintage",
    "Essential",
    "Heavy",
    "Light",
    "Soft",
    "Urban",
    "Coastal",
    "Alpine",
    "Everyday",
    "Weekend",
    "Studio",
]
MATERIALS = [
    "cotton",
    "linen",
    "wool",
    "denim",
    "leather",
    "canvas",
    "cashmere",
    "recycled",
    "ceramic",
    "jersey",
    "corduroy",
    "suede",
]
VARIANT_VALUES = {
    "size": {
        "Clothing": ["S", "M", "L"],
        "Shoes": ["39", "41", "43"],
        "Accessories": ["85", "95", "105"],
    },
    "colour": ["black", "sand", "navy", "olive", "rust", "white"],
}
PRICE_BANDS = {"Clothing": (19, 149), "Shoes": (59, 189), "Accessories": (15, 99), "Home": (9, 79)}
# What follows a demo product's code in its variants' SKUs (`P00001-M`, `P00013-SAND`).
DEMO_SKU_SUFFIXES = {
    value.upper()
    for axis in VARIANT_VALUES.values()
    for values in (axis.values() if isinstance(axis, dict) else [axis])
    for value in values
}


def demo_product_codes() -> list[str]:
    """The product codes the demo catalog writes, at any size: a small seed after a large
    one still holds the large one's products."""
    return [f"P{n:05d}" for n in range(1, max(SIZES.values()) + 1)]


def demo_variant_ids() -> list[int]:
    """The demo catalog's active variants, by SKU: a demo product's code and one of the
    demo's sizes or colours. The retailer's own articles are not among them, nor a variant
    staff added to a demo product: what the demo stock and the demo orders may touch."""
    rows = (
        Variant.objects.filter(product__code__in=demo_product_codes(), is_active=True)
        .order_by("sku")
        .values_list("pk", "sku", "product__code")
    )
    return [
        pk
        for pk, sku, code in rows
        if sku.startswith(f"{code}-") and sku[len(code) + 1 :] in DEMO_SKU_SUFFIXES
    ]


def ean13(n: int) -> str:
    body = f"200{n:09d}"
    total = sum(int(digit) * (3 if i % 2 else 1) for i, digit in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _categories() -> list[tuple[Category, str, str, str]]:
    """The leaves, each with its top-level name, product noun and variant axis."""
    leaves = []
    for top_name, children in TREE.items():
        top, _ = Category.objects.update_or_create(
            slug=slugify(top_name), defaults={"name": top_name, "parent": None}
        )
        for child_name, (noun, axis) in children.items():
            child, _ = Category.objects.update_or_create(
                slug=slugify(f"{top_name}-{child_name}"),
                defaults={"name": child_name, "parent": top},
            )
            leaves.append((child, top_name, noun, axis))
    return leaves


def _demo_rows(count: int, leaves: list, channels: list[str], rng: random.Random):
    """What the demo catalog should hold: products by code, variants by SKU, prices by
    (SKU, channel), each as a tuple in the order the database is read back in."""
    products, variants, prices = {}, {}, {}
    for n in range(1, count + 1):
        category, top, noun, axis = leaves[(n - 1) % len(leaves)]
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(MATERIALS)} {noun.lower()}"
        code = f"P{n:05d}"
        products[code] = (
            name[0].upper() + name[1:],
            f"{name.capitalize()} from our {category.name.lower()} range.",
            category.pk,
            True,
        )
        values = VARIANT_VALUES[axis]
        values = values[top] if isinstance(values, dict) else rng.sample(values, 3)
        low, high = PRICE_BANDS[top]
        price = Decimal(rng.randint(low, high)) - Decimal("0.10")
        # One product in ten is a euro cheaper in the stores (a local promotion), so the
        # demo shows that a price belongs to a channel.
        store_price = price - Decimal("1.00") if n % 10 == 3 else price
        for i, value in enumerate(values):
            sku = f"{code}-{value.upper()}"
            index = len(variants)
            variants[sku] = (code, ean13(n * 10 + i), value, {axis: value}, True)
            if "web" in channels:
                # Every 40th variant is not sold online yet: shows how unpublished prices hide it.
                prices[(sku, "web")] = (price, index % 40 != 7)
            if "pos" in channels:
                prices[(sku, "pos")] = (store_price, True)
    return products, variants, prices


def _changed_products(products: dict, variants: dict, prices: dict) -> set[str]:
    """Codes of the products whose row, variants or prices differ from their demo values
    (or are missing): only those are written, and only their `updated_at` moves, so a
    storefront syncing with `updated_since` sees a re-seed exactly where it changed something.
    """
    current_products = {
        code: tuple(rest)
        for code, *rest in Product.objects.filter(code__in=list(products)).values_list(
            "code", "name", "description", "category_id", "is_active"
        )
    }
    current_variants = {
        sku: tuple(rest)
        for sku, *rest in Variant.objects.filter(sku__in=list(variants)).values_list(
            "sku", "product__code", "barcode", "name", "attributes", "is_active"
        )
    }
    current_prices = {
        (sku, channel): (amount, published)
        for sku, channel, amount, published in ChannelPrice.objects.filter(
            variant__sku__in=list(variants)
        ).values_list("variant__sku", "channel__code", "amount", "published")
    }
    changed = {code for code, row in products.items() if current_products.get(code) != row}
    changed |= {row[0] for sku, row in variants.items() if current_variants.get(sku) != row}
    for (sku, channel), row in prices.items():
        if current_prices.get((sku, channel)) != row:
            changed.add(variants[sku][0])
    return changed


def _record_history(model, rows) -> None:
    """Bulk writes send no signals: a history row for each row the seed created ("created")
    or changed back to its demo values ("changed"), none for a row rewritten as it was. So
    the admin's history page shows the old values when staff first change a demo price."""
    rows = list(rows)
    history = model.history.model
    last_ids = (
        history.objects.filter(id__in=[row.pk for row in rows])
        .values("id")
        .annotate(last=Max("history_id"))
        .values("last")
    )
    last = {record.id: record for record in history.objects.filter(history_id__in=last_ids)}
    fields = [field.attname for field in history.tracked_fields]
    created = [row for row in rows if row.pk not in last]
    changed = [
        row
        for row in rows
        if row.pk in last and any(getattr(row, f) != getattr(last[row.pk], f) for f in fields)
    ]
    for update, group in ((False, created), (True, changed)):
        model.history.bulk_history_create(
            group, update=update, default_change_reason="seed_demo", batch_size=1000
        )


def seed(
    *, size: str, rng: random.Random, progress: Callable[[int, int], None] | None = None
) -> dict:
    """Create or reset the demo catalog; returns its counts and how many products changed."""
    leaves = _categories()
    channels = {c.code: c for c in Channel.objects.filter(code__in=["web", "pos"])}
    products, variants, prices = _demo_rows(SIZES[size], leaves, list(channels), rng)
    changed = _changed_products(products, variants, prices)
    now = timezone.now()

    Product.objects.bulk_create(
        [
            Product(
                code=code,
                name=name,
                description=description,
                category_id=category_id,
                is_active=is_active,
                updated_at=now,
            )
            for code, (name, description, category_id, is_active) in products.items()
            if code in changed
        ],
        update_conflicts=True,
        unique_fields=["code"],
        update_fields=["name", "description", "category", "is_active", "updated_at"],
        batch_size=1000,
    )
    product_ids = dict(Product.objects.filter(code__in=list(products)).values_list("code", "id"))
    if progress:
        progress(1, 3)

    Variant.objects.bulk_create(
        [
            Variant(
                product_id=product_ids[code],
                sku=sku,
                barcode=barcode,
                name=name,
                attributes=attributes,
                is_active=is_active,
            )
            for sku, (code, barcode, name, attributes, is_active) in variants.items()
            if code in changed
        ],
        update_conflicts=True,
        unique_fields=["sku"],
        update_fields=["product", "barcode", "gtin14", "name", "attributes", "is_active"],
        batch_size=1000,
    )
    changed_skus = [sku for sku, row in variants.items() if row[0] in changed]
    variant_ids = dict(Variant.objects.filter(sku__in=changed_skus).values_list("sku", "id"))
    if progress:
        progress(2, 3)

    ChannelPrice.objects.bulk_create(
        [
            ChannelPrice(
                variant_id=variant_ids[sku],
                channel=channels[channel],
                amount=amount,
                published=published,
            )
            for (sku, channel), (amount, published) in prices.items()
            if sku in variant_ids
        ],
        update_conflicts=True,
        unique_fields=["variant", "channel"],
        update_fields=["amount", "published"],
        batch_size=1000,
    )
    # Bulk writes send no signals: the demo's rows get their history rows here, in bulk.
    _record_history(Product, Product.objects.filter(code__in=changed))
    _record_history(Variant, Variant.objects.filter(sku__in=changed_skus))
    _record_history(ChannelPrice, ChannelPrice.objects.filter(variant_id__in=variant_ids.values()))
    # Synchronously (not through the task): the demo must be searchable once the command ends.
    # All of them, not only the changed ones: a no-op where the text is current.
    ids = sorted(product_ids.values())
    for start in range(0, len(ids), 500):
        product_refresh_search(product_ids=ids[start : start + 500])
    if progress:
        progress(3, 3)
    return {
        "categories": len(leaves) + len(TREE),
        "products": len(products),
        "variants": len(variants),
        "prices": len(prices),
        "changed": len(changed),
    }
