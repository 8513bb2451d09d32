import contextlib
import dataclasses

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
from tests.inventory_helpers import assert_ledger_matches_levels


def _forget_availability_kicks() -> None:
    """The availability sync's debounce flag lives in Redis, and the pause after a broker
    failure in the process: a worker test's last sync, or a broker test, left them for up
    to 5 s, and a test run within that saw its sales queue no sync."""
    from redis.exceptions import RedisError

    from inventory import availability

    availability._kick_paused_until = 0.0
    client = availability._redis()
    if client is not None:
        with contextlib.suppress(RedisError, OSError):  # no Redis: the tests needing it say so
            client.delete(availability.SYNC_PENDING_KEY)


@pytest.fixture(autouse=True)
def _fresh_token_lookups():
    """Each test's database starts over, so does the process's token look-up cache (a
    deterministic demo token may name another row in the next test), and so does its ship
    routing's copy of the feeds, and what the availability sync remembers between sales."""
    api_client_forget()
    routing_forget()
    _forget_availability_kicks()
    yield
    api_client_forget()
    routing_forget()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.stash[_call_failed] = report.failed
    return report


_call_failed = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def _ledger_matches_levels(request):
    """After every test with a database, the ledger sums to every stock level: a level moved
    without its movement row fails the test that moved it, whatever that test asserts.

    It runs in this fixture's teardown, before the test's transaction is rolled back (or its
    tables flushed, with transaction=True): asking for pytest-django's database fixture here
    sets it up before this one, so it is torn down after. That holds for the django_db marker
    and for tests that ask for db or transactional_db by name (the fixture closure then holds
    _django_db_helper, which both depend on). pytest-django's own autouse fixtures take
    monkeypatch first, so a test's patches are undone only after this check: a test that
    breaks the database connection patches inside monkeypatch.context(). A test that builds
    levels without a ledger on purpose says so with @pytest.mark.ledger_unchecked(reason=...)."""
    unchecked = request.node.get_closest_marker("ledger_unchecked")
    if unchecked is not None and not unchecked.kwargs.get("reason"):
        pytest.fail("@pytest.mark.ledger_unchecked needs a reason=")
    has_database = (
        request.node.get_closest_marker("django_db") is not None
        or "_django_db_helper" in request.fixturenames
    )
    if unchecked is not None or not has_database:
        yield
        return
    request.getfixturevalue("_django_db_helper")
    yield
    if not request.node.stash.get(_call_failed, True):  # a failed test's data proves nothing
        assert_ledger_matches_levels()


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


@pytest.fixture
def hung_redis():
    """The address of a server that accepts connections and never answers (a hung Redis,
    a half-open connection through a firewall), as redis://host:port; `accepted` lists the
    connections it took."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list = []
    stop = threading.Event()

    def accept_and_say_nothing():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept_and_say_nothing, daemon=True).start()
    hung = HungRedis(f"redis://127.0.0.1:{listener.getsockname()[1]}", accepted)
    yield hung
    stop.set()
    for conn in accepted:  # EOF frees anything still reading
        conn.close()
    listener.close()


@dataclasses.dataclass
class HungRedis:
    url: str
    accepted: list
