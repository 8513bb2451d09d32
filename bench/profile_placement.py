"""Where an order placement spends its time: pyinstrument over N placements in-process.

    .venv/bin/python bench/profile_placement.py [N]     (pip install pyinstrument first)

Same database, data and request as `make bench`'s order placement, through Django's test
client (no gunicorn, no network), so the profile shows our code, DRF and the database driver.
"""

import json
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    common.ensure_database()
    common.setup_django()
    import random

    from django.test import Client
    from pyinstrument import Profiler

    from bench import orders, reservations

    reservations.prepare()
    token, skus, *_ = orders.prepare()
    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="127.0.0.1")
    rng = random.Random(1)

    def place():  # as the bench's storefront sends it: with an Idempotency-Key of its own
        response = client.post(
            "/api/v1/orders/",
            json.dumps(orders.order_body(rng.choice(skus))),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )
        assert response.status_code == 201, response.content

    for _ in range(30):  # warm caches and connections
        place()
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in range(count):
        place()
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=False))


if __name__ == "__main__":
    main()
