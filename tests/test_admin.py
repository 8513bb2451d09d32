"""Every admin page answers: superusers everywhere, merchandisers on their pages, others not.

The registry is walked, so a model registered later is covered without editing this test.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone
from simple_history.admin import SimpleHistoryAdmin

from catalog.models import ATTRIBUTES_MESSAGE
from inventory.services import StockLine, stock_receive
from inventory.transfers import TransferItem, transfer_request
from omnichannel.models import ApiClient, IdempotencyRecord, WorkerHeartbeat
from omnichannel.roles import MANAGER, MERCHANDISER
from tests.factories import (
    CategoryFactory,
    ChannelPriceFactory,
    LocationFactory,
    ProductFactory,
    VariantFactory,
    make_api_client,
    make_staff,
)
from tests.inventory_helpers import assert_ledger_matches_levels

pytestmark = pytest.mark.django_db

# Read-only pages whose rows only the system writes: they have no add form by design.
NO_ADD_FORM = {
    "inventory.stocklevel",
    "inventory.stockmovement",
    "inventory.transfer",
    "inventory.channelavailability",
    "inventory.webhookdelivery",
    "omnichannel.workerheartbeat",
    "orders.order",
    "orders.return",
    "customers.memberevent",
    "analytics.nightlyrun",
    "analytics.memberscore",
    "analytics.cohortretention",
    "axes.accessattempt",
    "axes.accesslog",
    "axes.accessfailurelog",
    "catalog.historicalchannelprice",
}


@pytest.fixture
def world(web, pos, store):
    """One object of every registered model."""
    from django.utils import timezone

    from inventory.models import WebhookDelivery, WebhookSubscription

    variant = VariantFactory()
    ChannelPriceFactory(variant=variant, channel=web)
    stock_receive(lines=[StockLine(variant.pk, store.pk, 5)], reference="d")
    from inventory.tasks import sync_channel_availability

    sync_channel_availability()
    transfer_request(
        from_location_id=store.pk,
        to_location_id=LocationFactory(code="paris").pk,
        items=[TransferItem(variant.pk, 1)],
    )
    make_api_client(web)
    WorkerHeartbeat.objects.create(hostname="w1", seen_at=timezone.now())
    subscription = WebhookSubscription.objects.create(channel=web, url="http://127.0.0.1:9/h")
    WebhookDelivery.objects.create(
        subscription=subscription, payload={}, next_attempt_at=timezone.now()
    )
    from decimal import Decimal

    from catalog.models import ChannelPrice
    from orders.services import LineRequest, order_place, order_return

    ChannelPrice.objects.create(variant=variant, channel=pos, amount=Decimal("5.00"))
    from customers.privacy import member_export
    from customers.services import Contact, member_upsert

    member, _ = member_upsert(contact=Contact(phone="+33612345678"), channel=pos)
    member_export(member_id=member.pk)
    from datetime import date

    from analytics.jobs import nightly_run

    sale = order_place(
        channel=pos,
        fulfillment="in_store",
        lines=[LineRequest(variant.sku, 2)],
        location=store,
        member=member,
    )
    # One of the two back: a sale brought back whole is no purchase to score.
    order_return(
        order_id=sale.pk, location=store, lines=[LineRequest(variant.sku, 1)], restock=True
    )
    nightly_run(run_date=date.today())
    IdempotencyRecord.objects.create(
        scope="client:1", key="k", method="POST", path="/", fingerprint="f", status_code=201
    )
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog

    seen = {"username": "root", "ip_address": "127.0.0.1", "user_agent": "test"}
    AccessAttempt.objects.create(**seen, failures_since_start=1)
    AccessFailureLog.objects.create(**seen)
    AccessLog.objects.create(**seen)


def pages():
    yield from admin.site._registry.items()


def test_every_admin_page_answers_for_a_superuser(client, world):
    client.force_login(make_staff("root", superuser=True))
    assert client.get("/admin/").status_code == 200
    checked = 0
    histories = 0
    for model, model_admin in pages():
        label = f"{model._meta.app_label}.{model._meta.model_name}"
        info = (model._meta.app_label, model._meta.model_name)
        changelist = client.get(reverse("admin:{}_{}_changelist".format(*info)))
        assert changelist.status_code == 200, label
        add = client.get(reverse("admin:{}_{}_add".format(*info)))
        assert add.status_code == (403 if label in NO_ADD_FORM else 200), label
        obj = model._default_manager.first()
        assert obj is not None, f"the fixture makes one {label}"
        change = client.get(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))
        assert change.status_code == 200, label
        checked += 1
        if isinstance(model_admin, SimpleHistoryAdmin):
            history = client.get(reverse("admin:{}_{}_history".format(*info), args=[obj.pk]))
            assert history.status_code == 200, label
            histories += 1
    assert checked >= 15
    assert histories == 4  # products, variants, prices, members


MERCHANDISER_PAGES = [
    "catalog.product",
    "catalog.variant",
    "catalog.channelprice",
    "catalog.category",
    "omnichannel.channel",
    "omnichannel.location",
    "inventory.stocklevel",
    "inventory.stockmovement",
    "inventory.transfer",
]


def _login(client, role):
    user = make_staff(role.lower())
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)


@pytest.mark.parametrize("label", MERCHANDISER_PAGES)
def test_a_merchandiser_opens_the_catalog_and_stock_pages(client, world, label):
    _login(client, MERCHANDISER)
    app_label, model_name = label.split(".")
    from django.apps import apps

    obj = apps.get_model(app_label, model_name)._default_manager.first()
    assert client.get(f"/admin/{app_label}/{model_name}/").status_code == 200
    assert client.get(f"/admin/{app_label}/{model_name}/{obj.pk}/change/").status_code == 200


def test_a_merchandiser_cannot_see_api_clients_and_a_manager_cannot_edit_prices(client, world):
    _login(client, MERCHANDISER)
    assert client.get("/admin/omnichannel/apiclient/").status_code == 403
    client.logout()
    _login(client, MANAGER)
    price = ChannelPriceFactory._meta.model.objects.first()
    assert client.get("/admin/catalog/channelprice/").status_code == 200
    response = client.post(f"/admin/catalog/channelprice/{price.pk}/change/", {"amount": "1.00"})
    assert response.status_code == 403


def test_staff_without_permissions_are_refused_and_others_sent_to_login(client, world):
    client.force_login(make_staff("nobody"))
    for label in MERCHANDISER_PAGES:
        app_label, model_name = label.split(".")
        assert client.get(f"/admin/{app_label}/{model_name}/").status_code == 403, label
    client.logout()
    from django.contrib.auth import get_user_model

    shopper = get_user_model().objects.create_user("shopper", password="pw-for-tests-123")
    client.force_login(shopper)
    response = client.get("/admin/catalog/product/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_product_search_by_barcode_finds_the_product(client, world):
    _login(client, MERCHANDISER)
    variant = VariantFactory(barcode="4006381333931", product__name="Findable shirt")
    for typed in ("4006381333931", "04006381333931"):  # as on the label, as a scanner pads it
        response = client.get("/admin/catalog/product/", {"q": typed})
        assert [p.pk for p in response.context["cl"].result_list] == [variant.product_id]


def test_creating_an_api_client_in_the_admin_shows_its_token_once(client, world, web):
    client.force_login(make_staff("root", superuser=True))
    response = client.post(
        "/admin/omnichannel/apiclient/add/",
        {"name": "Marketplace feed", "channel": web.pk, "location": ""},
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"] if "oc_" in str(m)]
    assert len(shown) == 1
    token = shown[0].rsplit(" ", 1)[-1]
    from tests.conftest import as_client

    assert as_client(token).get("/api/v1/channels/").status_code == 200
    assert ApiClient.objects.filter(name="Marketplace feed").count() == 1


def test_the_admin_gives_a_store_only_to_a_pos_client(client, web, pos, store):
    """A web client given a location was taken for a till; the form refuses it on the
    location field, and a till of the same store is made as before."""
    client.force_login(make_staff("root", superuser=True))
    refused = client.post(
        "/admin/omnichannel/apiclient/add/",
        {"name": "Storefront kiosk", "channel": web.pk, "location": store.pk},
    )
    assert refused.status_code == 200
    assert "Only a POS terminal stands in a store" in str(
        refused.context["adminform"].form.errors["location"]
    )
    assert not ApiClient.objects.exists()
    made = client.post(
        "/admin/omnichannel/apiclient/add/",
        {"name": "Lyon till", "channel": pos.pk, "location": store.pk},
    )
    assert made.status_code == 302
    assert ApiClient.objects.get(name="Lyon till").is_till
    # Nor a POS client of no store, which the command refuses too: it would act for all.
    storeless = client.post(
        "/admin/omnichannel/apiclient/add/", {"name": "Till of nowhere", "channel": pos.pk}
    )
    assert storeless.status_code == 200
    assert "A POS client is a till" in str(storeless.context["adminform"].form.errors["location"])
    assert not ApiClient.objects.filter(name="Till of nowhere").exists()


@pytest.mark.parametrize("role", ["Merchandiser", "Manager"])
def test_the_roles_see_what_an_order_and_a_transfer_hold(client, store, role):
    """The admin hides a table inside a page from staff without `view` on its model: the
    roles read orders and transfers, but their lines, allocations and payments were hidden,
    so a merchandiser could not see what a transfer held before shipping it."""
    from decimal import Decimal

    from django.contrib.auth.models import Group

    from inventory.services import StockLine, stock_receive
    from inventory.transfers import TransferItem, transfer_request
    from omnichannel.models import Channel
    from orders.services import LineRequest, PaymentRequest, order_place
    from tests.factories import ChannelPriceFactory, LocationFactory, VariantFactory, make_staff

    tee = VariantFactory(sku="TEE")
    pos = Channel.objects.get(code="pos")
    ChannelPriceFactory(variant=tee, channel=pos, amount=Decimal("10.00"))
    stock_receive(lines=[StockLine(tee.pk, store.pk, 5)], reference="delivery")
    sale = order_place(
        channel=pos,
        fulfillment="in_store",
        location=store,
        lines=[LineRequest("TEE", 1)],
        payments=[PaymentRequest("card", Decimal("10.00"))],
    )
    transfer = transfer_request(
        from_location_id=store.pk,
        to_location_id=LocationFactory(code="paris").pk,
        items=[TransferItem(tee.pk, 2)],
    )
    user = make_staff(f"a-{role.lower()}")
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)

    def tables(url):
        page = client.get(url)
        assert page.status_code == 200, url
        return {inline.opts.model.__name__ for inline in page.context["inline_admin_formsets"]}

    assert {"OrderLine", "Payment"} <= tables(f"/admin/orders/order/{sale.pk}/change/")
    assert "TransferLine" in tables(f"/admin/inventory/transfer/{transfer.pk}/change/")


def test_a_manager_reads_every_log_and_never_a_webhook_secret(client, web):
    """ "A manager reads everything": the member events, the webhook deliveries and the
    worker's heartbeat were 403. But not a subscription's secret, which signs availability
    pushes: only staff who may change subscriptions see it."""
    from django.contrib.auth.models import Group

    from inventory.models import WebhookSubscription
    from tests.factories import make_staff

    hook = WebhookSubscription.objects.create(channel=web, url="https://market.example/hook")
    manager = make_staff("boss")
    manager.groups.add(Group.objects.get(name="Manager"))
    client.force_login(manager)
    for page in (
        "customers/memberevent",
        "inventory/webhookdelivery",
        "omnichannel/workerheartbeat",
    ):
        assert client.get(f"/admin/{page}/").status_code == 200, page
    shown = client.get(f"/admin/inventory/webhooksubscription/{hook.pk}/change/")
    assert shown.status_code == 200 and hook.secret not in shown.content.decode()
    client.force_login(make_staff("root", superuser=True))
    assert (
        hook.secret
        in client.get(f"/admin/inventory/webhooksubscription/{hook.pk}/change/").content.decode()
    )


def test_the_nightly_runs_list_says_a_skipped_stage_was_skipped(client, pos, store):
    """A stage that could not run (CLV on too thin a history) records why, not rows and
    seconds: the list showed "clv: 0 rows in None s"."""
    from analytics.jobs import nightly_run
    from customers.models import Member
    from orders.services import LineRequest, order_place

    variant = VariantFactory(sku="TEE")
    ChannelPriceFactory(variant=variant, channel=pos)
    stock_receive(lines=[StockLine(variant.pk, store.pk, 5)], reference="d")
    order_place(
        channel=pos,
        fulfillment="in_store",
        location=store,
        member=Member.objects.create(email="ann@example.com"),
        lines=[LineRequest("TEE", 1)],
    )
    run = nightly_run(run_date=timezone.localdate())
    assert "skipped" in run.stages["clv"]
    client.force_login(make_staff("root", superuser=True))
    page = client.get("/admin/analytics/nightlyrun/").content.decode()
    rfm = run.stages["rfm"]
    assert f"rfm: 1 rows in {rfm['seconds']} s" in page
    assert "clv: skipped" in page and "None s" not in page


# --- catalog edits and what integrators sync on (`updated_since`) ------------------------


def _long_ago(*products):
    """Products last changed two days ago; the time, to compare `updated_at` with."""
    from catalog.models import Product

    then = timezone.now() - timedelta(days=2)
    Product.objects.filter(pk__in=[p.pk for p in products]).update(updated_at=then)
    return then


def test_a_variant_moved_to_another_product_changes_the_one_it_left(client):
    """The product a variant leaves lost it: it shows in `updated_since`, as the one it
    joins does."""
    from tests.test_change_history import admin_form_data

    _login(client, MERCHANDISER)
    left, joined = ProductFactory(), ProductFactory()
    variant = VariantFactory(product=left)
    then = _long_ago(left, joined)
    data = admin_form_data(client.get(f"/admin/catalog/variant/{variant.pk}/change/"))
    data["product"] = joined.pk
    assert client.post(f"/admin/catalog/variant/{variant.pk}/change/", data).status_code == 302
    left.refresh_from_db()
    joined.refresh_from_db()
    assert left.updated_at > then and joined.updated_at > then


@pytest.mark.parametrize("model", ["channelprice", "variant"])
def test_deleting_selected_prices_or_variants_changes_their_products(client, web, model):
    """The list's "delete selected" deletes a queryset, which skips the model's delete that
    bumps the product: a price gone from the channel was invisible to `updated_since`."""
    _login(client, MERCHANDISER)
    changed, untouched = ProductFactory(), ProductFactory()
    doomed = ChannelPriceFactory(variant=VariantFactory(product=changed), channel=web)
    ChannelPriceFactory(variant=VariantFactory(product=changed), channel=web)
    ChannelPriceFactory(variant=VariantFactory(product=untouched), channel=web)
    then = _long_ago(changed, untouched)
    row = doomed if model == "channelprice" else doomed.variant
    response = client.post(
        f"/admin/catalog/{model}/",
        {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not type(row).objects.filter(pk=row.pk).exists()
    changed.refresh_from_db()
    untouched.refresh_from_db()
    assert changed.updated_at > then
    assert untouched.updated_at == then


def test_a_renamed_or_moved_category_changes_the_products_in_and_below_it(
    client, django_capture_on_commit_callbacks
):
    """A product shows its category's slug and name, and `?category=` takes in the
    subcategories: renaming a category or moving it in the tree changes its products and
    those of its subcategories for `updated_since`; an edit of nothing changes none."""
    from catalog.models import Product

    _login(client, MERCHANDISER)
    clothing = CategoryFactory(slug="clothing", name="Clothing")
    shirts = CategoryFactory(slug="shirts", name="Shirts", parent=clothing)
    tees = CategoryFactory(slug="tees", name="Tees", parent=shirts)
    mugs = CategoryFactory(slug="mugs", name="Mugs")
    shirt, tee, mug = (ProductFactory(category=c) for c in (shirts, tees, mugs))

    def edit(category, **changes):
        then = _long_ago(shirt, tee, mug)
        data = {"name": category.name, "slug": category.slug, "parent": category.parent_id or ""}
        data.update(changes)
        response = client.post(f"/admin/catalog/category/{category.pk}/change/", data)
        assert response.status_code == 302
        rows = Product.objects.filter(updated_at__gt=then)
        return set(rows.values_list("pk", flat=True))

    with django_capture_on_commit_callbacks(execute=True):  # the search refresh
        assert edit(shirts, name="Chemises") == {shirt.pk, tee.pk}
    shirts.refresh_from_db()
    assert edit(shirts, slug="chemises") == {shirt.pk, tee.pk}
    shirts.refresh_from_db()
    assert edit(tees, parent=mugs.pk) == {tee.pk}
    assert edit(mugs) == set()
    shirt.refresh_from_db()
    assert "chemises" in shirt.search_text  # the name is searchable text


@pytest.mark.parametrize("attributes", ['"red"', '["S", "M"]', "3"])
def test_variant_attributes_must_be_an_object(client, attributes):
    """The API shows attributes as an object and the search indexes their values: the admin
    refuses other JSON (the search refresh crashed on it), with the CSV sheet's message."""
    from tests.test_change_history import admin_form_data

    _login(client, MERCHANDISER)
    variant = VariantFactory(attributes={"size": "M"})
    data = admin_form_data(client.get(f"/admin/catalog/variant/{variant.pk}/change/"))
    data["attributes"] = attributes
    response = client.post(f"/admin/catalog/variant/{variant.pk}/change/", data)
    assert response.status_code == 200  # the form again, with the error
    assert response.context["adminform"].form.errors["attributes"] == [ATTRIBUTES_MESSAGE]
    variant.refresh_from_db()
    assert variant.attributes == {"size": "M"}


