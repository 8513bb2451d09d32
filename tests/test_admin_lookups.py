"""Admin list pages filter by what their filters, search and date drill-down send (and a
related row's key, the links from other pages), nothing else: Django runs any lookup on the
model's own fields the address names, which read what the page hides and 500ed on what the
database refuses.

The registry is walked, so a page registered later is covered without editing this test."""

import pytest
from django.contrib import admin
from django.urls import reverse

from inventory.models import WebhookSubscription
from omnichannel.models import ApiClient
from tests.factories import LocationFactory, VariantFactory, make_api_client, make_staff

pytestmark = pytest.mark.django_db


def _list_pages():
    return [
        (model, reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))
        for model in admin.site._registry
    ]


def _some_rows(web):
    """Rows enough for each page to show its filters (a location filter needs two)."""
    VariantFactory(sku="TEE")
    LocationFactory()
    make_api_client(web, name="storefront")
    WebhookSubscription.objects.create(channel=web, url="https://hooks.example/a")


def _refused(answer, page: str) -> bool:
    """Answered as a lookup the page cannot run (Django refuses some lookups itself: 400)."""
    return answer.status_code == 400 or (
        answer.status_code == 302 and answer["Location"] == page + "?e=1"
    )


def test_a_staff_member_who_only_views_webhooks_cannot_read_the_secret_by_filtering(client, web):
    """The admin hides the secret from staff who may only view subscriptions (with it anyone
    signs a fake availability push), but its list page accepted any lookup on the model's
    own fields: `?secret__startswith=` answered one row or none, 16 guesses per hex digit."""
    sub = WebhookSubscription.objects.create(channel=web, url="https://hooks.example/a")
    client.force_login(make_staff("viewer", "inventory.view_webhooksubscription"))
    page = client.get(f"/admin/inventory/webhooksubscription/{sub.pk}/change/")
    assert page.status_code == 200 and sub.secret not in page.content.decode()
    found = ""
    for _ in range(8):
        for digit in "0123456789abcdef":
            listed = client.get(
                "/admin/inventory/webhooksubscription/", {"secret__startswith": found + digit}
            )
            if listed.status_code == 200 and len(listed.context["cl"].result_list) == 1:
                found += digit
                break
        else:
            break
    assert found == "", f"read {found}... of the secret"
    page = "/admin/inventory/webhooksubscription/"
    assert _refused(client.get(page, {"secret": sub.secret}), page)
    assert _refused(client.get(page, {"secret__startswith": sub.secret[0]}), page)


def test_a_staff_member_who_views_api_clients_cannot_test_a_key_hash(client, web):
    make_api_client(web, name="storefront")
    held = ApiClient.objects.get(name="storefront")
    client.force_login(make_staff("viewer", "omnichannel.view_apiclient"))
    page = "/admin/omnichannel/apiclient/"
    assert client.get(page).status_code == 200
    assert _refused(client.get(page, {"key_hash": held.key_hash}), page)
    assert _refused(client.get(page, {"key_hash__startswith": held.key_hash[0]}), page)


def test_no_list_page_filters_by_a_field_it_has_no_filter_for(client):
    """No filter of Django's sends `__startswith`: every field of every page refuses it."""
    client.force_login(make_staff("root", superuser=True))
    accepted = []
    for model, page in _list_pages():
        for field in model._meta.concrete_fields:
            for lookup in (f"{field.name}__startswith", f"{field.attname}__regex"):
                if not _refused(client.get(page, {lookup: "a"}), page):
                    accepted.append(f"{page}?{lookup}=")
    assert not accepted


def test_every_filter_a_list_page_offers_still_lists(client, web, pos, store):
    """Each choice of each filter of each page (its link, as the page prints it) lists."""
    _some_rows(web)
    client.force_login(make_staff("root", superuser=True))
    refused = []
    for _, page in _list_pages():
        shown = client.get(page)
        assert shown.status_code == 200, page
        cl = shown.context["cl"]
        for spec in cl.filter_specs:
            for choice in spec.choices(cl):
                answer = client.get(page + choice["query_string"])
                if answer.status_code != 200:
                    refused.append(page + choice["query_string"])
    assert not refused


