"""Request rates per API client and per staff member, counted in Redis: 429 with Retry-After."""

import time

import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import cache, caches

from omnichannel.api.throttling import WindowRateThrottle
from tests.concurrency import run_in_threads
from tests.conftest import as_client
from tests.factories import make_api_client, make_staff

pytestmark = pytest.mark.django_db

RATE = 3
PATH = "/api/v1/channels/"


class Clock:
    """The throttle's clock, held 15 s into a minute so windows and Retry-After are exact."""

    def __init__(self) -> None:
        self.now = (time.time() // 60) * 60 + 15

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis_db():
    """The Redis database the cache writes to, read directly; throttle keys left by earlier
    runs (client ids start again at 1 in a new test database) are removed first."""
    if not django_settings.USING_REDIS:
        pytest.fail("needs Redis: CI has it; locally start redis-server")
    assert caches["default"].__class__.__name__ == "RedisCache"
    db = redis.Redis.from_url(django_settings.REDIS_URL)
    stale = list(db.scan_iter(match=cache.make_key("throttle_*")))
    if stale:
        db.delete(*stale)
    yield db
    db.close()


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(WindowRateThrottle, "timer", staticmethod(clock))
    return clock


@pytest.fixture
def low_rates(settings, redis_db, clock):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"client": f"{RATE}/min", "anon": "2/min"},
    }


def counter_key(ident: str, clock: Clock) -> str:
    return cache.make_key(f"throttle_client_{ident}_{int(clock.now // 60)}")


def test_the_request_over_the_rate_is_429_throttled_with_retry_after(low_rates, web):
    api = as_client(make_api_client(web)[1])
    assert [api.get(PATH).status_code for _ in range(RATE)] == [200] * RATE
    response = api.get(PATH)
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "throttled"
    assert body["detail"]
    assert set(body) == {"code", "detail"}
    assert response["Retry-After"] == "45"  # 15 s into the minute: the window ends in 45 s


def test_every_request_over_the_rate_is_refused_until_the_next_window(low_rates, clock, web):
    api = as_client(make_api_client(web)[1])
    for _ in range(RATE):
        api.get(PATH)
    clock.now += 44
    refused = api.get(PATH)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "1"
    clock.now += 1  # the next minute
    assert [api.get(PATH).status_code for _ in range(RATE + 1)] == [200] * RATE + [429]


def test_two_clients_and_a_staff_member_are_counted_separately(low_rates, web, pos, store):
    first = as_client(make_api_client(web, name="storefront")[1])
    second = as_client(make_api_client(pos, store, name="till")[1])
    for _ in range(RATE):
        first.get(PATH)
    assert first.get(PATH).status_code == 429
    assert [second.get(PATH).status_code for _ in range(RATE)] == [200] * RATE
    assert second.get(PATH).status_code == 429


def test_staff_are_counted_by_user_id(low_rates, client, web):
    exhausted = make_staff("alice", "omnichannel.view_channel")
    client.force_login(exhausted)
    for _ in range(RATE):
        assert client.get(PATH).status_code == 200
    assert client.get(PATH).status_code == 429
    client.force_login(exhausted)  # a new session is the same person
    assert client.get(PATH).status_code == 429
    client.force_login(make_staff("bob", "omnichannel.view_channel"))
    assert client.get(PATH).status_code == 200


def test_the_counter_is_a_key_in_redis_that_expires_with_its_window(
    low_rates, redis_db, clock, web
):
    api_client, token = make_api_client(web)
    api = as_client(token)
    api.get(PATH)
    api.get(PATH)
    key = counter_key(f"client:{api_client.pk}", clock)
    assert redis_db.get(key) == b"2"
    assert 0 < redis_db.ttl(key) <= 61
    api.get(PATH)
    api.get(PATH)  # refused, and counted: hammering does not reopen the window
    assert redis_db.get(key) == b"4"


def test_the_counter_survives_its_key_vanishing_mid_window(low_rates, redis_db, clock, web):
    """Redis restarted or the key evicted: counting starts again instead of failing."""
    api_client, token = make_api_client(web)
    api = as_client(token)
    api.get(PATH)
    redis_db.delete(counter_key(f"client:{api_client.pk}", clock))
    assert [api.get(PATH).status_code for _ in range(RATE + 1)] == [200] * RATE + [429]


