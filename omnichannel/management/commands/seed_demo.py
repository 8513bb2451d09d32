import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from tqdm import tqdm

import catalog.demo
import inventory.demo
import omnichannel.demo
import orders.demo
import orders.demo_bulk
from analytics.jobs import last_finished_day, nightly_run
from analytics.models import NightlyRun
from inventory.availability import syncs_held

SEED = 20261125
SEED_LOCK_POLL = 0.2  # seconds between tries for the seed lock while another seed holds it

# What the closing summary counts, in the order a reader meets them.
SUMMARY = [
    ("channels", "omnichannel.Channel"),
    ("locations", "omnichannel.Location"),
    ("categories", "catalog.Category"),
    ("products", "catalog.Product"),
    ("variants", "catalog.Variant"),
    ("channel prices", "catalog.ChannelPrice"),
    ("stock levels", "inventory.StockLevel"),
    ("orders", "orders.Order"),
    ("members", "customers.Member"),
]


@contextmanager
def progress_bar(desc: str, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on stderr, driven by the demo modules' `progress(done, total)` callback."""
    with tqdm(desc=desc, unit=unit, file=sys.stderr, leave=False) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield progress


@contextmanager
def one_seed_at_a_time(waiting: Callable[[], None]) -> Iterator[None]:
    """Hold a session advisory lock for the whole seed: a second seed at once (two
    `make run`s, or one beside `docker compose exec web ... seed_demo`) waits for the first,
    then finds its work done. Each step reads what is done once and writes the rest in many
    transactions (the demo orders one by one, the bulk history batch by batch), so two at
    once both wrote it: every demo order twice. `waiting()` is called if the seed has to wait.
    On SQLite, no lock: two seeds at once there are not kept apart."""
    if connection.vendor != "postgresql":
        yield
        return
    try:
        with connection.cursor() as cursor:
            told = False
            # Polled, not `pg_advisory_lock`: psycopg2 does not interrupt a query, so Ctrl-C
            # did nothing while the other seed ran (minutes for --size large).
            while not _try_seed_lock(cursor):
                if not told:
                    waiting()
                    told = True
                time.sleep(SEED_LOCK_POLL)
        yield
    finally:
        with connection.cursor() as cursor:
            # Released on every path, an interrupt while taking it included (unlocking a lock
            # this session does not hold only warns).
            cursor.execute("SELECT pg_advisory_unlock(%s)", [omnichannel.demo.SEED_LOCK])


def _try_seed_lock(cursor) -> bool:
    cursor.execute("SELECT pg_try_advisory_lock(%s)", [omnichannel.demo.SEED_LOCK])
    return cursor.fetchone()[0]


class Command(BaseCommand):
    help = (
        "Idempotent demo data: stores, a warehouse, the web shop and POS channels, a catalog "
        "with prices, a year of orders, stock at every location, staff logins and demo API "
        "tokens. Run it again to reset the demo rows to their demo values."
    )

    def add_arguments(self, parser):
        parser.add_argument("--size", choices=["small", "large"], default="small")
        parser.add_argument(
            "--force", action="store_true", help="seed even with DEBUG off (production settings)"
        )

    def handle(self, *args, size: str, force: bool, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "DEBUG is off: demo logins with known passwords do not belong in production. "
                "Use --force if this really is a demo instance."
            )

        def rng(step: str) -> random.Random:
            # One stream per step: a step that finds its work done (and draws nothing) must
            # not shift what the next one draws.
            return random.Random(f"{SEED}-{step}")

        def waiting() -> None:
            self.stderr.write("Another seed_demo is running: waiting for it to finish")

        # One availability sync at the end (syncs_held), not one per demo order.
        with one_seed_at_a_time(waiting), syncs_held():
            self._seed(size=size, rng=rng)

    def _seed(self, *, size: str, rng) -> None:
        started = time.monotonic()

        with self.step("Channels, locations, feeds, logins, API clients") as done:
            try:
                network = omnichannel.demo.seed()
            except omnichannel.demo.DemoConflict as conflict:
                raise CommandError(str(conflict)) from conflict
            done(f"{len(network['logins'])} logins, {len(network['tokens'])} API clients")
            if network["staff_logins"]:
                done(f"{len(network['staff_logins'])} staff logins left as they are")
            if network["staff_locations"]:
                done(f"{len(network['staff_locations'])} staff locations left as they are")

        with self.step("Catalog") as done, progress_bar("Catalog", "step") as progress:
            catalog_counts = catalog.demo.seed(size=size, rng=rng("catalog"), progress=progress)
            done(
                f"{catalog_counts['products']:,} products, {catalog_counts['variants']:,} "
                f"variants, {catalog_counts['changed']:,} products written"
            )

        # Orders before the stock counts: the counts then set every level to its demo value,
        # so a second run finds the same stock and adds no ledger rows.
        with self.step("A year of orders") as done, progress_bar("Orders", "order") as progress:
            made = orders.demo.seed(size=size, rng=rng("orders"), progress=progress)
            done(f"{made:,} new orders")

        bulk_orders, bulk_people = orders.demo_bulk.SIZES[size]
        if bulk_orders:
            with (
                self.step("History at scale (bulk)") as done,
                progress_bar("History", "order") as progress,
            ):
                made = orders.demo_bulk.seed_bulk(
                    orders=bulk_orders, people=bulk_people, seed=f"{SEED}", progress=progress
                )
                done(f"{made:,} new orders")

        with self.step("Stock") as done, progress_bar("Stock", "level") as progress:
            changed = inventory.demo.seed(rng=rng("stock"), progress=progress)
            done(f"{changed:,} levels counted to their demo value")

        # The managers' numbers, so the dashboard has something to show at once, as of the
        # last finished day, as beat's nightly run counts. Once a day: a second seed finds
        # that day's run and leaves it (a failed one is run again).
        with self.step("Analytics (nightly run for yesterday)") as done:
            succeeded = NightlyRun.objects.filter(
                run_date=last_finished_day(), status=NightlyRun.Status.SUCCEEDED
            )
            if succeeded.exists():
                done("already run today")
            else:
                run = nightly_run()
                done(
                    ", ".join(
                        f"{name} {stage.get('rows', 0):,}" for name, stage in run.stages.items()
                    )
                )

        self.summary(size, time.monotonic() - started, network)

    @contextmanager
    def step(self, label: str) -> Iterator[Callable[[str], None]]:
        """One line on stderr per step, once it is done: what it did and how long it took."""
        started = time.monotonic()
        outcome = []
        yield outcome.append
        self.stderr.write(f"{label}: {', '.join(outcome)} ({time.monotonic() - started:.1f} s)")

    def summary(self, size: str, seconds: float, network: dict) -> None:
        out = self.stdout
        counts = ", ".join(
            f"{apps.get_model(label).objects.count():,} {name}" for name, label in SUMMARY
        )
        out.write(f"\nDemo data ready ({size}, {seconds:.1f} s): {counts}.\n")
        base_url = f"http://127.0.0.1:{settings.WEB_PORT}"  # where make run serves
        out.write(f"Admin: {base_url}/admin/")
        for username, password in network["logins"]:
            out.write(f"  login {username:<13} password {password}")
        for username in network["staff_logins"]:
            out.write(
                f"  {username}: a staff login of this name exists (not the demo's: its email is "
                f"not {username}@{omnichannel.demo.DEMO_EMAIL_DOMAIN}); left as it is, its "
                "password is not the demo's"
            )
        for code in network["staff_locations"]:
            out.write(
                f"  location {code}: exists and is not the demo's (another kind or address); "
                "left as it is, the demo neither stocks nor sells there"
            )
        out.write("API tokens (the same on every run):")
        for label, token in network["tokens"].items():
            out.write(f"  {label:<32} {token}")
        storefront = next(iter(network["tokens"].values()))
        out.write(f'Try: curl -H "Authorization: Token {storefront}" {base_url}/api/v1/products/')
