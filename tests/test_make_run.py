"""`make run` and its Procfile, run as real processes on a scratch VAR_DIR."""

import fcntl
import os
import signal
import subprocess
import sys
import termios
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _procfile_command(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} in the Procfile")


# What a make running the suite (make test) hands its children: a make started with them is a
# sub-make, which says "make[1]: ***" where a user's says "make: ***".
_MAKE_VARIABLES = (
    "MAKEFLAGS",
    "MAKELEVEL",
    "MFLAGS",
    "MAKEOVERRIDES",
    "MAKE_TERMOUT",
    "MAKE_TERMERR",
)


def _env(**values: str) -> dict:
    """The environment of a user's shell: none of the suite's settings, nor the make that may
    be running the suite."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "PYTEST")) and k not in _MAKE_VARIABLES
    }
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


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has stopped; its parent has not reaped it


def _on_a_terminal(
    command: list[str], cwd: Path, *, ignore_hangup: bool = False
) -> tuple[subprocess.Popen, int]:
    """Starts command as the session leader of a new terminal (a pty), as a login shell's
    job is (`ignore_hangup`: as `nohup` starts it); closing the returned master end hangs
    that terminal up."""
    master, slave = os.openpty()

    def take_the_terminal():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        if ignore_hangup:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

    process = subprocess.Popen(
        command,
        cwd=cwd,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=take_the_terminal,
    )
    os.close(slave)
    return process, master


@contextmanager
def _honcho_on_a_terminal(tmp_path: Path, *, ignore_hangup: bool = False):
    """honcho_start running two sleepers on a terminal: yields (runner, the terminal's
    master end, the sleepers' pids); whatever is left running is killed afterwards."""
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        "".join(f"{name}: echo $$ > {tmp_path}/{name}.pid; exec sleep 300\n" for name in "ab")
    )
    runner, master = _on_a_terminal(
        [sys.executable, "-m", "omnichannel.honcho_start", "-f", str(procfile)],
        ROOT,
        ignore_hangup=ignore_hangup,
    )
    terminal = {"master": master}
    pids = []
    try:
        deadline = time.monotonic() + 15
        while len(pids) < 2 and time.monotonic() < deadline:
            pids = [int(p.read_text()) for p in tmp_path.glob("*.pid") if p.read_text().strip()]
            time.sleep(0.1)
        assert len(pids) == 2, "the processes did not start"
        yield runner, terminal, pids
    finally:
        if terminal["master"] is not None:
            os.close(terminal["master"])
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def _hang_up(terminal: dict) -> None:
    os.close(terminal["master"])
    terminal["master"] = None


def test_a_closed_terminal_stops_every_process_honcho_started(tmp_path):
    """A closed terminal or a dropped SSH session (SIGHUP) killed honcho alone: gunicorn, the
    worker and beat, each in a session of its own, ran on, orphaned."""
    with _honcho_on_a_terminal(tmp_path) as (runner, terminal, pids):
        _hang_up(terminal)
        deadline = time.monotonic() + 10  # honcho's SIGTERM, its SIGKILL 5 s later
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in pids if _alive(pid)] == [], "left running after the hang-up"
        runner.wait(timeout=10)


def test_a_nohup_run_survives_the_closed_terminal(tmp_path):
    """`nohup make run &` ignores SIGHUP so that a logout stops nothing; honcho_start turned
    the inherited SIG_IGN into its SIGHUP-is-SIGTERM and stopped every process."""
    with _honcho_on_a_terminal(tmp_path, ignore_hangup=True) as (runner, terminal, pids):
        _hang_up(terminal)
        time.sleep(3)
        assert runner.poll() is None, f"the nohup'd run stopped (rc={runner.returncode})"
        assert [pid for pid in pids if not _alive(pid)] == [], "stopped by the hang-up"


