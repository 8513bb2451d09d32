import random
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

import catalog.demo
import inventory.demo
import omnichannel.demo
import orders.demo

SEED = 20261125


class Command(BaseCommand):
    help = (
        "Idempotent demo data: stores, a warehouse, the web shop and POS channels, a catalog "
        "with prices, stock at every location, staff logins and demo API tokens."
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

        started = time.monotonic()

        self.stderr.write("Channels, locations, logins, API clients...")
        network = omnichannel.demo.seed()

        with tqdm(total=3, desc="Catalog", unit="step", file=sys.stderr) as bar:
            catalog_counts = catalog.demo.seed(
                size=size, rng=rng("catalog"), progress=lambda done, total: bar.update(done - bar.n)
            )

        # Orders before the stock counts: the counts then set every level to its demo value,
        # so a second run finds the same stock and adds no ledger rows.
        with tqdm(desc="A year of orders", unit="order", file=sys.stderr) as bar:

            def order_progress(done, total):
                bar.total = total
                bar.update(done - bar.n)

            orders.demo.seed(size=size, rng=rng("orders"), progress=order_progress)

        with tqdm(desc="Stock", unit="level", file=sys.stderr) as bar:

            def stock_progress(done, total):
                bar.total = total
                bar.update(done - bar.n)

            inventory.demo.seed(rng=rng("stock"), progress=stock_progress)

        out = self.stdout
        out.write(
            f"\nDemo data ready ({size}, {time.monotonic() - started:.1f} s): "
            f"{catalog_counts['products']} products, {catalog_counts['variants']} variants.\n"
        )
        out.write("Admin: http://127.0.0.1:8000/admin/")
        for username, password in network["logins"]:
            out.write(f"  login {username:<13} password {password}")
        out.write("API tokens (the same on every run):")
        for label, token in network["tokens"].items():
            out.write(f"  {label:<32} {token}")
        storefront = next(iter(network["tokens"].values()))
        out.write(
            f'Try: curl -H "Authorization: Token {storefront}" '
            "http://127.0.0.1:8000/api/v1/products/"
        )
