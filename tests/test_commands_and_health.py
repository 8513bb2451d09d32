"""create_api_client, /healthz, the OpenAPI schema and the browsable docs."""

import threading
import time
from io import StringIO

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.db import connection

from omnichannel.models import WorkerHeartbeat
from omnichannel.tasks import record_worker_heartbeat
from tests.conftest import as_client
from tests.factories import ChannelPriceFactory, LocationFactory

pytestmark = pytest.mark.django_db


def test_create_api_client_prints_a_token_that_works_on_its_last_line(web, pos, store):
    ChannelPriceFactory(channel=pos)
    out = StringIO()
    call_command(
        "create_api_client",
        "--name",
        "Till 7",
        "--channel",
        "pos",
        "--location",
        "lyon",
        stdout=out,
    )
    token = out.getvalue().strip().splitlines()[-1]
    assert token.startswith("oc_") and " " not in token
    response = as_client(token).get("/api/v1/variants/")
    assert response.status_code == 200
    assert response.json()["results"][0]["price"] == "19.90"


def test_create_api_client_refuses_unknown_channel_and_foreign_location(web, pos, store):
    with pytest.raises(CommandError, match="unknown_channel"):
        call_command("create_api_client", "--name", "x", "--channel", "nope", stdout=StringIO())
    LocationFactory(code="paris")  # exists, but does not feed the POS channel
    with pytest.raises(CommandError, match="location_not_in_channel"):
        call_command(
            "create_api_client",
            "--name",
            "x",
            "--channel",
            "pos",
            "--location",
            "paris",
            stdout=StringIO(),
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "x" * 121, "--channel", "web"], "1 to 120 characters"),  # was a traceback
        (["--name", "  ", "--channel", "web"], "1 to 120 characters"),
        # A POS client without its store: every sale it sent was refused.
        (["--name", "Till", "--channel", "pos"], "give its store"),
        # A web client with a store: it was taken for a till (any order, returns there).
        (
            ["--name", "Kiosk", "--channel", "web", "--location", "lyon"],
            "Only a POS client stands in a store",
        ),
    ],
)
def test_create_api_client_refuses_a_client_it_cannot_make_work(web, pos, store, args, message):
    from omnichannel.models import ApiClient

    with pytest.raises(CommandError, match=message):
        call_command("create_api_client", *args, stdout=StringIO())
    assert not ApiClient.objects.exists()