@pytest.mark.parametrize("attributes", ["", "null"])
def test_an_emptied_attributes_box_saves_no_attributes(client, attributes):
    """Nothing in the box is "no attributes" ({}), as an empty CSV cell is: the column
    cannot hold NULL, and saving it was a 500."""
    from tests.test_change_history import admin_form_data

    _login(client, MERCHANDISER)
    variant = VariantFactory(attributes={"size": "M"})
    data = admin_form_data(client.get(f"/admin/catalog/variant/{variant.pk}/change/"))
    data["attributes"] = attributes
    response = client.post(f"/admin/catalog/variant/{variant.pk}/change/", data)
    assert response.status_code == 302
    variant.refresh_from_db()
    assert variant.attributes == {}


def test_a_prices_variant_and_channel_are_fixed_once_it_exists(client, web, pos, web_client):
    """A merchandiser could re-point a price at another variant on its change form (or at
    another channel on its variant's page): the product it left was not dated for
    `updated_since`, and the row's earlier history read as the old variant's price. Both
    are shown but not editable on an existing price; a new one still picks them."""
    from tests.test_change_history import admin_form_data

    _login(client, MERCHANDISER)
    left = ProductFactory(code="LEFT")
    a1 = VariantFactory(product=left, sku="A1")
    price = ChannelPriceFactory(variant=a1, channel=web, amount=Decimal("10.00"))
    b1 = VariantFactory(product=ProductFactory(code="OTHER"), sku="B1")
    ProductFactory._meta.model.objects.update(updated_at=timezone.now() - timedelta(days=1))
    since = timezone.now()

    url = f"/admin/catalog/channelprice/{price.pk}/change/"
    page = client.get(url)
    form = page.context["adminform"].form
    assert form.fields["variant"].disabled and form.fields["channel"].disabled
    data = admin_form_data(page)
    data.update(variant=b1.pk, channel=pos.pk, amount="12.00")
    assert client.post(url, data).status_code == 302
    price.refresh_from_db()
    assert (price.variant, price.channel, price.amount) == (a1, web, Decimal("12.00"))
    assert list(price.history.values_list("variant_id", "channel_id")) == [(a1.pk, web.pk)] * 2

    variant_url = f"/admin/catalog/variant/{a1.pk}/change/"
    data = admin_form_data(client.get(variant_url))
    [channel_field] = [key for key in data if key.endswith("-channel")]
    data[channel_field] = pos.pk
    assert client.post(variant_url, data).status_code == 302
    price.refresh_from_db()
    assert price.channel == web

    changed = web_client.get("/api/v1/products/", {"updated_since": since.isoformat()})
    assert [p["code"] for p in changed.json()["results"]] == ["LEFT"]
    add_form = client.get("/admin/catalog/channelprice/add/").context["adminform"].form
    assert not add_form.fields["variant"].disabled and not add_form.fields["channel"].disabled