def test_a_second_make_run_stops_before_migrating_while_one_runs(tmp_path):
    """A second `make run` beside a live one migrated, re-seeded the demo stock under its
    sales and started a second worker and beat, then failed on the port ~20 s in."""
    var = tmp_path / "var"
    var.mkdir()
    lock = var / "run.lock"
    with open(lock, "a") as held:  # the first run's lock, as its recipe takes it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write_text("4242\n")
        env = _env(VAR_DIR=str(var), DATABASE_URL=f"sqlite:///{var}/db.sqlite3", WEB_PORT="8299")
        second = subprocess.Popen(
            # -o: the test's venv is installed; make must not reinstall it
            ["make", "--no-print-directory", "-o", ".venv/.installed", "run"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = second.communicate(timeout=30)
        finally:
            if second.poll() is None:
                os.killpg(second.pid, signal.SIGKILL)
                second.wait()
    assert second.returncode != 0, output
    assert "make run is already running here (pid 4242)" in output
    assert "migrate" not in output
    assert not (var / "db.sqlite3").exists()


@pytest.mark.parametrize(
    "database_url, reason",
    [
        ("postgres://postgres@127.0.0.1:1/omnichannel", "DATABASE_URL: no connection: "),
        ("postgress://postgres@127.0.0.1:5432/omnichannel", "DATABASE_URL: postgress:// is not"),
    ],
    ids=["server-not-answering", "mistyped-scheme"],
)
def test_make_migrate_says_in_one_line_why_a_wrong_database_url_fails(
    tmp_path, database_url, reason
):
    """migrate printed some 90 lines of traceback; the pre-flight check says why in one."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "migrate"],
        cwd=ROOT,
        env=_env(VAR_DIR=str(tmp_path), DATABASE_URL=database_url, PYTHONWARNINGS="ignore"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "manage.py migrate" not in done.stdout
    said = [line for line in done.stderr.splitlines() if not line.startswith("make: ***")]
    assert len(said) == 1 and said[0].startswith(reason), done.stderr


def _preflight(tmp_path: Path, database_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "omnichannel.preflight"],
        cwd=ROOT,
        env=_env(VAR_DIR=str(tmp_path), DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_pre_flight_check_passes_a_database_it_can_use_silently(tmp_path):
    done = _preflight(tmp_path, f"sqlite:///{tmp_path}/db.sqlite3")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


SECRET = "S3cretPw"


@pytest.mark.parametrize(
    "database_url",
    [
        f"//postgres:{SECRET}@127.0.0.1:5432/omnichannel",
        f"postgres//postgres:{SECRET}@127.0.0.1:5432/omnichannel",
        f"postgres:{SECRET}@127.0.0.1:5432/omnichannel",
        f"postgres:/postgres:{SECRET}@127.0.0.1:5432/omnichannel",
    ],
    ids=["no-scheme", "no-colon", "no-slashes", "one-slash"],
)
def test_the_pre_flight_check_never_prints_the_password_of_a_url_missing_its_scheme(
    tmp_path, database_url
):
    """django-environ's warning printed the parsed URL, password included, and a URL without
    its `//` was read as a database named after the rest, which the server's error quoted."""
    done = _preflight(tmp_path, database_url)
    assert done.returncode == 1
    assert SECRET[1:] not in done.stdout + done.stderr, done.stderr  # the S may read as a path
    assert done.stderr.startswith("DATABASE_URL is not a PostgreSQL or SQLite URL"), done.stderr


def test_the_pre_flight_check_says_in_one_line_why_a_port_that_is_no_number_fails(tmp_path):
    """It printed a ValueError's traceback."""
    done = _preflight(tmp_path, f"postgres://postgres:{SECRET}@127.0.0.1:54x32/omnichannel")
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("DATABASE_URL: postgres:// URL cannot be read"), done.stderr
    assert SECRET not in done.stderr


def test_the_pre_flight_check_masks_the_password_in_whatever_the_error_quotes():
    from omnichannel.preflight import _without_password

    quoted = f'FATAL:  database "{SECRET}@127.0.0.1:5432/omnichannel" does not exist'
    url = f"postgres:{SECRET}@127.0.0.1:5432/omnichannel"
    assert _without_password(quoted, url) == (
        'FATAL:  database "***@127.0.0.1:5432/omnichannel" does not exist'
    )
    url = "postgres://postgres:p%40ss@127.0.0.1/x"
    assert _without_password('user "postgres", p@ss', url) == 'user "postgres", ***'
