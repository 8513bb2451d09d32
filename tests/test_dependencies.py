"""pyproject's runtime dependencies against what the code imports, read from the installed
packages' metadata (no network).

`make run` installs only [project].dependencies (`pip install -e .`), and so does the
Dockerfile (`pip install .`); the test venv has the dev extras on top, which can hide a
missing runtime package (pytest brings `packaging`)."""

import re
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent

# Extras of a dependency the code needs, and why.
EXTRAS_RELIED_ON = {
    # REDIS_URL selects omnichannel.broker, built on kombu.transport.redis, which imports
    # `packaging` (and redis): kombu declares both only under its `redis` extra.
    "kombu": "redis",
}


def _name(requirement: Requirement) -> str:
    return re.sub(r"[-_.]+", "-", requirement.name).lower()


def _extra_only(requirement: Requirement, extra: str) -> bool:
    marker, env = requirement.marker, default_environment()
    return (
        marker is not None
        and marker.evaluate({**env, "extra": extra})
        and not marker.evaluate({**env, "extra": ""})
    )


def _installed_closure(requirements: list[str]) -> set[str]:
    """The names pip installs for these requirements, extras followed."""
    env = default_environment()
    seen: set[tuple[str, frozenset]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        key = (_name(requirement), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = distribution(requirement.name).requires or []
        except PackageNotFoundError:  # a platform's dependency (tzdata on Windows)
            continue
        for raw in requires:
            sub = Requirement(raw)
            extras = requirement.extras or {""}
            if sub.marker is None or any(
                sub.marker.evaluate({**env, "extra": extra}) for extra in extras
            ):
                todo.append(sub)
    return {name for name, _ in seen}


def test_runtime_dependencies_install_what_the_redis_broker_transport_imports():
    """With REDIS_URL a runtime-only install (make run, the Docker image) lacked `packaging`:
    the seed's last sync, the worker and beat died with ModuleNotFoundError."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    installed = _installed_closure(declared)
    for package, extra in EXTRAS_RELIED_ON.items():
        needed = {
            _name(Requirement(raw))
            for raw in distribution(package).requires or []
            if _extra_only(Requirement(raw), extra)
        }
        assert needed, f"{package} has no requirement under its {extra!r} extra any more"
        assert sorted(needed - installed) == [], f"{package}[{extra}] needs them"
