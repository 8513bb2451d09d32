"""docker-compose.yml and the Dockerfile, checked by parsing (no Docker engine in CI)."""

import importlib
import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ["migrate", "web", "worker", "beat"]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_all_services_are_there_with_healthchecks(compose):
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "beat"} <= set(services)
    for name in ["postgres", "redis", "web", "worker", "beat"]:
        check = services[name]["healthcheck"]
        assert check["test"] and check["interval"] and check["retries"], name
    assert "version" not in compose  # the Compose spec has no version key


def test_app_services_share_the_environment_the_settings_read(compose):
    settings_source = "".join(
        (ROOT / "omnichannel" / name).read_text()
        for name in ("settings.py", "settings_production.py")
    )
    for name in APP_SERVICES:
        env = compose["services"][name]["environment"]
        assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"} <= set(env)
        importlib.import_module(env["DJANGO_SETTINGS_MODULE"].rsplit(".", 1)[0])
        assert env["DJANGO_SETTINGS_MODULE"] == "omnichannel.settings_production"
        for variable in env:
            if variable != "DJANGO_SETTINGS_MODULE":
                assert f'"{variable}"' in settings_source, f"settings never read {variable}"
    env = compose["services"]["web"]["environment"]
    assert re.match(r"postgres://[^@]+@postgres:5432/", env["DATABASE_URL"])
    assert env["REDIS_URL"].startswith("redis://redis:6379/")
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")  # no default secret ships


def test_app_services_start_after_healthy_dependencies_and_migrations(compose):
    services = compose["services"]
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
    for name in ["web", "worker", "beat"]:
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["migrate"]["command"][-2:] == ["migrate", "--noinput"]


def test_commands_name_modules_that_exist(compose):
    services = compose["services"]
    assert services["web"]["command"][:2] == ["gunicorn", "omnichannel.wsgi"]
    importlib.import_module("omnichannel.wsgi")
    for name in ["worker", "beat"]:
        command = services[name]["command"]
        assert command[:3] == ["celery", "-A", "omnichannel"]
    from omnichannel import celery_app

    assert celery_app.main == "omnichannel"
    assert "8000:8000" in services["web"]["ports"]


def test_dockerfile_builds_the_project_on_python_3_11(compose):
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.M)
    assert "EXPOSE 8000" in dockerfile
    assert "pip install ." in dockerfile
    assert re.search(r"^USER (?!root)", dockerfile, re.M)
    for app in ["omnichannel", "catalog", "inventory", "orders", "customers", "analytics"]:
        assert f"COPY {app} " in dockerfile, app


def _gunicorn_settings(monkeypatch, **env) -> dict:
    for name in ("WEB_CONCURRENCY", "WEB_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    namespace: dict = {}
    exec((ROOT / "gunicorn.conf.py").read_text(), namespace)
    return namespace


def test_one_gunicorn_config_runs_the_web_server_everywhere(compose):
    """make run (Procfile), docker-compose, the Dockerfile and make bench all start gunicorn
    with gunicorn.conf.py, so the bench measures what is deployed."""
    assert compose["services"]["web"]["command"][2:4] == ["--config", "gunicorn.conf.py"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^COPY .*\bgunicorn\.conf\.py\b", dockerfile, re.M)
    assert '"--config", "gunicorn.conf.py"' in dockerfile.split("CMD", 1)[1]
    procfile = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert "--config gunicorn.conf.py" in procfile["web"]
    assert '"gunicorn.conf.py"' in (ROOT / "bench" / "orders.py").read_text()


def test_the_gunicorn_config_takes_the_cores_and_the_environment(monkeypatch):
    import os

    defaults = _gunicorn_settings(monkeypatch)
    assert defaults["worker_class"] == "gthread"
    assert defaults["workers"] == (os.cpu_count() or 2)
    assert defaults["threads"] == 1
    chosen = _gunicorn_settings(monkeypatch, WEB_CONCURRENCY="5", WEB_THREADS="2")
    assert (chosen["workers"], chosen["threads"]) == (5, 2)


def test_gunicorn_accepts_the_config_and_loads_the_app():
    import subprocess
    import sys

    command = [sys.executable, "-m", "gunicorn", "--check-config", "--config", "gunicorn.conf.py"]
    done = subprocess.run(
        [*command, "omnichannel.wsgi"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_images_files_collect_static_and_serve_every_page(tmp_path):
    """No Docker engine here: the files the Dockerfile copies are copied as it copies them,
    and what the image runs is run on them with the production settings: its collectstatic
    (strict about every file a static file names: the charting library named a source map
    that is not shipped, and the build failed), the deploy checks, and the templates the
    pages need (the lockout page and the admin's index were left out: a 500 in containers)."""
    import shutil
    import subprocess
    import sys

    app = tmp_path / "app"
    app.mkdir()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not line.startswith("COPY "):
            continue
        *sources, target = line.split()[1:]
        for source in sources:
            path = ROOT / source
            destination = app / (source if target.endswith("/") or target == "./" else target)
            if path.is_dir():
                shutil.copytree(path, destination, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(path, app / source)
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "DJANGO_SETTINGS_MODULE": "omnichannel.settings_production",
        "SECRET_KEY": "image-test-not-a-secret-0123456789-abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "shop.example.com",
        "VAR_DIR": str(tmp_path / "var"),
        "PYTHONPATH": str(app),
    }

    def run(*args):
        done = subprocess.run(
            [sys.executable, *args], cwd=app, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    run("manage.py", "collectstatic", "--noinput", "--verbosity", "0")
    assert (app / "staticfiles" / "staticfiles.json").exists()
    run("manage.py", "check", "--deploy", "--fail-level", "WARNING")
    shown = run(
        "-c",
        "import django; django.setup(); from django.template.loader import get_template; "
        "[get_template(name) for name in ('registration/lockout.html', 'admin/index.html', "
        "'analytics/dashboard.html')]; print('templates found')",
    )
    assert "templates found" in shown


@pytest.mark.parametrize(
    ("allowed_hosts", "host"),
    [
        ("shop.example.com,www.example.com", "shop.example.com"),
        (".example.com", "example.com"),
        ("*", "localhost"),
        ("", "localhost"),
    ],
)
def test_the_web_healthcheck_asks_as_an_allowed_host(compose, monkeypatch, allowed_hosts, host):
    """Its command runs here with urllib caught: once ALLOWED_HOSTS names the real domain,
    a request for 127.0.0.1 is a 400 (DisallowedHost) and the container never got healthy."""
    import urllib.request

    command = compose["services"]["web"]["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"]
    asked = []

    class Answer:
        status = 200

    def urlopen(request, timeout):
        asked.append((request.full_url, request.get_header("Host")))
        return Answer()

    monkeypatch.setenv("ALLOWED_HOSTS", allowed_hosts)
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(SystemExit) as ended:
        exec(command[3], {})
    assert ended.value.code == 0
    assert asked == [("http://127.0.0.1:8000/healthz", host)]
