"""Request rates per caller, counted in the shared cache (Redis when REDIS_URL is set).

Each caller has one counter per window (a minute by default): an atomic increment of a key
that expires with its window. Every web worker counts against the same number, and a request
costs the same whatever the rate. DRF's SimpleRateThrottle instead reads, trims and writes back
a list of timestamps on every request: at thousands of requests a minute that list is large,
and concurrent workers overwrite each other's writes, so the limit would leak.

The rates are read at request time from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (a scope
with no rate, or a rate of None, is not throttled).
"""

import logging
import time

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from ..auth import api_client_of, client_ip_address

log = logging.getLogger(__name__)

# When the cache (Redis) is down, requests are let through rather than refused: the rate is a
# guard, not something a sale may fail on (tests/test_faults.py places orders with Redis
# stopped). For a few seconds after a failure this process does not try the cache again.
PAUSE_AFTER_FAILURE = 5.0
_cache_down_until = 0.0


def _redis_client(cache: RedisCache):
    """The cache's Redis client for writes, kept: Django's backend builds a new one (cheap but
    not free: half a millisecond in a placement's profile) on every call. Caches are per
    thread in Django, so is this client; it shares the backend's connection pool."""
    client = getattr(cache, "_throttle_client", None)
    if client is None:
        client = cache._throttle_client = cache._cache.get_client(write=True)
    return client


class WindowRateThrottle(SimpleRateThrottle):
    @property
    def cache(self):
        # DRF's `cache` is django.core.cache.cache, a proxy: the backend itself is needed to
        # see whether it is Redis.
        return caches["default"]

    def get_rate(self) -> str | None:
        # DRF binds its rates when the module is imported; read them per request instead.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        ident_key = self.get_cache_key(request, view)
        if ident_key is None:
            return True
        global _cache_down_until
        if time.monotonic() < _cache_down_until:
            return True
        now = self.timer()
        window = int(now // self.duration)
        key = f"{ident_key}_{window}"
        try:
            count = self._count(key)
        except (RedisError, OSError) as exc:
            _cache_down_until = time.monotonic() + PAUSE_AFTER_FAILURE
            log.warning("request rate not counted, the cache is unavailable: %s", exc)
            return True
        self.retry_after = (window + 1) * self.duration - now
        return count <= self.num_requests

    def _count(self, key: str) -> int:
        if isinstance(self.cache, RedisCache):
            # One round trip: open the window's counter if it is not there (SET NX with its
            # expiry), then count. Django's cache.incr asks EXISTS first: two round trips.
            cache = self.cache
            name = cache.make_and_validate_key(key)
            pipe = _redis_client(cache).pipeline(transaction=False)
            pipe.set(name, 0, ex=self.duration + 1, nx=True)
            pipe.incr(name)
            return pipe.execute()[1]
        try:
            return self.cache.incr(key)
        except ValueError:
            # The first request of this window opens it, unless another worker just did. The key
            # lives a second longer than the window, so it outlives every request counted in it.
            opened = self.cache.add(key, 1, timeout=self.duration + 1)
            return 1 if opened else self.cache.incr(key)

    def wait(self) -> float:
        return self.retry_after


class ClientRateThrottle(WindowRateThrottle):
    """Each API client (by its id) and each staff member (by user id) has its own counter."""

    scope = "client"

    def get_cache_key(self, request, view) -> str | None:
        client = api_client_of(request)
        if client is not None:
            ident = f"client:{client.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            return None
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AnonRateThrottle(WindowRateThrottle):
    """Callers without credentials (the schema and the docs), by IP address."""

    scope = "anon"

    def get_cache_key(self, request, view) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def get_ident(self, request) -> str | None:
        # The login lockout counts the same address (omnichannel.auth).
        return client_ip_address(request)