def _post_change_page(client, url, meanwhile=None, **changes):
    """Post a change page as the browser sends it: its form's values as the page read them
    (and, for a field that sends it, what the page showed), each inline table's management
    form, and the given changes (a box unticked: None). `meanwhile` runs between the page's
    opening and its post."""
    from django import forms

    page = client.get(url)
    assert page.status_code == 200, url
    form = page.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if field.show_hidden_initial:
            data[form[name].html_initial_name] = value
        if isinstance(field, forms.BooleanField):
            value = "on" if value else None
        if value is not None:
            data[name] = value
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            data[f"{management.prefix}-{name}"] = management[name].value()
    data.update(changes)
    if meanwhile is not None:
        meanwhile()
    return client.post(url, {name: value for name, value in data.items() if value is not None})


@pytest.fixture
def meanwhile(monkeypatch):
    """Run a service between a change page's read of its row and its save: what another
    terminal or staff member commits while the page is being posted."""

    def between_read_and_save(model_admin_class, service):
        original = model_admin_class.save_form

        def save_form(self, request, form, change):
            service()
            return original(self, request, form, change)

        monkeypatch.setattr(model_admin_class, "save_form", save_form)

    return between_read_and_save


def test_a_note_saved_on_a_transfer_keeps_a_ship_made_meanwhile(client, store, meanwhile):
    """The note's save wrote back every column the page had read: a transfer shipped
    meanwhile was `requested` again with its units gone, and could be cancelled, releasing
    units another order had reserved (found by review with threads on PostgreSQL)."""
    from inventory.admin import TransferAdmin
    from inventory.models import StockLevel, Transfer
    from inventory.services import stock_reserve
    from inventory.transfers import transfer_ship

    tee = VariantFactory(sku="TEE")
    paris = LocationFactory(code="paris")
    stock_receive(lines=[StockLine(tee.pk, store.pk, 10)], reference="delivery")
    stock_reserve(lines=[StockLine(tee.pk, store.pk, 3)], reference="order:1")
    transfer = transfer_request(
        from_location_id=store.pk, to_location_id=paris.pk, items=[TransferItem(tee.pk, 2)]
    )
    client.force_login(make_staff("admin", superuser=True))
    meanwhile(TransferAdmin, lambda: transfer_ship(transfer_id=transfer.pk))

    url = f"/admin/inventory/transfer/{transfer.pk}/change/"
    assert _post_change_page(client, url, note="driver is late").status_code == 302

    transfer = Transfer.objects.get(pk=transfer.pk)
    assert (transfer.note, transfer.status) == ("driver is late", "shipped")
    assert transfer.shipped_at is not None
    shelf = StockLevel.objects.get(variant=tee, location=store)
    assert (shelf.on_hand, shelf.reserved) == (8, 3)  # the open order's 3 still held
    assert_ledger_matches_levels()
    cancel = client.post(
        "/admin/inventory/transfer/",
        {"action": "cancel", "_selected_action": [transfer.pk]},
        follow=True,
    )
    assert cancel.status_code == 200
    assert Transfer.objects.get(pk=transfer.pk).status == "shipped"  # too late to cancel
    assert StockLevel.objects.get(pk=shelf.pk).reserved == 3