def test_healthz_reports_database_broker_and_worker(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["broker"] in {"ok", "down"}
    assert body["worker"]["status"] == "unknown"  # no heartbeat yet

    record_worker_heartbeat()
    assert WorkerHeartbeat.objects.count() == 1
    assert client.get("/healthz").json()["worker"]["status"] == "ok"


def test_healthz_answers_head_for_probes_that_send_it(client):
    """Load balancers and some probes send HEAD: it was 405, a failing check."""
    response = client.head("/healthz")
    assert response.status_code == 200 and response.content == b""
    assert client.post("/healthz").status_code == 405


def test_healthz_reports_the_broker_up_when_redis_is_configured(client, settings):
    if not settings.USING_REDIS:
        pytest.fail("this test needs Redis; run `make test` where Redis answers")
    assert client.get("/healthz").json()["broker"] == "ok"


def test_healthz_is_503_when_the_database_is_unreachable(client, monkeypatch):
    def broken_cursor(*args, **kwargs):
        raise connection.Database.OperationalError("server closed the connection")

    with monkeypatch.context() as patch:  # the database is back for the ledger check after
        patch.setattr(connection, "cursor", broken_cursor)
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "down"
    assert response.json()["status"] == "down"


def test_schema_is_openapi_3_and_describes_the_contract_paths(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    for path in [
        "/api/v1/channels/",
        "/api/v1/locations/",
        "/api/v1/products/",
        "/api/v1/variants/",
    ]:
        assert path in schema["paths"]
    params = {p["name"] for p in schema["paths"]["/api/v1/products/"]["get"]["parameters"]}
    assert {"search", "category", "sku", "channel", "updated_since", "page"} <= params
    assert "TokenAuth" in schema["components"]["securitySchemes"]
    assert "401" in schema["paths"]["/api/v1/products/"]["get"]["responses"]


def test_the_schema_documents_406_and_ids_as_integers(client, web_client):
    """Accept: application/xml is 406 not_acceptable on any operation, which no operation
    listed; orders/?member= was typed number (and 1.5 matched member 1)."""
    schema = yaml.safe_load(client.get("/api/schema/").content)
    operations = [op for item in schema["paths"].values() for op in item.values()]
    assert operations and all("406" in op["responses"] for op in operations)
    refused = web_client.get("/api/v1/channels/", HTTP_ACCEPT="application/xml")
    assert (refused.status_code, refused.json()["code"]) == (406, "not_acceptable")
    [member] = [
        p for p in schema["paths"]["/api/v1/orders/"]["get"]["parameters"] if p["name"] == "member"
    ]
    assert member["schema"]["type"] == "integer"


def test_api_docs_page_works_offline(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html  # served by the project


def _within(seconds: float, work):
    """work()'s result, or a failure if it is still running after `seconds` (a thread, so a
    hang fails the test instead of holding the suite)."""
    done: dict = {}

    def run():
        try:
            done["result"] = work()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert "result" in done, f"still waiting after {time.monotonic() - started:.1f} s"
    return done["result"]


@pytest.mark.parametrize("broker", ["hung", "refused"])
def test_healthz_says_the_broker_is_down_within_its_probes_timeout(
    client, settings, monkeypatch, hung_redis, broker
):
    """A Redis that accepts and never answers held /healthz forever (kombu waits by
    default), and one that refuses cost 2 s (kombu's pause before its retry): a probe with
    a 1-2 s timeout then restarted a healthy web process. Both answer in about a second."""
    from omnichannel.celery import app

    if not settings.USING_REDIS:
        pytest.fail("this test needs Redis; run `make test` where Redis answers")
    url = f"{hung_redis.url}/0" if broker == "hung" else "redis://127.0.0.1:1/0"
    monkeypatch.setitem(app.conf, "broker_url", url)
    monkeypatch.setitem(app.conf, "broker_write_url", url)
    response = _within(1.8, lambda: client.get("/healthz"))
    assert (response.status_code, response.json()["broker"]) == (200, "down")


def test_a_sale_queueing_its_sync_on_a_hung_redis_gives_up(settings, monkeypatch, hung_redis):
    """The sync a sale queues (after its commit) went to a Redis that never answers: the
    request hung with it. The publish now gives up after the broker's socket timeout (and
    Celery's few retries); the outbox keeps the change for the sweeper."""
    from inventory import availability
    from omnichannel.celery import app

    if not settings.USING_REDIS:
        pytest.fail("this test needs Redis; run `make test` where Redis answers")
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["socket_timeout"] == 1.0
    url = f"{hung_redis.url}/0"
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    monkeypatch.setitem(app.conf, "broker_url", url)
    monkeypatch.setitem(app.conf, "broker_write_url", url)
    # Connections and producers to the real Redis, kept by earlier tests, are not reused.
    monkeypatch.setattr(app, "_pool", None)
    monkeypatch.setattr(app.amqp, "_producer_pool", None)
    assert _within(15, availability._send_sync) is False
    assert hung_redis.accepted


def test_the_root_url_leads_to_the_back_office(client):
    """`make run` names http://127.0.0.1:8000: it was a 404, and so was the admin's
    "View site" link to it."""
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    login = client.get("/admin/", follow=True)
    assert login.status_code == 200
    assert b'href="/"' not in login.content  # no "View site" link to nowhere


def test_a_django_warning_is_printed_once_with_debug_on():
    """With DEBUG on, Django's own console handler printed each request warning a second
    time, unformatted, beside the root handler's line (and a 403's traceback twice)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    probe = "probe-3f9c: Unauthorized"
    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            f"import logging; logging.getLogger('django.request').warning({probe!r})",
        ],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "omnichannel.settings", "DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    printed = [line for line in done.stderr.splitlines() if probe in line]
    assert len(printed) == 1, printed
    assert "WARNING django.request" in printed[0]
