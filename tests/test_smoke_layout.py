from django.apps import apps


def test_every_domain_app_is_installed():
    installed = {config.name for config in apps.get_app_configs()}
    assert {"omnichannel", "catalog", "inventory", "orders", "customers", "analytics"} <= installed


def test_every_environment_variable_the_code_reads_is_in_the_readme():
    """The README's configuration table had left out eleven of the variables the settings
    read (CSRF_TRUSTED_ORIGINS, which docker-compose sets, TIME_ZONE, WEB_PORT...)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sources = [
        "omnichannel/settings.py",
        "omnichannel/settings_production.py",
        "omnichannel/wsgi.py",
        "gunicorn.conf.py",
        "Procfile",
    ]
    readers = [
        r"(?:env|Env\(\))\.\w+\(\s*\"([A-Z][A-Z0-9_]+)\"",  # django-environ
        r"environ(?:\.get\(|\.setdefault\(|\[)\s*\"([A-Z][A-Z0-9_]+)\"",  # os.environ
        r"\$\{([A-Z][A-Z0-9_]+):-",  # the Procfile's shell
    ]
    read = set()
    for name in sources:
        text = (root / name).read_text()
        for reader in readers:
            read |= set(re.findall(reader, text))
    assert {"DATABASE_URL", "VAR_DIR", "TIME_ZONE", "WEB_PORT", "WEB_CONCURRENCY"} <= read
    table = {
        name
        for line in (root / "README.md").read_text().splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])
    }
    assert sorted(read - table) == []
