"""Demo channels, locations, staff logins and API clients for `seed_demo`.

`make run` seeds on every start, also on an installation whose staff made their own rows
under the demo's names. A login is the demo's when its email is the demo's
(`<username>@demo.example`, which the seed alone writes): those are put back to their demo
values on every run, any other login of that name is left as staff set it. A channel of the
demo's code that exists is used as it is (its name and settings are staff's to set); one in
another currency stops the seed before it writes anything, rather than price the demo in
the wrong currency. A location of a demo code is the demo's when it has the kind and the
address the seed gives it (`IDENTITY`: a shop's own store of that code is not at the demo's
exact address): its name, ships and pickup are put back to the demo's on every run. Any other
location of that code (a shop's own `bordeaux` store) is left as staff set it, fed to no
demo channel by the seed, and the demo counts no stock and places no order there
(`demo_locations`, which the stock and order steps read).

The network step runs in one transaction, behind a lock of its own: two seeds at once (two
`make run`s, or one beside `docker compose exec web ... seed_demo`) take it in turn, the second
finding the rows the first made rather than failing on them."""

import hashlib
import hmac
import operator
from functools import reduce

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.db.models import Q, QuerySet

from .models import ApiClient, Channel, ChannelLocation, Location
from .roles import MANAGER, MERCHANDISER, roles_ensure
from .services import _hash, api_client_authenticate, api_client_create

CHANNELS = [
    {"code": "web", "name": "Web shop", "kind": Channel.Kind.WEB, "currency": "EUR"},
    {"code": "pos", "name": "Stores", "kind": Channel.Kind.POS, "currency": "EUR"},
]
WAREHOUSE = {
    "code": "wh-central",
    "name": "Central warehouse",
    "kind": Location.Kind.WAREHOUSE,
    "ships": True,
    "pickup": False,
    "address_line1": "12 rue de l'Entrepôt",
    "postal_code": "69200",
    "city": "Vénissieux",
    "country": "FR",
}
STORES = [
    {
        "code": code,
        "name": name,
        "kind": Location.Kind.STORE,
        "ships": ships,
        "pickup": True,
        "address_line1": line1,
        "postal_code": postal_code,
        "city": city,
        "country": "FR",
    }
    for code, name, ships, line1, postal_code, city in [
        ("lyon-centre", "Lyon Centre", True, "45 rue de la République", "69002", "Lyon"),
        ("paris-marais", "Paris Marais", True, "18 rue des Francs-Bourgeois", "75004", "Paris"),
        (
            "bordeaux",
            "Bordeaux Sainte-Catherine",
            False,
            "102 rue Sainte-Catherine",
            "33000",
            "Bordeaux",
        ),
    ]
]
LOCATIONS = [WAREHOUSE, *STORES]
# What tells the demo's own location from a retailer's of the same code: the seed writes
# these and never changes them. The other fields it writes (name, ships, pickup) it puts back
# on every run; address line 2 and region it leaves to staff.
IDENTITY = ("code", "kind", "address_line1", "postal_code", "city", "country")
RESET = ("name", "ships", "pickup")
WEB_STORE_SAFETY_STOCK = 2
# pg_advisory_xact_lock(NETWORK_LOCK): one network step at a time.
NETWORK_LOCK = 7302  # inventory.availability's namespace is 7301
# pg_advisory_lock(SEED_LOCK), for the session: one seed_demo command at a time.
SEED_LOCK = 7303


def demo_locations() -> QuerySet[Location]:
    """The demo's own locations: those of its codes that have its kind and address. The
    only ones its stock counts and its orders use; a shop's own store of a demo code is not
    one."""
    same = (Q(**{field: spec[field] for field in IDENTITY}) for spec in LOCATIONS)
    return Location.objects.filter(reduce(operator.or_, same))


DEMO_EMAIL_DOMAIN = "demo.example"  # reserved for examples (RFC 2606): nobody's real address
LOGINS = [
    {"username": "admin", "password": "admin-demo", "superuser": True, "role": None},
    {
        "username": "merchandiser",
        "password": "merchandiser-demo",
        "superuser": False,
        "role": MERCHANDISER,
    },
    {"username": "manager", "password": "manager-demo", "superuser": False, "role": MANAGER},
]


