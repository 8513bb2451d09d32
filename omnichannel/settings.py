"""Settings for the back office, read from the environment.

Without DATABASE_URL the project runs on an SQLite file, and without REDIS_URL Celery uses
kombu's filesystem transport: a newcomer gets a working system with no server to install.
With both set it runs on PostgreSQL and Redis, as in production.
"""

import contextlib
import re
import warnings
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("VAR_DIR", default=str(BASE_DIR / "var")))
# Made whatever the database and broker: beat keeps its schedule here (Procfile). Where it
# cannot be (a read-only deploy on PostgreSQL and Redis), the web server, migrate and checks
# need none of it: beat, the SQLite file and the file broker then fail on their own, naming it.
with contextlib.suppress(OSError):
    VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str(
    "SECRET_KEY",
    default="dev-only-secret-key-change-me-in-production-0123456789abcdefghijklmnop",
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "import_export",
    "axes",
    "simple_history",
    "omnichannel",
    "catalog",
    "inventory",
    "orders",
    "customers",
    "analytics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "omnichannel.middleware.RejectNulCharactersMiddleware",
    "omnichannel.middleware.ReleaseRequestCyclesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Lets history rows name the staff member or API client behind a change.
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a login refused for too many failures into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "omnichannel.urls"
WSGI_APPLICATION = "omnichannel.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------
_DB_ENGINES = {"django.db.backends.postgresql", "django.db.backends.sqlite3"}
_DB_URL_HELP = "give postgres://user:password@host:5432/name, or leave it unset for SQLite"
_db_url = env.str("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
_db_scheme, _sep, _ = _db_url.partition("://")  # never the rest in a message: a password
if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", _db_scheme):
    _sep = ""  # no scheme to name
if not _sep or environ.Env.DB_SCHEMES.get(_db_scheme) not in _DB_ENGINES:
    # A mistyped scheme (postgress://) failed later, deep in Django, naming no setting; one
    # without its `://` was read as another database name, which the server's error printed,
    # password included, as django-environ's warning printed the parsed URL.
    raise ImproperlyConfigured(
        f"DATABASE_URL{': ' + _db_scheme + '://' if _sep else ''} is not a PostgreSQL or"
        f" SQLite URL; {_DB_URL_HELP}"
    )
try:
    with warnings.catch_warnings():  # django-environ's warnings print the parsed URL
        warnings.simplefilter("ignore")
        DATABASES = {"default": env.db_url_config(_db_url)}
except ValueError:  # a port that is not a number, a bad address: the message names the URL
    raise ImproperlyConfigured(
        f"DATABASE_URL: {_db_scheme}:// URL cannot be read (a port that is not a number?);"
        f" {_DB_URL_HELP}"
    ) from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web server, worker and beat share the file: WAL and IMMEDIATE transactions keep
    # concurrent writers waiting instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- broker, cache ----------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT = "omnichannel.broker:Transport"  # kombu's Redis, see broker.py
    # Likewise for the broker: a sale queues its availability sync, /healthz pings it. A
    # Redis that hangs without closing the connection held both forever (kombu waits by
    # default); now a publish gives up, the outbox keeps the change for the sweeper, and the
    # probe says "down". The worker's BRPOP waits in its event loop, not on these.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # The throttle counts here on every request and passes when Redis fails: a Redis
            # that hangs instead of refusing must fail too, not hold the request (redis-py
            # waits forever by default). Its commands take well under a millisecond.
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    # A broker that needs no server: messages are files under var/broker.
    _broker_dir = VAR_DIR / "broker"
    _broker_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # kombu polls the folder once a second by default; with prefetch 1 and 2 processes
        # that is 2 tasks a second, slower than beat queues work, so the heartbeat waited
        # behind a backlog and /healthz said the worker was missing while it ran.
        "polling_interval": 0.1,
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery closes the database connection around every task unless this is set (then: every
# this many tasks); between, omnichannel/celery.py closes it as Django closes a request's
# (CONN_MAX_AGE, CONN_HEALTH_CHECKS, errors).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Worker and beat wait for a lost broker as long as it takes (Celery's default, 100 retries,
# is about 50 minutes, after which the worker exits). Sending a task from the web process is
# not affected: it fails after a short retry (see inventory.availability.sync_soon).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# After a sync consumed stock changes, the next one waits this long (ms) so that the sales in
# between are published together by one task: under load, one sync per window instead of one
# per sale, for at most this much extra lag. A lone sale still syncs at once. 0: no wait.
AVAILABILITY_SYNC_WINDOW_MS = env.int("AVAILABILITY_SYNC_WINDOW_MS", default=50)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Beat's crontab hours are the business's (TIME_ZONE): the nightly run at 03:00 local time,
# after the day it counts (it counts days in TIME_ZONE too). UTC ran it at noon in Tokyo.
CELERY_TIMEZONE = env.str("TIME_ZONE", default="UTC")  # = TIME_ZONE, set further down
CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {
        "task": "omnichannel.tasks.record_worker_heartbeat",
        "schedule": 15.0,
    },
    "sweep-channel-availability": {
        "task": "inventory.tasks.sync_channel_availability",
        "schedule": 5.0,
    },
    "sweep-webhooks": {
        "task": "inventory.tasks.sweep_webhooks",
        "schedule": 30.0,
    },
    "expire-uncollected-pickups": {
        "task": "orders.tasks.expire_uncollected_pickups",
        "schedule": 3600.0,
    },
    "expire-points": {
        "task": "customers.tasks.expire_points",
        "schedule": crontab(hour=2, minute=0),
    },
    "recompute-tiers": {
        "task": "customers.tasks.recompute_tiers",
        "schedule": crontab(hour=2, minute=30),
    },
    "nightly-analytics": {
        "task": "analytics.tasks.run_nightly_jobs",
        "schedule": crontab(hour=3, minute=0),
    },
    "purge-idempotency-keys": {
        "task": "omnichannel.tasks.purge_idempotency_records",
        "schedule": 3600.0,
    },
}
# Webhook URLs on private, loopback or link-local addresses are refused unless this is on
# (a subscriber on the same private network as the worker).
WEBHOOK_ALLOW_PRIVATE_URLS = env.bool("WEBHOOK_ALLOW_PRIVATE_URLS", default=False)
# Answers kept for Idempotency-Key replays (purged nightly by beat).
IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=72)
# Members: phone numbers without a country code are read in this region (ISO 3166 alpha-2).
PHONE_DEFAULT_REGION = env.str("PHONE_DEFAULT_REGION", default="FR")
# Loyalty: what one point is worth when redeemed, and the earn multiplier of each tier.
POINT_VALUE = env.str("POINT_VALUE", default="0.01")
TIER_EARN_MULTIPLIER = {"basic": "1.0", "silver": "1.25", "gold": "1.5"}
# Tier from trailing 12-month spend across all channels (recomputed nightly).
TIER_SPEND_THRESHOLDS = {"gold": "1500.00", "silver": "500.00"}
# Earned points not spent within this many days expire (nightly). Whole days in TIME_ZONE:
# the points of one day expire together, the night that day is this many days back.
POINTS_EXPIRY_DAYS = env.int("POINTS_EXPIRY_DAYS", default=365)
# CLV: the monthly discount rate for 12-month customer lifetime value.
CLV_MONTHLY_DISCOUNT = env.float("CLV_MONTHLY_DISCOUNT", default=0.01)
# Pickups nobody collects are released after this many days (beat checks hourly).
PICKUP_EXPIRY_DAYS = env.int("PICKUP_EXPIRY_DAYS", default=7)
# A web process keeps the API client behind a token this long before looking it up again
# (omnichannel.services.api_client_authenticate): a token revoked in another process stops
# working within that many seconds, at once in the one that revoked it. 0: every request.
API_CLIENT_CACHE_SECONDS = env.int("API_CLIENT_CACHE_SECONDS", default=5)
# How long a process keeps a channel's ship-from locations (feeds, priority, safety stock) for
# routing ship orders. Saving a feed or a location takes effect at once in the process that
# saved it, within this many seconds in the others. 0: read them for every order.
ROUTING_CACHE_SECONDS = env.int("ROUTING_CACHE_SECONDS", default=5)
# /healthz reports the worker as up when its last heartbeat is at most this old.
WORKER_HEARTBEAT_MAX_AGE_SECONDS = 60
# The port make run serves on (Procfile); seed_demo prints its URLs on it.
WEB_PORT = env.int("WEB_PORT", default=8000)

# --- auth, i18n, static -----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"
# Staff logins (the admin's and any other): after LOGIN_FAILURE_LIMIT wrong passwords for one
# username from one IP address, that pair is refused for LOGIN_COOLOFF_MINUTES, the right
# password included (django-axes; attempts are rows in the database, listed in the admin,
# where deleting one lifts its lockout). A successful login starts the count afresh. Every
# failed login and every login are also kept in the admin (access failure log, access log).
# The IP address is the caller's as the API's rates read it (REST_FRAMEWORK["NUM_PROXIES"]):
# behind a proxy, the one it saw, not the proxy's own, which would lock a username out of
# every address; with no proxy counted, the socket's (a forged X-Forwarded-For is ignored).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "omnichannel.auth.client_ip_address"
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# The largest request body read, in bytes (413 `request_too_large` above it). A POS batch of
# 500 offline sales fits easily.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "omnichannel.auth.ApiClientTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["omnichannel.auth.ClientOrStaffPermission"],
    "DEFAULT_FILTER_BACKENDS": ["omnichannel.api.filters.FilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "omnichannel.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "omnichannel.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "omnichannel.api.exceptions.api_exception_handler",
    # JSON in and out (the contract); bounded in size and depth, see omnichannel/api/parsers.py.
    "DEFAULT_PARSER_CLASSES": ["omnichannel.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # Requests per caller and period, counted in the cache (Redis): each API client by its id,
    # each staff member by user id; callers without credentials (schema, docs) by IP address.
    # Over the rate: 429 {"code": "throttled"} with Retry-After.
    "DEFAULT_THROTTLE_CLASSES": [
        "omnichannel.api.throttling.ClientRateThrottle",
        "omnichannel.api.throttling.AnonRateThrottle",
    ],
    # Proxies in front of the web server that add to X-Forwarded-For: the throttle counts
    # an anonymous caller, and the login lockout a staff login, by the address the nearest of
    # them saw (omnichannel.auth.client_ip_address). 0 (none): the socket's address; the
    # header, which anyone can write, no longer names the caller.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "DEFAULT_THROTTLE_RATES": {
        "client": env.str("THROTTLE_RATE", default="3000/min"),
        "anon": env.str("THROTTLE_RATE_ANON", default="60/min"),
    },
    "COERCE_DECIMAL_TO_STRING": True,
    "DATETIME_FORMAT": "iso-8601",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Omnichannel back office API",
    "DESCRIPTION": "Catalog, stock, orders and members for stores and the web shop.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {},
}

# --- change history (django-simple-history) ----------------------------------------------------
# The history is an audit trail: read it in the admin, never restore a past version from it
# (edits go through the normal forms and services).
SIMPLE_HISTORY_REVERT_DISABLED = True

# --- import-export ------------------------------------------------------------------------------
IMPORT_EXPORT_USE_TRANSACTIONS = True
IMPORT_EXPORT_SKIP_ADMIN_LOG = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's own console handler (DEBUG only) printed each of its records a second time,
        # unformatted, beside the root's: its records go to the root handler alone.
        "django": {"handlers": [], "level": "INFO"},
        "django.db.backends": {"level": "WARNING"},
        # The file broker's URL has no host, which kombu reports on every connection.
        "kombu.connection": {"level": "ERROR"},
    },
}