def test_a_page_lists_the_rows_of_one_related_row_by_its_key(client, web):
    """The links from a row's page to the list of its rows (a member's "All their orders"
    is ?member__id__exact=) are the only lookups a page takes besides its filters'."""
    hooks = [
        WebhookSubscription.objects.create(channel=web, url=f"https://hooks.example/{n}")
        for n in range(2)
    ]
    client.force_login(make_staff("root", superuser=True))
    page = "/admin/inventory/webhookdelivery/"
    assert client.get(page, {"subscription__id__exact": hooks[0].pk}).status_code == 200
    assert _refused(client.get(page, {"subscription__url__exact": hooks[0].url}), page)
    assert _refused(client.get(page, {"subscription__id__gt": 0}), page)


def test_the_export_takes_the_lists_filters_and_refuses_other_lookups(client):
    VariantFactory(sku="TEE", is_active=True)
    VariantFactory(sku="OLD", is_active=False)
    client.force_login(make_staff("root", superuser=True))
    page = "/admin/catalog/variant/export/"
    assert client.get(page, {"is_active__exact": "1"}).status_code == 200
    assert client.get(page, {"sku__startswith": "T"}).status_code == 400


@pytest.mark.parametrize(
    "page",
    [
        "/admin/orders/order/?number__regex=(",
        "/admin/customers/member/?email__iregex=[",
        "/admin/catalog/channelprice/?amount=1e999999",
        "/admin/orders/order/?total__gt=1e999999",
        "/admin/analytics/memberscore/?monetary=1e-999999",
    ],
)
def test_a_lookup_the_database_cannot_run_is_an_invalid_lookup_not_a_500(client, page):
    """A regex PostgreSQL cannot compile, a decimal past its column: Django let them through
    to the database, which refused them (500). They are no filter of their page."""
    client.raise_request_exception = False
    client.force_login(make_staff("root", superuser=True))
    answer = client.get(page)
    assert answer.status_code == 302, answer.status_code
    assert answer["Location"] == page.split("?")[0] + "?e=1"


# Values the database refuses or Python's dates cannot take, for a filter of any kind.
HOSTILE = ["(", "[", "1e999999", "1e-999999", "9" * 30, "0001-01-01", "9999-12-31 23:59:59"]


# A date filter given a bare date time reads it in TIME_ZONE, as Django's admin does, and
# Django warns that it was naive: the warning is the case under test, not a defect.
@pytest.mark.filterwarnings("ignore:DateTimeField .* received a naive datetime:RuntimeWarning")
@pytest.mark.parametrize("time_zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago"])
def test_every_filter_of_every_list_page_answers_any_value_with_a_page(
    client, settings, web, pos, store, time_zone
):
    """What a page still takes (its filters, drill-down and related-row links) given what
    no column holds answers a page or ?e=1, never a 500: a filter added later on a decimal
    or a text column is covered (the earliest and latest dates in the time zones furthest
    from UTC)."""
    settings.TIME_ZONE = time_zone
    _some_rows(web)
    client.raise_request_exception = False
    client.force_login(make_staff("root", superuser=True))
    for model, page in _list_pages():
        shown = client.get(page)
        assert shown.status_code == 200, page
        cl = shown.context["cl"]
        taken = {name for spec in cl.filter_specs for name in spec.expected_parameters()}
        if cl.date_hierarchy:
            taken |= {f"{cl.date_hierarchy}__{part}" for part in ("year", "month", "day")}
        taken |= {
            f"{field.name}__{field.target_field.attname}__exact"
            for field in model._meta.concrete_fields
            if field.many_to_one or field.one_to_one
        }
        for name in sorted(taken):
            for value in HOSTILE:
                # At the first 500, as the database has then aborted the test's transaction.
                answer = client.get(page, {name: value})
                assert answer.status_code in (200, 302), f"{page}?{name}={value}"
