"""Demo catalog for `seed_demo`: a category tree, products with sized or coloured variants,
valid EAN-13 barcodes, and prices in every channel. Deterministic and idempotent."""

import random
from collections.abc import Callable
from decimal import Decimal

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


def seed(
    *, size: str, rng: random.Random, progress: Callable[[int, int], None] | None = None
) -> dict:
    count = SIZES[size]
    leaves = _categories()
    channels = {channel.code: channel for channel in Channel.objects.all()}

    products, variant_rows = [], []
    for n in range(1, count + 1):
        category, top, noun, axis = leaves[(n - 1) % len(leaves)]
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(MATERIALS)} {noun.lower()}"
        code = f"P{n:05d}"
        products.append(
            Product(
                code=code,
                name=name[0].upper() + name[1:],
                description=f"{name.capitalize()} from our {category.name.lower()} range.",
                category=category,
                is_active=True,
            )
        )
        values = VARIANT_VALUES[axis]
        values = values[top] if isinstance(values, dict) else rng.sample(values, 3)
        low, high = PRICE_BANDS[top]
        price = Decimal(rng.randint(low, high)) - Decimal("0.10")
        for i, value in enumerate(values):
            variant_rows.append(
                (code, f"{code}-{value.upper()}", ean13(n * 10 + i), value, axis, price)
            )
    Product.objects.bulk_create(
        products,
        update_conflicts=True,
        unique_fields=["code"],
        update_fields=["name", "description", "category", "is_active"],
        batch_size=1000,
    )
    product_ids = dict(
        Product.objects.filter(code__in=[p.code for p in products]).values_list("code", "id")
    )
    if progress:
        progress(1, 3)

    Variant.objects.bulk_create(
        [
            Variant(
                product_id=product_ids[code],
                sku=sku,
                barcode=barcode,
                name=f"{value}",
                attributes={axis: value},
                is_active=True,
            )
            for code, sku, barcode, value, axis, _ in variant_rows
        ],
        update_conflicts=True,
        unique_fields=["sku"],
        update_fields=["product", "barcode", "name", "attributes", "is_active"],
        batch_size=1000,
    )
    variant_ids = dict(
        Variant.objects.filter(sku__in=[row[1] for row in variant_rows]).values_list("sku", "id")
    )
    if progress:
        progress(2, 3)

    prices = []
    for index, (_, sku, _, _, _, price) in enumerate(variant_rows):
        if "web" in channels:
            # Every 40th variant is not sold online yet: shows how unpublished prices hide it.
            prices.append(
                ChannelPrice(
                    variant_id=variant_ids[sku],
                    channel=channels["web"],
                    amount=price,
                    published=index % 40 != 7,
                )
            )
        if "pos" in channels:
            prices.append(
                ChannelPrice(
                    variant_id=variant_ids[sku],
                    channel=channels["pos"],
                    amount=price,
                    published=True,
                )
            )
    ChannelPrice.objects.bulk_create(
        prices,
        update_conflicts=True,
        unique_fields=["variant", "channel"],
        update_fields=["amount", "published"],
        batch_size=1000,
    )
    ids = list(product_ids.values())
    for start in range(0, len(ids), 500):
        product_refresh_search(product_ids=ids[start : start + 500])
    if progress:
        progress(3, 3)
    return {"products": len(products), "variants": len(variant_rows), "prices": len(prices)}
