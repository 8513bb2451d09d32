"""Test settings: real PostgreSQL and Redis when they answer, embedded ones otherwise.

`make test` runs the suite against PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) when
they are reachable. With REQUIRE_SERVICES=1 (CI), a missing service is an error at start-up,
never a silent fallback. DATABASE_URL / REDIS_URL, when set, are used as given.
"""

import os
import socket


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


_require = os.environ.get("REQUIRE_SERVICES") == "1"

if not os.environ.get("DATABASE_URL"):
    if _reachable("127.0.0.1", 5432):
        os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/omnichannel"
    elif _require:
        raise RuntimeError("REQUIRE_SERVICES=1 but PostgreSQL is not reachable at 127.0.0.1:5432")

if not os.environ.get("REDIS_URL"):
    if _reachable("127.0.0.1", 6379):
        os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/15"
    elif _require:
        raise RuntimeError("REQUIRE_SERVICES=1 but Redis is not reachable at 127.0.0.1:6379")

os.environ.setdefault("VAR_DIR", os.path.join(os.path.dirname(__file__), "..", "var", "test"))

from .settings import *  # noqa: E402, F403
from .settings import DATABASES, VAR_DIR  # noqa: E402

USING_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
USING_REDIS = bool(os.environ.get("REDIS_URL"))

# Each test arranges its own data; fast hashing keeps user fixtures cheap.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
DATABASES["default"]["CONN_MAX_AGE"] = 0
# The tests' webhook subscribers listen on 127.0.0.1; the tests of the refusal turn it off.
WEBHOOK_ALLOW_PRIVATE_URLS = True
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Rates far above what any test sends, so counters left in Redis by an earlier run never refuse
# a request; tests/test_throttling.py sets low rates where it proves the 429.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {"client": "100000/min", "anon": "100000/min"},
}