def test_an_order_flagged_in_the_admin_keeps_a_handover_made_meanwhile(
    client, web, store, meanwhile
):
    from orders.admin import OrderAdmin
    from orders.models import Order
    from orders.services import LineRequest, order_place, order_transition

    tee = VariantFactory(sku="TEE")
    ChannelPriceFactory(variant=tee, channel=web, amount=Decimal("10.00"))
    stock_receive(lines=[StockLine(tee.pk, store.pk, 5)], reference="delivery")
    order = order_place(
        channel=web, fulfillment="pickup", pickup_location=store, lines=[LineRequest("TEE", 1)]
    )
    before = Order.objects.get(pk=order.pk).updated_at
    client.force_login(make_staff("admin", superuser=True))
    meanwhile(OrderAdmin, lambda: order_transition(order_id=order.pk, action="ready_for_pickup"))

    url = f"/admin/orders/order/{order.pk}/change/"
    assert _post_change_page(client, url, needs_review="on").status_code == 302

    order = Order.objects.get(pk=order.pk)
    assert (order.needs_review, order.status) == (True, "ready_for_pickup")
    assert order.updated_at > before  # the flag's change is dated, as any change is


def test_a_save_that_left_the_flag_alone_keeps_it_as_another_cleared_it(client, web, store):
    """The page opened with needs_review ticked; another staff member marked the order
    reviewed; this one saved the page without touching the box. The form compared the box
    with the row as read at the save, not as the page had shown it, and ticked it again."""
    from orders.models import Order
    from orders.services import LineRequest, order_place, orders_mark_reviewed

    tee = VariantFactory(sku="TEE")
    ChannelPriceFactory(variant=tee, channel=web, amount=Decimal("10.00"))
    stock_receive(lines=[StockLine(tee.pk, store.pk, 5)], reference="delivery")
    order = order_place(
        channel=web, fulfillment="pickup", pickup_location=store, lines=[LineRequest("TEE", 1)]
    )
    Order.objects.filter(pk=order.pk).update(needs_review=True)
    client.force_login(make_staff("admin", superuser=True))

    url = f"/admin/orders/order/{order.pk}/change/"
    saved = _post_change_page(
        client, url, meanwhile=lambda: orders_mark_reviewed(order_ids=[order.pk])
    )
    assert saved.status_code == 302
    assert Order.objects.get(pk=order.pk).needs_review is False
    # and a box the staff member did untick is written
    Order.objects.filter(pk=order.pk).update(needs_review=True)
    assert _post_change_page(client, url, needs_review=None).status_code == 302
    assert Order.objects.get(pk=order.pk).needs_review is False


