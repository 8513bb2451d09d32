"""The catalog as a channel sees it: products, variants, prices, filters, the POS scan path."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog.models import ChannelPrice, Product, Variant
from catalog.services import product_refresh_search
from tests.factories import (
    CategoryFactory,
    ChannelLocationFactory,
    ChannelPriceFactory,
    LocationFactory,
    ProductFactory,
    VariantFactory,
)

pytestmark = pytest.mark.django_db


def priced_product(channel, n_variants=2, **product_fields):
    product = ProductFactory(**product_fields)
    for _ in range(n_variants):
        ChannelPriceFactory(variant=VariantFactory(product=product), channel=channel)
    return product


def test_product_shows_variants_with_the_clients_channel_price(web, pos, web_client):
    variant = VariantFactory()
    ChannelPriceFactory(variant=variant, channel=web, amount=Decimal("12.90"))
    ChannelPriceFactory(variant=variant, channel=pos, amount=Decimal("11.00"))
    body = web_client.get("/api/v1/products/").json()
    assert body["next"] is None and body["previous"] is None
    [product] = body["results"]
    assert set(product) >= {"id", "name", "description", "category", "variants"}
    [shown] = product["variants"]
    assert shown == {
        "sku": variant.sku,
        "barcode": variant.barcode,
        "name": variant.name,
        "attributes": {"size": "M"},
        "price": "12.90",
    }


def test_unpublished_or_unpriced_variants_are_hidden_from_the_channel(web, web_client):
    product = ProductFactory()
    shown = VariantFactory(product=product)
    ChannelPriceFactory(variant=shown, channel=web)
    unpublished = VariantFactory(product=product)
    ChannelPriceFactory(variant=unpublished, channel=web, published=False)
    VariantFactory(product=product)  # no web price at all
    only_unpublished = VariantFactory()
    ChannelPriceFactory(variant=only_unpublished, channel=web, published=False)

    results = web_client.get("/api/v1/products/").json()["results"]
    assert [p["id"] for p in results] == [product.id]
    assert [v["sku"] for v in results[0]["variants"]] == [shown.sku]


@pytest.mark.parametrize("since", [None, "an hour ago"])
def test_product_list_runs_a_constant_number_of_queries(
    web, web_client, django_assert_max_num_queries, since
):
    """Also with `updated_since`, where products that left the channel are listed too."""
    query = {} if since is None else {"updated_since": timezone.now() - timedelta(hours=1)}
    priced_product(web)
    web_client.get("/api/v1/products/", query)  # the first call also records the token's use
    with django_assert_max_num_queries(20) as few:
        web_client.get("/api/v1/products/", query)
    baseline = len(few.captured_queries)
    products = [priced_product(web, n_variants=3) for _ in range(30)]
    if since is not None:
        for product in products[:10]:
            product.is_active = False
            product.save()
        for product in products[10:20]:
            for price in ChannelPrice.objects.filter(variant__product=product):
                price.delete()
    with django_assert_max_num_queries(baseline) as many:
        response = web_client.get("/api/v1/products/", {**query, "page_size": 50})
    results = response.json()["results"]
    assert len(results) == 31
    assert len(many.captured_queries) == baseline
    if since is not None:
        assert sum(not p["variants"] for p in results) == 20


def test_variant_list_runs_a_constant_number_of_queries(
    web, web_client, django_assert_max_num_queries
):
    priced_product(web, n_variants=1)
    web_client.get("/api/v1/variants/")
    with django_assert_max_num_queries(20) as few:
        web_client.get("/api/v1/variants/")
    baseline = len(few.captured_queries)
    for _ in range(20):
        priced_product(web, n_variants=2)
    with django_assert_max_num_queries(baseline):
        response = web_client.get("/api/v1/variants/?page_size=100")
    assert len(response.json()["results"]) == 41


def test_channel_and_location_lists_run_a_constant_number_of_queries(
    web, store, web_client, django_assert_max_num_queries
):
    """Each channel lists the locations feeding it: read with the page, not per channel
    (nothing counted these two lists' queries)."""
    from django.contrib.auth.models import Group
    from rest_framework.test import APIClient

    from omnichannel.roles import MANAGER
    from tests.factories import ChannelFactory, make_staff

    manager = make_staff("boss")
    manager.groups.add(Group.objects.get(name=MANAGER))
    staff = APIClient()
    staff.force_login(manager)
    urls = [
        (staff, "/api/v1/channels/", 2 + 15),
        (staff, "/api/v1/locations/", 1 + 15),
        (web_client, "/api/v1/locations/", 1 + 15),
    ]
    baselines = []
    for api, url, _ in urls:
        api.get(url)
        with django_assert_max_num_queries(20) as few:
            api.get(url)
        baselines.append(len(few.captured_queries))
    for _ in range(15):  # each a channel of its own and one more location of the web shop
        location = LocationFactory()
        ChannelLocationFactory(channel=ChannelFactory(), location=location)
        ChannelLocationFactory(channel=web, location=location)
    for (api, url, expected), baseline in zip(urls, baselines, strict=True):
        api.get(url)  # a change of feeds makes the next call look the token up again
        with django_assert_max_num_queries(baseline):
            listed = api.get(url).json()["results"]
        assert len(listed) == expected, url


def test_barcode_scan_finds_the_variant_with_price_and_product(pos, pos_client):
    variant = VariantFactory(barcode="4006381333931", product__name="Linen shirt")
    ChannelPriceFactory(variant=variant, channel=pos, amount=Decimal("39.00"))
    VariantFactory()  # another, not priced in pos

    [found] = pos_client.get("/api/v1/variants/?barcode=4006381333931").json()["results"]
    assert found["sku"] == variant.sku
    assert found["price"] == "39.00"
    assert found["product"]["name"] == "Linen shirt"
    assert pos_client.get("/api/v1/variants/?barcode=0000000000000").json()["results"] == []


def test_variant_by_sku_in_path_and_in_query(pos, pos_client):
    """A SKU may hold '/' (the validator allows it): its path finds it, with the '/' sent as
    it is or as %2F (it was a 404 either way), and a SKU without one is found as before."""
    variant = VariantFactory(sku="TEE/RED-M")
    variant.full_clean()
    ChannelPriceFactory(variant=variant, channel=pos)
    for path in ("/api/v1/variants/TEE/RED-M/", "/api/v1/variants/TEE%2FRED-M/"):
        response = pos_client.get(path)
        assert response.status_code == 200, path
        assert response.json()["sku"] == "TEE/RED-M"
    assert pos_client.get("/api/v1/variants/TEE/").status_code == 404
    listed = pos_client.get("/api/v1/variants/?sku=TEE/RED-M").json()["results"]
    assert [v["sku"] for v in listed] == ["TEE/RED-M"]
    other = VariantFactory(sku="MUG-1")
    ChannelPriceFactory(variant=other, channel=pos)
    assert pos_client.get("/api/v1/variants/MUG-1/").json()["sku"] == "MUG-1"
    assert pos_client.get("/api/v1/variants/MUG-1.json").json()["sku"] == "MUG-1"


def test_the_scan_path_hides_discontinued_variants_and_products(pos, pos_client):
    """A till scanning the barcode of a discontinued product (or variant) finds nothing, as
    `products/` shows nothing: it found the variant, which the order then refused."""
    gone_product = VariantFactory(barcode="4006381333931", product__is_active=False)
    gone_variant = VariantFactory(barcode="4006381333948", is_active=False)
    for variant in (gone_product, gone_variant):
        ChannelPriceFactory(variant=variant, channel=pos)
    assert pos_client.get("/api/v1/products/").json()["results"] == []
    for variant in (gone_product, gone_variant):
        assert pos_client.get(f"/api/v1/variants/?barcode={variant.barcode}").json() == {
            "count": 0,
            "next": None,
            "previous": None,
            "results": [],
        }
        assert pos_client.get(f"/api/v1/variants/?sku={variant.sku}").json()["results"] == []
        assert pos_client.get(f"/api/v1/variants/{variant.sku}/").status_code == 404


def test_sku_filter_takes_repeated_and_comma_separated_values(web, web_client):
    products = [priced_product(web, n_variants=1) for _ in range(3)]
    skus = [p.variants.get().sku for p in products]
    repeated = web_client.get(f"/api/v1/products/?sku={skus[0]}&sku={skus[1]}").json()
    comma = web_client.get(f"/api/v1/products/?sku={skus[0]},{skus[1]}").json()
    expected = sorted([products[0].id, products[1].id])
    assert sorted(p["id"] for p in repeated["results"]) == expected
    assert sorted(p["id"] for p in comma["results"]) == expected


def test_sku_filter_finds_a_product_only_by_a_sku_the_channel_sells(web, pos, web_client):
    """`products/?sku=` matches the variants the product lists in the channel: a SKU that is
    unpublished, priced elsewhere only or discontinued found a product without it."""
    product = ProductFactory()
    shown = VariantFactory(product=product)
    ChannelPriceFactory(variant=shown, channel=web)
    unpublished = VariantFactory(product=product)
    ChannelPriceFactory(variant=unpublished, channel=web, published=False)
    elsewhere = VariantFactory(product=product)
    ChannelPriceFactory(variant=elsewhere, channel=pos)
    discontinued = VariantFactory(product=product, is_active=False)
    ChannelPriceFactory(variant=discontinued, channel=web)

    def found(*skus):
        body = web_client.get("/api/v1/products/", {"sku": ",".join(skus)}).json()
        return [(p["id"], [v["sku"] for v in p["variants"]]) for p in body["results"]]

    for hidden in (unpublished, elsewhere, discontinued):
        assert found(hidden.sku) == [], hidden.sku
    assert found(shown.sku) == [(product.id, [shown.sku])]
    assert found(unpublished.sku, shown.sku) == [(product.id, [shown.sku])]


def test_updated_since_returns_products_changed_after_the_time(web, web_client):
    old = priced_product(web)
    recent = priced_product(web)
    long_ago = timezone.now() - timedelta(days=3)
    Product.objects.filter(pk__in=[old.pk, recent.pk]).update(updated_at=long_ago)
    since = (timezone.now() - timedelta(hours=1)).isoformat()

    assert web_client.get("/api/v1/products/", {"updated_since": since}).json()["results"] == []
    # A price change is a change to the product for integrators syncing the catalog.
    price = recent.variants.first().prices.get()
    price.amount = Decimal("9.99")
    price.save()
    results = web_client.get("/api/v1/products/", {"updated_since": since}).json()["results"]
    assert [p["id"] for p in results] == [recent.id]


def test_category_filter_includes_subcategories_and_rejects_unknown(web, web_client):
    clothing = CategoryFactory(slug="clothing")
    shirts = CategoryFactory(slug="shirts", parent=clothing)
    shoes = CategoryFactory(slug="shoes")
    in_parent = priced_product(web, category=clothing)
    in_child = priced_product(web, category=shirts)
    priced_product(web, category=shoes)

    results = web_client.get("/api/v1/products/?category=clothing").json()["results"]
    assert sorted(p["id"] for p in results) == sorted([in_parent.id, in_child.id])
    response = web_client.get("/api/v1/products/?category=nope")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "category" in response.json()["errors"]


def test_search_matches_all_terms_across_name_sku_and_attributes(web, web_client):
    shirt = priced_product(web, name="Blue linen shirt")
    priced_product(web, name="Blue denim jeans")
    product_refresh_search(product_ids=Product.objects.values_list("id", flat=True))
    results = web_client.get("/api/v1/products/?search=BLUE Linen").json()["results"]
    assert [p["id"] for p in results] == [shirt.id]
    sku = shirt.variants.first().sku
    results = web_client.get(f"/api/v1/products/?search={sku.lower()}").json()["results"]
    assert [p["id"] for p in results] == [shirt.id]


def test_pagination_links_and_page_size(web, web_client):
    for _ in range(3):
        priced_product(web, n_variants=1)
    first = web_client.get("/api/v1/products/?page_size=2").json()
    assert len(first["results"]) == 2
    assert first["previous"] is None
    assert "page=2" in first["next"]
    second = web_client.get(first["next"]).json()
    assert len(second["results"]) == 1
    assert second["next"] is None


@pytest.mark.parametrize(
    "query",
    [
        "page=abc",
        "page=-1",
        "page=999999999999999999999",
        "page_size=-5",
        "page_size=abc",
        "updated_since=yesterday",
        "updated_since=2026-13-45T99:00:00",
        "sku=" + "A" * 300,
        "sku=%00",
        "search=%00%ff",
        "search=' OR 1=1 --",
        "category=%F0%9F%92%A5",
        "channel=",
        "barcode[]=1",
        "ordering=;drop table",
        "channel=%00",
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/products/", "/api/v1/variants/"])
def test_garbage_query_parameters_never_cause_a_500(web, web_client, path, query):
    priced_product(web)
    response = web_client.get(f"{path}?{query}")
    assert response.status_code < 500
    if response.status_code >= 400:
        body = response.json()
        assert {"code", "detail"} <= set(body)


def test_bad_filter_value_is_400_with_field_errors(web_client):
    response = web_client.get("/api/v1/products/?updated_since=yesterday")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert body["detail"]
    assert isinstance(body["errors"]["updated_since"], list)


@pytest.mark.parametrize("value", ["{id}.5", "{id}e0", "{id}x", "one"])
def test_the_product_filter_takes_whole_ids_only(web, web_client, value):
    """`variants/?product=` is an id: `1.5` matched product 1 (read as a decimal, then cut
    to an integer); anything but a whole number is a 400 on the field."""
    product = priced_product(web, n_variants=1)
    for whole in (f"{product.pk}", f"{product.pk}.0"):
        assert len(web_client.get(f"/api/v1/variants/?product={whole}").json()["results"]) == 1
    response = web_client.get(f"/api/v1/variants/?product={value.format(id=product.pk)}")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert body["errors"]["product"] == ["Enter a whole number."]
    for out_of_range in ("99999999999999999999999", "0", "-3"):  # no id is; SQLite's 500
        refused = web_client.get(f"/api/v1/variants/?product={out_of_range}")
        assert refused.status_code == 400 and list(refused.json()["errors"]) == ["product"]


def test_unknown_product_is_404_with_error_body(web_client):
    response = web_client.get("/api/v1/products/999999/")
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "not_found"
    assert body["detail"]


@pytest.mark.parametrize(
    "path", ["/api/v1/variants/%00/", "/api/v1/channels/a%00b/", "/api/v1/locations/%00/"]
)
def test_nul_in_a_path_lookup_is_400_not_500(web_client, path):
    response = web_client.get(path)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_an_edit_is_still_searchable(web, caplog, monkeypatch):
    """The refresh is queued after the commit; when the broker refuses it (Redis stopped),
    the edit stands and the refresh runs in the request instead: nothing to re-run later."""
    from kombu.exceptions import OperationalError

    from catalog.services import product_refresh_search_later
    from catalog.tasks import refresh_product_search

    product = ProductFactory(name="Old name")
    product_refresh_search(product_ids=[product.pk])

    def refused(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(refresh_product_search, "delay", refused)
    with caplog.at_level("WARNING", logger="catalog.services"), transaction.atomic():
        Product.objects.filter(pk=product.pk).update(name="Linen shirt")
        product_refresh_search_later(product_ids=[product.pk])
    product.refresh_from_db()
    assert "linen shirt" in product.search_text.lower()
    assert any("search refresh not queued" in r.getMessage() for r in caplog.records)


def test_the_location_filters_take_true_or_false_and_refuse_other_words(web, store, web_client):
    """`?pickup=maybe` was read as no answer and the filter silently dropped: every
    location came back. true/false (1/0, yes/no) filter; another word is a 400 on it."""

    warehouse = LocationFactory(code="wh", kind="warehouse", pickup=False, ships=True)
    ChannelLocationFactory(channel=web, location=warehouse, priority=1)

    def codes(query):
        listed = web_client.get(f"/api/v1/locations/?{query}").json()["results"]
        return sorted(loc["code"] for loc in listed)

    assert codes("pickup=true") == codes("pickup=1") == codes("pickup=yes") == [store.code]
    assert codes("pickup=false") == codes("pickup=No") == ["wh"]
    assert codes("") == sorted([store.code, "wh"])
    for query in ("pickup=maybe", "ships=2"):
        refused = web_client.get(f"/api/v1/locations/?{query}")
        assert refused.status_code == 400, query
        assert list(refused.json()["errors"]) == [query.split("=")[0]]


@pytest.mark.parametrize(
    "how", ["product discontinued", "last price unpublished", "last price deleted"]
)
def test_updated_since_tells_a_storefront_that_a_product_left_the_channel(web, web_client, how):
    """A storefront syncing with `products/?updated_since=` must learn that a product it
    shows is no longer sold (an order for it is refused, not_sold_in_channel): it comes
    back with no variants. Without `updated_since` the list still leaves it out."""
    variant = VariantFactory()
    price = ChannelPriceFactory(variant=variant, channel=web)
    product = variant.product
    Product.objects.filter(pk=product.pk).update(updated_at=timezone.now() - timedelta(days=2))
    since = (timezone.now() - timedelta(seconds=1)).isoformat()
    assert web_client.get("/api/v1/products/", {"updated_since": since}).json()["results"] == []

    if how == "product discontinued":
        product.is_active = False
        product.save()
    elif how == "last price unpublished":
        price.published = False
        price.save()
    else:
        price.delete()
    product.refresh_from_db()
    assert product.updated_at.isoformat() >= since  # the change is dated...
    changed = web_client.get("/api/v1/products/", {"updated_since": since}).json()["results"]
    assert [(p["id"], p["variants"]) for p in changed] == [(product.id, [])]  # ...and shown
    assert web_client.get("/api/v1/products/").json()["results"] == []


def test_updated_since_lists_only_the_variants_still_sold_and_no_product_never_sold(
    web, pos, web_client, pos_client
):
    """A product still sold lists its sold variants only; one the web shop never priced (a
    store-only product, a launch prepared unpublished) is not shown to it, changed or not,
    nor one that left another channel (the till, which sold it, is told)."""
    kept = ProductFactory()
    sold = VariantFactory(product=kept)
    ChannelPriceFactory(variant=sold, channel=web)
    unpublished_now = ChannelPriceFactory(variant=VariantFactory(product=kept), channel=web)
    store_only = VariantFactory()
    ChannelPriceFactory(variant=store_only, channel=pos)
    prepared = VariantFactory()
    ChannelPriceFactory(variant=prepared, channel=web, published=False)
    since = timezone.now().isoformat()
    unpublished_now.published = False
    unpublished_now.save()
    for product in (store_only.product, prepared.product):
        product.is_active = False
        product.save()

    changed = web_client.get("/api/v1/products/", {"updated_since": since}).json()["results"]
    assert [(p["id"], [v["sku"] for v in p["variants"]]) for p in changed] == [
        (kept.id, [sold.sku])
    ]
    at_the_till = pos_client.get("/api/v1/products/", {"updated_since": since}).json()
    assert [(p["id"], p["variants"]) for p in at_the_till["results"]] == [
        (store_only.product_id, [])
    ]


def test_updated_since_shows_the_product_a_channels_last_variant_moved_away_from(web, web_client):
    """The price history outlives the variant's move: the product it left, sold in the
    channel until then, is listed with no variants."""
    left, joined = ProductFactory(), ProductFactory()
    variant = VariantFactory(product=left)
    ChannelPriceFactory(variant=variant, channel=web)
    since = timezone.now().isoformat()
    variant.product = joined
    variant.save()
    changed = web_client.get("/api/v1/products/", {"updated_since": since}).json()["results"]
    assert [(p["id"], [v["sku"] for v in p["variants"]]) for p in changed] == [
        (left.id, []),
        (joined.id, [variant.sku]),
    ]


def test_one_gtin_cannot_be_given_to_two_variants_by_padding_it_with_zeros():
    """4006381333931 (EAN-13) and 04006381333931 (the same GTIN as GTIN-14) are one
    barcode on one article: a second variant must not be able to hold it, and the refusal
    names the variant that has it."""
    VariantFactory(sku="A-1", barcode="4006381333931")
    twin = VariantFactory.build(sku="B-1", barcode="04006381333931", product=ProductFactory())
    with pytest.raises(ValidationError) as refused:
        twin.full_clean()
    assert refused.value.message_dict == {
        "barcode": ["Variant A-1 already has this GTIN (as 4006381333931)."]
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        twin.save()  # past the validation (a bulk write), the database refuses it


def test_the_scan_finds_a_gtin_sent_in_its_14_digit_form(pos, pos_client):
    """Scanners and GS1 DataBar/ITF-14 readers send a GTIN zero-padded to 14 digits."""
    variant = VariantFactory(barcode="4006381333931")
    ChannelPriceFactory(variant=variant, channel=pos)
    for scanned in ("04006381333931", "4006381333931"):
        found = pos_client.get("/api/v1/variants/", {"barcode": scanned}).json()["results"]
        assert [v["sku"] for v in found] == [variant.sku], scanned
        assert found[0]["barcode"] == "4006381333931"  # as the label spells it


def test_a_upc_a_label_scanned_as_ean_13_finds_its_variant(pos, pos_client):
    variant = VariantFactory(barcode="012345678905")
    ChannelPriceFactory(variant=variant, channel=pos)
    for scanned in ("0012345678905", "012345678905", "00012345678905"):
        found = pos_client.get("/api/v1/variants/", {"barcode": scanned}).json()["results"]
        assert [v["sku"] for v in found] == [variant.sku], scanned


@pytest.mark.parametrize(
    "scanned",
    [
        "12345678901",  # 11 digits, no UPC-A with its 0 back (12345678905 is, see below)
        "0012345678906",
        "abc",
        "4006381333931x",
        pytest.param("٤٠٠٦٣٨١٣٣٣٩٣١", id="arabic"),
    ],
)
def test_a_scan_that_is_no_gtin_finds_nothing(pos, pos_client, scanned):
    """A misread (a length no GTIN has, a wrong check digit, not digits) is an unknown
    barcode, 200 with nothing found, as before; a valid one beside it is still found."""
    variant = VariantFactory(barcode="012345678905")
    ChannelPriceFactory(variant=variant, channel=pos)
    response = pos_client.get("/api/v1/variants/", {"barcode": scanned})
    assert response.status_code == 200
    assert response.json()["results"] == []
    both = pos_client.get("/api/v1/variants/", {"barcode": f"{scanned},012345678905"})
    assert [v["sku"] for v in both.json()["results"]] == [variant.sku]


@pytest.mark.parametrize(
    ("barcode", "message"),
    [
        ("4006381333932", "check digit"),
        ("123456789", "8, 12, 13 or 14 digits"),
        ("1234567890", "8, 12, 13 or 14 digits"),
        ("12345678901", "8, 12, 13 or 14 digits"),  # 11 digits, no UPC-A with its 0 back
        pytest.param(
            "\uff14\uff10\uff10\uff16\uff13\uff18\uff11\uff13\uff13\uff13\uff19\uff13\uff11",
            "8, 12, 13 or 14 digits",
            id="full-width",
        ),
    ],
)
def test_a_barcode_that_is_no_gtin_is_refused(barcode, message):
    """A wrong check digit (a typo) or a length no GTIN has (9, 10, 11 digits): the till's
    scan of the real label would never find the variant."""
    variant = VariantFactory.build(sku="X-1", barcode=barcode, product=ProductFactory())
    with pytest.raises(ValidationError) as refused:
        variant.full_clean()
    assert message in " ".join(refused.value.message_dict["barcode"])


def test_a_upc_a_that_lost_its_leading_zero_is_taken_as_that_upc_a_as_the_sheet_does():
    """12345678905 is UPC-A 012345678905 through a spreadsheet that took the column for
    numbers: the model reads it as the catalog sheet does, the UPC-A (the number on the
    label, the one the scan sends), and a second variant cannot take it in any spelling."""
    variant = VariantFactory.build(sku="X-1", barcode="12345678905", product=ProductFactory())
    variant.full_clean()
    variant.save()
    variant.refresh_from_db()
    assert (variant.barcode, variant.gtin14) == ("012345678905", "00012345678905")
    for barcode in ("12345678905", "0012345678905"):
        twin = VariantFactory.build(sku="X-2", barcode=barcode, product=variant.product)
        with pytest.raises(ValidationError) as refused:
            twin.full_clean()
        assert refused.value.message_dict["barcode"] == [
            "Variant X-1 already has this GTIN (as 012345678905)."
        ]


def test_the_scan_that_found_a_legacy_row_by_its_11_digits_still_finds_it_after_an_edit(
    pos, pos_client
):
    """A barcode stored before barcodes had to be GTINs as 12345678905 (UPC-A 012345678905
    without its leading zero; its key the UPC-A's, migration 0006) is found by those 11
    digits. Renamed in the admin (full_clean + save, what its form runs) the barcode is
    re-spelt 012345678905: the same scan still finds it (it found nothing), as does the
    UPC-A's."""
    variant = VariantFactory(sku="LEGACY-UPC", barcode="12345678905")
    assert variant.gtin14 == "00012345678905"
    ChannelPriceFactory(variant=variant, channel=pos)

    def scan(value):
        answer = pos_client.get("/api/v1/variants/", {"barcode": value})
        assert answer.status_code == 200
        return [row["sku"] for row in answer.json()["results"]]

    assert scan("12345678905") == ["LEGACY-UPC"]
    variant.name = "Renamed"
    variant.full_clean()
    variant.save()
    assert Variant.objects.get(pk=variant.pk).barcode == "012345678905"
    for scanned in ("12345678905", "012345678905", "00012345678905"):
        assert scan(scanned) == ["LEGACY-UPC"], scanned


@pytest.mark.parametrize("barcode", ["96385074", "012345678905", "4006381333931", "14006381333938"])
def test_each_gtin_length_is_a_barcode_and_keeps_its_spelling(barcode):
    variant = VariantFactory.build(sku="X-1", barcode=barcode, product=ProductFactory())
    variant.full_clean()
    variant.save()
    variant.refresh_from_db()
    assert (variant.barcode, variant.gtin14) == (barcode, barcode.zfill(14))
    variant.barcode = None
    variant.save(update_fields=["barcode"])
    variant.refresh_from_db()
    assert variant.gtin14 is None


def test_the_migration_gives_stored_barcodes_their_gtin_and_lists_twins():
    """Rows saved before barcodes had to be GTINs: each valid one gets its 14-digit key (the
    scan finds it), one that is no GTIN keeps none, and two variants holding one GTIN in
    two lengths stop the migration with their SKUs, for staff to settle."""
    import importlib

    from django.apps import apps

    from catalog.models import Variant

    migration = importlib.import_module("catalog.migrations.0004_variant_gtin14")
    upc, legacy, none = (VariantFactory(barcode=b) for b in ("012345678905", None, None))
    Variant.objects.filter(pk=legacy.pk).update(barcode="1234567890")
    Variant.objects.update(gtin14=None)
    migration.fill_gtin14(apps, None)
    assert dict(Variant.objects.values_list("sku", "gtin14")) == {
        upc.sku: "00012345678905",
        legacy.sku: None,
        none.sku: None,
    }

    Variant.objects.filter(pk=none.pk).update(barcode="0012345678905", gtin14=None)
    Variant.objects.filter(pk=upc.pk).update(gtin14=None)
    with pytest.raises(RuntimeError, match=f"{upc.sku} \\(012345678905\\), {none.sku} "):
        migration.fill_gtin14(apps, None)


@pytest.mark.postgres
def test_the_migration_to_skus_in_any_case_lists_the_twins_it_finds():
    """Variants (or products) already spelt twice in two cases stop the migration with their
    spellings, before the constraint's IntegrityError would."""
    import importlib

    from django.apps import apps
    from django.db import connection

    from catalog.models import Variant
    from tests.concurrency import require_postgres

    require_postgres()
    migration = importlib.import_module("catalog.migrations.0005_sku_and_code_in_any_case")
    VariantFactory(sku="SKU-1", product=ProductFactory(code="PX"))
    migration.refuse_case_twins(apps, None)  # nothing to settle
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the rows' foreign keys, before DDL
    with connection.schema_editor() as editor:  # as the tables were before the constraints
        for model in (Variant, Product):
            editor.remove_constraint(model, model._meta.constraints[0])
    VariantFactory(sku="sku-1", product=ProductFactory(code="px"))
    VariantFactory(sku="Sku-1")
    with pytest.raises(RuntimeError) as refused:
        migration.refuse_case_twins(apps, None)
    assert str(refused.value).startswith(
        "1 SKU in more than one case: SKU-1, Sku-1, sku-1. "
        "1 product code in more than one case: PX, px. "
    )


def test_api_look_ups_by_sku_stay_exact(pos, pos_client):
    variant = VariantFactory(sku="SKU-1")
    ChannelPriceFactory(variant=variant, channel=pos)
    assert pos_client.get("/api/v1/variants/SKU-1/").status_code == 200
    assert pos_client.get("/api/v1/variants/sku-1/").status_code == 404
    assert pos_client.get("/api/v1/variants/", {"sku": "sku-1"}).json()["results"] == []


def test_updated_since_does_not_show_a_product_the_channel_never_sold_on(web, web_client):
    """A variant unpublished on the web, then moved to a store-only product (never priced
    on the web while the variant was on it): that product is not the web's to see."""
    sold_on, secret = ProductFactory(), ProductFactory(name="Secret launch")
    variant = VariantFactory(product=sold_on)
    price = ChannelPriceFactory(variant=variant, channel=web)
    price.published = False
    price.save()
    variant.product = secret
    variant.save()
    since = timezone.now().isoformat()
    secret.description = "Launch in May"
    secret.save()
    changed = web_client.get("/api/v1/products/", {"updated_since": since}).json()["results"]
    assert secret.id not in [p["id"] for p in changed], changed


def test_the_scan_still_finds_a_barcode_saved_before_barcodes_had_to_be_gtins(pos, pos_client):
    """Migration 0004 keeps a stored non-GTIN barcode (gtin14 NULL): the till scanning the
    label it was sold with still finds it, by the barcode as stored."""
    variant = VariantFactory(barcode="1234567890")  # 10 digits: accepted before 0004
    assert Variant.objects.get(pk=variant.pk).gtin14 is None
    ChannelPriceFactory(variant=variant, channel=pos)
    listed = pos_client.get("/api/v1/variants/", {"sku": variant.sku}).json()["results"]
    assert listed[0]["barcode"] == "1234567890"
    found = pos_client.get("/api/v1/variants/", {"barcode": "1234567890"}).json()["results"]
    assert [v["sku"] for v in found] == [variant.sku]


def test_updated_since_does_not_show_a_launch_staged_inactive_with_its_prices_set(web, web_client):
    """A launch is staged as an inactive product whose prices are entered (published) ahead
    of the day: the web never listed it. Each edit of the staged product must not put its
    name and description in the storefront's incremental feed."""
    staged = ProductFactory(name="Spring 2027 capsule", is_active=False)
    ChannelPriceFactory(variant=VariantFactory(product=staged), channel=web)
    assert web_client.get("/api/v1/products/").json()["results"] == []
    since = timezone.now().isoformat()
    staged.description = "Embargoed until March"
    staged.save()
    changed = web_client.get("/api/v1/products/", {"updated_since": since}).json()["results"]
    assert [p["name"] for p in changed] == [], changed


def test_updated_since_shows_the_take_down_of_a_product_listed_only_after_that_time(
    web, web_client
):
    """A storefront asks from a little before its last poll: a launch listed after that
    time (the storefront may have shown it) and taken down since comes back with no
    variants, though it was not listed at the time itself."""
    launch = ProductFactory(is_active=False)
    ChannelPriceFactory(variant=VariantFactory(product=launch), channel=web)
    since = timezone.now().isoformat()
    launch.is_active = True
    launch.save()
    launch.is_active = False
    launch.save()
    changed = web_client.get("/api/v1/products/", {"updated_since": since}).json()["results"]
    assert [(p["id"], p["variants"]) for p in changed] == [(launch.id, [])]


def test_updated_since_shows_no_product_whose_listing_facts_never_held_at_one_moment(
    web, web_client
):
    """Active with its price unpublished, then made inactive, then the price published: the
    product, its variant and a published price never held together, so it was never
    listed and its edits are not the web's to see."""
    product = ProductFactory()
    price = ChannelPriceFactory(variant=VariantFactory(product=product), channel=web)
    price.published = False
    price.save()
    since = timezone.now().isoformat()
    product.is_active = False
    product.save()
    price.published = True
    price.save()
    product.description = "Back in autumn"
    product.save()
    changed = web_client.get("/api/v1/products/", {"updated_since": since}).json()["results"]
    assert changed == []
