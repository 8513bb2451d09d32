import pytest
from rest_framework.test import APIClient

from omnichannel.services import api_client_forget
from orders.routing import routing_forget
from tests.factories import (
    ChannelFactory,
    ChannelLocationFactory,
    LocationFactory,
    make_api_client,
)


@pytest.fixture(autouse=True)
def _fresh_token_lookups():
    """Each test's database starts over, so does the process's token look-up cache (a
    deterministic demo token may name another row in the next test), and so does its ship
    routing's copy of the feeds."""
    api_client_forget()
    routing_forget()
    yield
    api_client_forget()
    routing_forget()


@pytest.fixture
def web():
    return ChannelFactory(code="web", name="Web shop", kind="web", currency="EUR")


@pytest.fixture
def pos():
    return ChannelFactory(code="pos", name="Stores", kind="pos", currency="EUR")


@pytest.fixture
def store(web, pos):
    """A store feeding both the web shop and the POS channel."""
    location = LocationFactory(code="lyon", name="Lyon store")
    ChannelLocationFactory(channel=web, location=location, priority=2)
    ChannelLocationFactory(channel=pos, location=location, priority=1)
    return location


@pytest.fixture
def api():
    """An unauthenticated DRF test client; see `as_client` to add a token."""
    return APIClient()


def as_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def web_client(web):
    _, token = make_api_client(web, name="storefront")
    return as_client(token)


@pytest.fixture
def pos_client(pos, store):
    _, token = make_api_client(pos, store, name="till-1")
    return as_client(token)
