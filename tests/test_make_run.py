"""`make run` and its Procfile, run as real processes on a scratch VAR_DIR."""

import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _procfile_command(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} in the Procfile")


def _env(**values: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
    env.update(DJANGO_SETTINGS_MODULE="omnichannel.settings", **values)
    return env


@pytest.mark.postgres
@pytest.mark.redis
def test_beat_starts_on_postgres_and_redis_with_no_var_dir_yet(settings, tmp_path):
    """A fresh checkout has no var/. The settings made it only for the SQLite file or the
    file broker, so with DATABASE_URL and REDIS_URL beat died on its schedule file
    (FileNotFoundError: 'var/celerybeat-schedule.dat') and honcho stopped everything."""
    if not (settings.USING_POSTGRES and settings.USING_REDIS):
        pytest.fail("needs PostgreSQL and Redis, as make run is given them: CI has both")
    fresh = tmp_path / "var"
    urls = {name: os.environ[name] for name in ["DATABASE_URL", "REDIS_URL"]}
    env = _env(VAR_DIR=str(fresh), **urls)
    with open(tmp_path / "beat.log", "w+") as log:  # a file: a traceback overflows a pipe
        beat = subprocess.Popen(
            ["/bin/sh", "-c", _procfile_command("beat")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and beat.poll() is None:
                if any(fresh.glob("celerybeat-schedule*")):
                    break
                time.sleep(0.2)
            alive = beat.poll() is None
        finally:
            if beat.poll() is None:
                os.killpg(beat.pid, 15)
            beat.wait(timeout=20)
            log.seek(0)
            tail = "\n".join(log.read().splitlines()[-6:])
    assert alive, f"beat exited (rc={beat.returncode}) on a fresh VAR_DIR:\n{tail}"
    assert any(fresh.glob("celerybeat-schedule*")), f"beat wrote no schedule:\n{tail}"
