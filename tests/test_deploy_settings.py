"""Production settings: `check --deploy` is clean, and nothing secret has a default."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_manage(tmp_path, *args, **env):
    child = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "REQUIRE_SERVICES", "DEBUG"}
    }
    child.update(
        {
            "DJANGO_SETTINGS_MODULE": "omnichannel.settings_production",
            "VAR_DIR": str(tmp_path),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=child,
        capture_output=True,
        text=True,
        timeout=120,
    )


def check_deploy(tmp_path, **env: str) -> subprocess.CompletedProcess:
    """`check --deploy`, failing on a warning, with production's secret key and host."""
    return run_manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="shop.example.com",
        **env,
    )


def test_production_settings_pass_check_deploy_with_no_warning(tmp_path):
    result = check_deploy(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_passes_on_postgres_and_redis_with_a_var_dir_that_cannot_be_made(tmp_path):
    """The settings made VAR_DIR at import whatever the database and broker: on a read-only
    deploy every process, the web server and `check --deploy` included, failed at import,
    though with PostgreSQL and Redis only beat keeps a file there."""
    result = check_deploy(
        tmp_path,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/omnichannel",  # check opens no session
        REDIS_URL="redis://127.0.0.1:6379/0",
        VAR_DIR="/proc/no-such-dir/var",  # cannot be made, even by root
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = run_manage(tmp_path, "check", ALLOWED_HOSTS="shop.example.com")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_mode_is_not_debug_and_health_probes_skip_the_https_redirect(tmp_path):
    probe = (
        "from django.conf import settings; import re;"
        "exempt = any(re.search(p, 'healthz') for p in settings.SECURE_REDIRECT_EXEMPT);"
        "s = settings;"
        "print(s.DEBUG, exempt, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE)"
    )
    result = run_manage(
        tmp_path,
        "shell",
        "-c",
        probe,
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="shop.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False True True True"


def test_beat_keeps_the_business_clock_and_the_file_broker_polls_briskly(tmp_path):
    """With TIME_ZONE set, beat's 03:00 is 03:00 there (it was UTC: noon in Tokyo, so the
    night's figures counted half a day). Without Redis, the file broker polls ten times a
    second (once a second, with prefetch 1 and two processes, let 2 tasks a second through:
    the heartbeat queued behind a backlog and /healthz said the worker was missing)."""
    child = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    child.update(
        DJANGO_SETTINGS_MODULE="omnichannel.settings",
        VAR_DIR=str(tmp_path),
        TIME_ZONE="Asia/Tokyo",
    )
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings as s; "
            "print(s.TIME_ZONE, s.CELERY_TIMEZONE, s.CELERY_BROKER_URL, "
            "s.CELERY_BROKER_TRANSPORT_OPTIONS['polling_interval'])",
        ],
        cwd=ROOT,
        env=child,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["Asia/Tokyo", "Asia/Tokyo", "filesystem://", "0.1"]
