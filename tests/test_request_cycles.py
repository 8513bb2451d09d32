"""omnichannel.middleware.ReleaseRequestCyclesMiddleware: what a request built is freed by
reference counting when it is answered, not left in cycles for the garbage collector."""

import gc
from collections import Counter

import pytest
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.test import RequestFactory

from inventory.services import StockLine, stock_receive
from tests.factories import ChannelPriceFactory, VariantFactory, make_api_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_collector():
    """The cyclic collector off, and what it would have found counted by hand. The handler
    keeps the test's database connection open, as Django's test client does."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    gc.collect()
    gc.disable()

    def found() -> Counter:
        """What the collector would free now, by type; then freed."""
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            kinds = Counter(type(o).__name__ for o in gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
        gc.collect()  # with nothing saving them now, they go
        return kinds

    try:
        yield found
    finally:
        gc.enable()
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def serve(handler, method, path, token, body=None):
    factory = RequestFactory()
    make = factory.post if method == "POST" else factory.get
    kwargs = {"HTTP_AUTHORIZATION": f"Token {token}"}
    if body is not None:
        kwargs.update(data=body, content_type="application/json")
    environ = make(path, **kwargs).environ
    statuses = []
    response = handler(environ, lambda status, headers, exc_info=None: statuses.append(status))
    content = b"".join(response)
    response.close()
    return statuses[0], content


@pytest.fixture
def shop(web, store):
    variant = VariantFactory(sku="TEE")
    ChannelPriceFactory(variant=variant, channel=web)
    stock_receive(lines=[StockLine(variant.pk, store.pk, 50)], reference="delivery")
    _, token = make_api_client(web, name="storefront")
    return token


def test_an_order_list_page_leaves_nothing_for_the_collector_a_placement_little(shop, no_collector):
    handler = WSGIHandler()
    body = '{"fulfillment": "ship", "lines": [{"sku": "TEE", "quantity": 1}]}'
    for _ in range(3):  # warm: first requests fill caches that live on
        serve(handler, "POST", "/api/v1/orders/", shop, body)
        serve(handler, "GET", "/api/v1/orders/", shop)
    no_collector()

    status, content = serve(handler, "GET", "/api/v1/orders/", shop)
    assert status.startswith("200") and b'"TEE"' in content
    assert no_collector() == Counter()

    # A placement: the request, its view and all they hold are freed; what stays for the
    # collector is the input serializer (DRF binds every field to its parent) and the order
    # with its lines, which name each other. Far fewer objects, none of the request's.
    status, _ = serve(handler, "POST", "/api/v1/orders/", shop, body)
    assert status.startswith("201")
    kinds = no_collector()
    assert not set(kinds) & {"WSGIRequest", "Request", "OrderViewSet", "Response", "QueryDict"}
    assert kinds["OrderInputSerializer"] == 1


def test_without_the_middleware_the_same_page_leaves_its_objects_in_cycles(
    shop, no_collector, settings
):
    """The measurement the middleware rests on: take it out and the page's lists and dicts
    wait for the collector again."""
    settings.MIDDLEWARE = [
        m
        for m in settings.MIDDLEWARE
        if m != "omnichannel.middleware.ReleaseRequestCyclesMiddleware"
    ]
    handler = WSGIHandler()
    for _ in range(3):
        serve(handler, "GET", "/api/v1/orders/", shop)
    no_collector()
    status, _ = serve(handler, "GET", "/api/v1/orders/", shop)
    assert status.startswith("200")
    kinds = no_collector()
    assert kinds["WSGIRequest"] == kinds["OrderViewSet"] == 1
    assert kinds["list"] > 50  # the page's lines, allocations and payments
