"""create_api_client, /healthz, the OpenAPI schema and the browsable docs."""

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


def test_create_api_client_refuses_unknown_channel_and_foreign_location(web, store):
    with pytest.raises(CommandError, match="unknown_channel"):
        call_command("create_api_client", "--name", "x", "--channel", "nope", stdout=StringIO())
    LocationFactory(code="paris")  # exists, but does not feed the web channel
    with pytest.raises(CommandError, match="location_not_in_channel"):
        call_command(
            "create_api_client",
            "--name",
            "x",
            "--channel",
            "web",
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


def test_healthz_reports_the_broker_up_when_redis_is_configured(client, settings):
    if not settings.USING_REDIS:
        pytest.fail("this test needs Redis; run `make test` where Redis answers")
    assert client.get("/healthz").json()["broker"] == "ok"


def test_healthz_is_503_when_the_database_is_unreachable(client, monkeypatch):
    def broken_cursor(*args, **kwargs):
        raise connection.Database.OperationalError("server closed the connection")

    monkeypatch.setattr(connection, "cursor", broken_cursor)
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


def test_api_docs_page_works_offline(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html  # served by the project