def test_renaming_an_api_client_keeps_a_revocation_made_meanwhile(client, web, meanwhile):
    from omnichannel.admin import ApiClientAdmin
    from omnichannel.services import api_client_revoke

    storefront, token = make_api_client(web, name="storefront")
    client.force_login(make_staff("admin", superuser=True))
    meanwhile(ApiClientAdmin, lambda: api_client_revoke(client_id=storefront.pk))

    url = f"/admin/omnichannel/apiclient/{storefront.pk}/change/"
    assert _post_change_page(client, url, name="Storefront (EU)").status_code == 302

    storefront = ApiClient.objects.get(pk=storefront.pk)
    assert storefront.name == "Storefront (EU)"
    assert storefront.revoked_at is not None  # the token stays dead
    from tests.conftest import as_client

    assert as_client(token).get("/api/v1/products/").status_code == 401


def test_a_change_page_saved_unchanged_writes_nothing(client, store, meanwhile):
    from inventory.admin import TransferAdmin
    from inventory.models import Transfer
    from inventory.transfers import transfer_ship

    tee = VariantFactory(sku="TEE")
    stock_receive(lines=[StockLine(tee.pk, store.pk, 4)], reference="delivery")
    transfer = transfer_request(
        from_location_id=store.pk,
        to_location_id=LocationFactory(code="paris").pk,
        items=[TransferItem(tee.pk, 1)],
    )
    client.force_login(make_staff("admin", superuser=True))
    meanwhile(TransferAdmin, lambda: transfer_ship(transfer_id=transfer.pk))
    url = f"/admin/inventory/transfer/{transfer.pk}/change/"
    assert _post_change_page(client, url).status_code == 302
    assert Transfer.objects.get(pk=transfer.pk).status == "shipped"