def test_callers_without_credentials_share_the_anonymous_rate_by_address(low_rates, api):
    # The schema is the one API page open without credentials.
    assert api.get("/api/schema/?format=json").status_code == 200
    assert api.get("/api/schema/?format=json").status_code == 200
    response = api.get("/api/schema/?format=json")
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert response["Retry-After"] == "45"
    other_address = api.get("/api/schema/?format=json", REMOTE_ADDR="10.0.0.9")
    assert other_address.status_code == 200


def test_requests_without_credentials_to_the_api_are_401_not_counted(low_rates, api):
    for _ in range(5):
        assert api.get(PATH).status_code == 401


def test_the_schema_documents_the_429(client):
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    for path, method in [("/api/v1/orders/", "post"), ("/api/v1/products/", "get")]:
        refused = schema["paths"][path][method]["responses"]["429"]
        assert refused["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }
        assert "Retry-After" in refused["headers"]


def test_without_redis_the_local_memory_cache_counts_the_same(settings, clock, web):
    """`make run` without REDIS_URL: the local-memory cache, same behaviour in one process."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"client": f"{RATE}/min", "anon": "2/min"},
    }
    assert caches["default"].__class__.__name__ == "LocMemCache"
    api = as_client(make_api_client(web)[1])
    assert [api.get(PATH).status_code for _ in range(RATE + 1)] == [200] * RATE + [429]


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_of_one_client_never_exceed_the_rate(low_rates, web):
    """Twelve requests at the same instant from web workers' threads: exactly RATE pass, as
    the count is one atomic increment in Redis (a read-modify-write would let more through)."""
    token = make_api_client(web)[1]
    answers = run_in_threads(12, lambda i: as_client(token).get(PATH).status_code)
    assert sorted(answers) == [200] * RATE + [429] * (12 - RATE)


def test_with_the_cache_down_requests_pass_uncounted_and_it_is_logged(
    settings, clock, web, caplog, monkeypatch
):
    """Redis stopped: a rate is a guard, not a reason to fail a sale. Requests go through,
    a warning says the rate was not counted, and the process leaves the cache alone for a
    few seconds instead of paying a connection error on every request."""
    import omnichannel.api.throttling as throttling

    monkeypatch.setattr(throttling, "_cache_down_until", 0.0)
    settings.CACHES = {  # a port where nothing listens
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"client": f"{RATE}/min", "anon": "2/min"},
    }
    api = as_client(make_api_client(web)[1])
    with caplog.at_level("WARNING", logger="omnichannel.api.throttling"):
        assert [api.get(PATH).status_code for _ in range(RATE + 2)] == [200] * (RATE + 2)
    warnings = [r for r in caplog.records if "rate not counted" in r.getMessage()]
    assert len(warnings) == 1  # then paused, not retried on every request
    assert throttling._cache_down_until > time.monotonic()


def test_a_forged_forwarded_for_header_does_not_make_a_new_caller(low_rates, api):
    """With no proxy counted (NUM_PROXIES 0, the default), a caller is its socket's address:
    keyed on X-Forwarded-For, one address writing a new header each time was never limited."""
    answers = [
        api.get(
            "/api/schema/?format=json",
            REMOTE_ADDR="203.0.113.8",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
        ).status_code
        for n in range(4)
    ]
    assert answers == [200, 200, 429, 429]


def test_a_redis_that_hangs_costs_a_request_half_a_second_not_forever(
    settings, web, monkeypatch, hung_redis
):
    """A server that accepts the connection and never answers (a hung Redis): the cache
    gives up after its socket timeout and the throttle lets the request through."""
    import omnichannel.api.throttling as throttling

    monkeypatch.setattr(throttling, "_cache_down_until", 0.0)  # and back after the test
    settings.CACHES = {
        "default": {**django_settings.CACHES["default"], "LOCATION": f"{hung_redis.url}/0"}
    }
    assert django_settings.CACHES["default"]["OPTIONS"]["socket_timeout"] == 0.5
    _, token = make_api_client(web)
    started = time.monotonic()
    response = as_client(token).get(PATH)
    waited = time.monotonic() - started
    assert response.status_code == 200
    assert hung_redis.accepted and waited < 5
