"""bench.common.cpu_seconds: the machine's CPU and the services' shares, read from /proc."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, time
from bench.common import cpu_ms_per, cpu_seconds
before = cpu_seconds()
end = time.process_time() + 0.3
while time.process_time() < end:  # 0.3 s of this process's CPU
    pass
after = cpu_seconds()
print(json.dumps({"before": before, "after": after, "per": cpu_ms_per(3, before, after),
                  "none": cpu_ms_per(0, before, after)}))
"""


def test_cpu_seconds_counts_what_the_machine_spent_and_per_operation_divides_it():
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    )
    out = json.loads(done.stdout)
    if not Path("/proc/stat").exists():  # not Linux: no figures, and the table leaves them out
        assert out["before"] is None and out["per"] is None
        return
    assert set(out["before"]) == {"machine", "web", "db", "worker"}
    spent = out["after"]["machine"] - out["before"]["machine"]
    assert spent >= 0.25  # the busy loop, at the clock tick's resolution
    assert out["per"]["machine"] == pytest.approx(spent * 1000 / 3, abs=0.01)
    assert out["after"]["db"] >= out["before"]["db"] >= 0  # PostgreSQL runs here, idle or not
    assert out["none"] is None  # nothing done: no per-operation figure