def test_a_phone_search_of_members_keeps_the_list_filters(client, web, pos):
    """A phone typed any way finds the member's E.164 number, but it was added to the list
    whatever the filters said: under tier=gold a basic member was listed (and selected with
    the page's members for an action, an erasure included)."""
    from customers.models import Member
    from customers.services import member_seen

    basic = Member.objects.create(phone="+33612345678", tier="basic")
    member_seen(member=basic, channel=pos)
    Member.objects.create(email="gold@example.com", tier="gold")
    client.force_login(make_staff("care", "customers.view_member"))

    def listed(**params):
        page = client.get("/admin/customers/member/", params)
        assert page.status_code == 200
        return [m.pk for m in page.context["cl"].result_list]

    assert listed(tier__exact="gold", q="06 12 34 56 78") == []
    assert listed(tier__exact="basic", q="06 12 34 56 78") == [basic.pk]
    assert listed(q="06 12 34 56 78") == [basic.pk]
    assert listed(seen_in__channel__id__exact=web.pk, q="06 12 34 56 78") == []
    assert listed(seen_in__channel__id__exact=pos.pk, q="06 12 34 56 78") == [basic.pk]


def test_an_email_search_of_members_finds_the_domain_however_it_is_typed(client):
    """Stored in one spelling (the domain in IDNA A-labels), a member was not found by their
    email typed with its domain in Unicode; nor by an email kept from a merge."""
    from customers.models import Member, MemberAlias

    jo = Member.objects.create(email="jo@xn--exmple-qta.com", tier="basic")
    MemberAlias.objects.create(member=jo, kind="email", value="jo@xn--trs-7la.fr")
    Member.objects.create(email="ann@example.com")
    client.force_login(make_staff("care", "customers.view_member"))
    for typed in ("Jo@Exámple.com", "jo@xn--exmple-qta.com", "jo@très.fr"):
        page = client.get("/admin/customers/member/", {"q": typed})
        assert [m.pk for m in page.context["cl"].result_list] == [jo.pk], typed
    page = client.get("/admin/customers/member/", {"q": "jo@exámple.com", "tier__exact": "gold"})
    assert list(page.context["cl"].result_list) == []


