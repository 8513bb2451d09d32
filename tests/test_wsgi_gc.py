"""The web process tunes Python's garbage collector when it loads (omnichannel/wsgi.py)."""

import os
import subprocess
import sys

PROBE = "import gc, omnichannel.wsgi; print(gc.get_threshold(), gc.get_freeze_count() > 10000)"


def probe(**env) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_the_web_process_freezes_what_it_loaded_and_collects_less_often():
    assert probe() == "(20000, 50, 100) True"


def test_the_tuning_can_be_turned_off():
    assert probe(WEB_GC_TUNING="false") == "(700, 10, 10) False"