def demo_token(name: str) -> str:
    """The same token on every run (derived from SECRET_KEY), so re-seeding keeps it valid."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"demo:{name}".encode(), hashlib.sha256)
    return "oc_demo_" + digest.hexdigest()[:40]


def _client(name: str, channel: str, location: str | None = None) -> str:
    token = demo_token(name)
    if api_client_authenticate(key=token) is None:
        # Revoked from the admin (trying the feature out on the demo): the token keeps its
        # row, so creating it again would clash on the hash. Reinstate it instead: the
        # printed token must work after every run.
        reinstated = ApiClient.objects.filter(key_hash=_hash(token)).update(revoked_at=None)
        if not reinstated:
            api_client_create(name=name, channel_code=channel, location_code=location, key=token)
    return token


class DemoConflict(Exception):
    """A row the demo needs is there already and cannot serve the demo: nothing was written."""


def _channels() -> dict[str, Channel]:
    """The demo's channels: made when missing, an existing one as it is. Checked before the
    seed writes anything."""
    existing = {c.code: c for c in Channel.objects.filter(code__in=[s["code"] for s in CHANNELS])}
    clashes = [
        f"{spec['code']} is in {existing[spec['code']].currency}, the demo's prices are in "
        f"{spec['currency']}"
        for spec in CHANNELS
        if spec["code"] in existing and existing[spec["code"]].currency != spec["currency"]
    ]
    if clashes:
        raise DemoConflict(
            f"Channel {'; channel '.join(clashes)}. The demo would price and sell in the wrong "
            "currency: nothing was seeded. Seed the demo on its own database (DATABASE_URL), "
            "not on a shop's."
        )
    return {
        spec["code"]: existing.get(spec["code"]) or Channel.objects.create(**spec)
        for spec in CHANNELS
    }


def _locations() -> tuple[dict[str, Location], list[str]]:
    """The demo's locations by code: made when missing, the demo's own (`IDENTITY`) put
    back to their demo name and flags; one of a demo code that is not the demo's is the
    retailer's: left as it is. Returns the demo's and the codes left alone."""
    existing = {
        location.code: location
        for location in Location.objects.filter(code__in=[spec["code"] for spec in LOCATIONS])
    }
    demo, kept = {}, []
    for spec in LOCATIONS:
        location = existing.get(spec["code"])
        if location is None:
            location = Location.objects.create(**spec)
        elif any(getattr(location, field) != spec[field] for field in IDENTITY):
            kept.append(location.code)
            continue
        else:
            changed = [field for field in RESET if getattr(location, field) != spec[field]]
            for field in changed:
                setattr(location, field, spec[field])
            if changed:
                location.save(update_fields=changed)
        demo[spec["code"]] = location
    has_store = any(spec["code"] in demo for spec in STORES)
    if not has_store or not any(location.ships for location in demo.values()):
        raise DemoConflict(
            f"Location {', '.join(kept)}: not the demo's (another kind or address), left as "
            "they are; the demo has no store, or no location that ships, of its own: nothing "
            "was seeded. Seed the demo on its own database (DATABASE_URL), not on a shop's."
        )
    return demo, kept


def _logins() -> tuple[list[tuple[str, str]], list[str]]:
    """Make the demo's logins, or put them back to their demo values; a login of one of
    their names that is not the demo's (another email) is staff's: left alone. Returns the
    demo's (username, password) and the staff's usernames left as they are."""
    users = get_user_model()
    demo, kept = [], []
    for login in LOGINS:
        email = f"{login['username']}@{DEMO_EMAIL_DOMAIN}"
        user = users.objects.filter(username=login["username"]).first()
        if user is None:
            user = users(username=login["username"])
        elif user.email != email:
            kept.append(login["username"])
            continue
        user.is_active = user.is_staff = True
        user.is_superuser = login["superuser"]
        user.email = email
        # Checked first: a new salt on every run would change the row for nothing.
        if not user.check_password(login["password"]):
            user.set_password(login["password"])
        user.save()
        if login["role"]:
            user.groups.set([Group.objects.get(name=login["role"])])
        demo.append((login["username"], login["password"]))
    return demo, kept


def _one_at_a_time() -> None:
    """Wait for any other seed's network step to commit. Its rows are written but not yet
    visible: looked for now, they were missing, and making them again failed on its unique
    rows (a channel's code, a login's username, an API client's token). SQLite's
    IMMEDIATE transactions (settings) already take writers in turn."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [NETWORK_LOCK])


@transaction.atomic
def seed() -> dict:
    """Create or reset the demo network; returns the demo's logins, the staff logins and
    locations left alone and the API tokens to print. Raises DemoConflict, having written
    nothing, when a channel of the demo's is in another currency or the demo has no store
    of its own. One transaction, one seed at a time."""
    _one_at_a_time()
    channels = _channels()
    roles_ensure()
    locations, kept_locations = _locations()
    warehouse = locations.get(WAREHOUSE["code"])
    stores = [locations[spec["code"]] for spec in STORES if spec["code"] in locations]

    feeds = [(channels["web"], warehouse, 1, 0)] if warehouse else []
    feeds += [
        (channels["web"], store, n, WEB_STORE_SAFETY_STOCK)
        for n, store in enumerate((s for s in stores if s.ships), start=2)
    ]
    feeds += [(channels["pos"], store, n, 0) for n, store in enumerate(stores, start=1)]
    for channel, location, priority, safety_stock in feeds:
        ChannelLocation.objects.update_or_create(
            channel=channel,
            location=location,
            defaults={"priority": priority, "safety_stock": safety_stock},
        )

    logins, kept = _logins()
    till_store = stores[0]
    return {
        "logins": logins,
        "staff_logins": kept,
        "staff_locations": kept_locations,
        "tokens": {
            "Demo storefront (web)": _client("Demo storefront", "web"),
            f"Demo till ({till_store.code}, pos)": _client(
                f"Demo till {till_store.code}", "pos", till_store.code
            ),
        },
    }