def _staff_with(*codenames):
    from django.contrib.auth.models import Permission

    user = make_staff("keeper")
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def test_the_admin_gives_a_till_a_new_token_shown_once_and_the_old_one_stops(client, pos, store):
    from django.contrib.admin.models import LogEntry

    from tests.conftest import as_client

    till, old_token = make_api_client(pos, store, name="Lyon till")
    client.force_login(_staff_with("view_apiclient", "change_apiclient"))
    page = client.get(f"/admin/omnichannel/apiclient/{till.pk}/change/")
    assert "Give the selected clients new tokens" in page.content.decode()  # the help says how
    assert "rotate_token" in client.get("/admin/omnichannel/apiclient/").content.decode()
    response = client.post(
        "/admin/omnichannel/apiclient/",
        {"action": "rotate_token", "_selected_action": [till.pk]},
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"] if "oc_" in str(m)]
    assert len(shown) == 1
    new_token = shown[0].rsplit(" ", 1)[-1]
    assert as_client(new_token).get("/api/v1/channels/").status_code == 200
    assert as_client(old_token).get("/api/v1/channels/").status_code == 401
    assert ApiClient.objects.get().pk == till.pk  # the same client, its sales its own
    entry = LogEntry.objects.get(object_id=str(till.pk))
    assert entry.get_change_message() == "Gave a new token; the old one is refused."


def test_giving_a_new_token_needs_the_change_permission(client, pos, store):
    from tests.conftest import as_client

    till, token = make_api_client(pos, store, name="Lyon till")
    before = ApiClient.objects.get().key_hash
    client.force_login(_staff_with("view_apiclient"))
    assert "rotate_token" not in client.get("/admin/omnichannel/apiclient/").content.decode()
    response = client.post(
        "/admin/omnichannel/apiclient/",
        {"action": "rotate_token", "_selected_action": [till.pk]},
        follow=True,
    )
    assert not [m for m in response.context["messages"] if "oc_" in str(m)]
    assert ApiClient.objects.get().key_hash == before
    assert as_client(token).get("/api/v1/channels/").status_code == 200


@pytest.mark.parametrize(
    ("barcode", "error"),
    [
        ("04006381333931", "Variant A-1 already has this GTIN (as 4006381333931)."),
        ("4006381333932", "Not a GTIN: the last digit is not the check digit"),
        ("1234567890", "A GTIN has 8, 12, 13 or 14 digits"),
    ],
)
def test_the_variant_page_refuses_a_barcode_that_is_no_gtin_or_another_variants(
    client, barcode, error
):
    from tests.test_change_history import admin_form_data

    _login(client, MERCHANDISER)
    VariantFactory(sku="A-1", barcode="4006381333931")
    variant = VariantFactory(sku="B-1", barcode="012345678905")
    url = f"/admin/catalog/variant/{variant.pk}/change/"
    data = admin_form_data(client.get(url))
    data["barcode"] = barcode
    response = client.post(url, data)
    assert response.status_code == 200  # the form again, with the error
    [shown] = response.context["adminform"].form.errors["barcode"]
    assert shown.startswith(error)
    variant.refresh_from_db()
    assert variant.barcode == "012345678905"


def test_the_variant_page_takes_a_upc_a_that_lost_its_leading_zero_as_that_upc_a(client):
    """12345678905 (UPC-A 012345678905 through a spreadsheet) is read as the catalog sheet
    reads it: the UPC-A, the number on the label, which the till's scan then finds."""
    from tests.test_change_history import admin_form_data

    _login(client, MERCHANDISER)
    variant = VariantFactory(sku="B-1", barcode="4006381333931")
    url = f"/admin/catalog/variant/{variant.pk}/change/"
    data = admin_form_data(client.get(url))
    data["barcode"] = "12345678905"
    assert client.post(url, data).status_code == 302
    variant.refresh_from_db()
    assert (variant.barcode, variant.gtin14) == ("012345678905", "00012345678905")


@pytest.mark.parametrize("second_barcode", ["0012345678905", "12345678905"])
def test_two_rows_of_a_product_page_giving_one_gtin_in_two_lengths_are_refused(
    client, second_barcode
):
    """Each row is checked against the database; the two rows of one page against each
    other too (the second was an IntegrityError, a 500), also when one lost its leading
    zero in a spreadsheet."""
    from tests.test_change_history import admin_form_data

    _login(client, MERCHANDISER)
    product = ProductFactory()
    first, second = VariantFactory(product=product), VariantFactory(product=product)
    url = f"/admin/catalog/product/{product.pk}/change/"
    data = admin_form_data(client.get(url))
    rows = {data[key]: key.removesuffix("-sku") for key in data if key.endswith("-sku")}
    data[f"{rows[first.sku]}-barcode"] = "012345678905"
    data[f"{rows[second.sku]}-barcode"] = second_barcode
    response = client.post(url, data)
    assert response.status_code == 200
    errors = [form.errors for form in response.context["inline_admin_formsets"][0].formset]
    assert {"barcode": [f"The row of {first.sku} has this GTIN too."]} in errors
    assert set(product.variants.values_list("barcode", flat=True)) == {
        first.barcode,
        second.barcode,
    }


def test_the_variant_and_product_pages_refuse_a_sku_or_code_another_has_in_another_case(
    client,
):
    from tests.test_change_history import admin_form_data

    _login(client, MERCHANDISER)
    VariantFactory(sku="SKU-1", product=ProductFactory(code="PX"))
    variant = VariantFactory(sku="B-1", product=ProductFactory(code="PB"))
    for url, field, value, error in (
        (
            f"/admin/catalog/variant/{variant.pk}/change/",
            "sku",
            "sku-1",
            "Variant SKU-1 has this SKU: SKUs are the same in upper and lower case.",
        ),
        (
            f"/admin/catalog/product/{variant.product_id}/change/",
            "code",
            "px",
            "Product PX has this code: codes are the same in upper and lower case.",
        ),
    ):
        data = admin_form_data(client.get(url))
        data[field] = value
        response = client.post(url, data)
        assert response.status_code == 200, url  # the form again, with the error
        assert response.context["adminform"].form.errors == {field: [error]}
    variant.refresh_from_db()
    assert (variant.sku, variant.product.code) == ("B-1", "PB")

    url = f"/admin/catalog/variant/{variant.pk}/change/"
    data = admin_form_data(client.get(url))
    data["sku"] = "b-1"  # its own SKU in another case: a rename
    assert client.post(url, data).status_code == 302
    variant.refresh_from_db()
    assert variant.sku == "b-1"


def test_two_rows_of_a_product_page_giving_one_sku_in_two_cases_are_refused(client):
    from tests.test_change_history import admin_form_data

    _login(client, MERCHANDISER)
    product = ProductFactory()
    url = f"/admin/catalog/product/{product.pk}/change/"
    data = admin_form_data(client.get(url))
    prefix = next(key for key in data if key.endswith("-TOTAL_FORMS")).removesuffix("-TOTAL_FORMS")
    data[f"{prefix}-TOTAL_FORMS"] = 2
    for n, sku in enumerate(["NEW-1", "new-1"]):
        data.update({f"{prefix}-{n}-sku": sku, f"{prefix}-{n}-attributes": "{}"})
        data[f"{prefix}-{n}-is_active"] = "on"
    response = client.post(url, data)
    assert response.status_code == 200
    errors = [form.errors for form in response.context["inline_admin_formsets"][0].formset]
    assert errors == [{}, {"sku": ["The row of NEW-1 has this SKU too."]}]
    assert not product.variants.exists()
