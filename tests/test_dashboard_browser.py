"""The dashboard in a real headless Chromium: every chart draws data. Screenshots are kept
under test-artifacts/ for a person to look at."""

import shutil
import time
from datetime import date
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from analytics.jobs import nightly_run
from omnichannel.roles import MANAGER
from tests.factories import make_staff
from tests.test_analytics_jobs import history  # noqa: F401  (the hand-made order set)

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHARTS = ["chart-sales", "chart-top-products", "chart-stock", "chart-segments", "chart-clv"]


@pytest.fixture
def browser(tmp_path):
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("needs Debian's chromium and chromium-driver (make test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1800",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(driver), options=options)
    yield session
    session.quit()


@pytest.mark.django_db(transaction=True)
def test_every_dashboard_chart_draws_data_in_chromium(live_server, browser, history, store):  # noqa: F811
    from catalog.models import Variant
    from inventory.services import StockLine, stock_receive
    from orders.models import Order, OrderLine
    from tests.factories import VariantFactory
    from tests.test_analytics_jobs import order

    stock_receive(lines=[StockLine(VariantFactory().pk, store.pk, 2)], reference="d")
    recent = order(None, Order.objects.first().channel, date.today().isoformat(), "45.00")
    OrderLine.objects.create(
        order=recent,
        variant=Variant.objects.first(),
        sku="TEE-RECENT",
        name="Tee",
        unit_price=45,
        quantity=1,
        line_total=45,
    )
    nightly_run(run_date=date.today())
    from analytics.models import MemberScore

    MemberScore.objects.update(clv_12m=42)  # until the CLV stage lands, give the chart a value
    manager = make_staff("boss")
    manager.groups.add(Group.objects.get(name=MANAGER))
    django_client = Client()
    django_client.force_login(manager)
    session_id = django_client.cookies["sessionid"].value

    browser.get(f"{live_server.url}/admin/login/")
    browser.add_cookie({"name": "sessionid", "value": session_id, "path": "/"})
    browser.get(f"{live_server.url}/dashboard/")

    deadline, drawn = time.monotonic() + 20, {}
    while time.monotonic() < deadline:
        drawn = {
            chart: browser.execute_script(
                "const c = document.getElementById(arguments[0]); "
                "return c && c.dataset.drawn ? Number(c.dataset.drawn) : null;",
                chart,
            )
            for chart in CHARTS
        }
        if all(value is not None for value in drawn.values()):
            break
        time.sleep(0.2)
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    assert all(value and value > 0 for value in drawn.values()), drawn
    painted = browser.execute_script(
        "return document.querySelectorAll('#retention-heatmap td.cell[style]').length;"
    )
    assert painted >= 4
    # An oversold shelf is "out of stock" too: its bar stands beside the stack, not on it.
    stacks = browser.execute_script(
        "return Chart.getChart('chart-stock').data.datasets.map((d) => [d.label, d.stack || '']);"
    )
    assert stacks == [["out of stock", ""], ["low", ""], ["of which oversold", "oversold"]]
    errors = [
        entry
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]
    ]
    assert errors == []
