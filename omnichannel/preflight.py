"""`python -m omnichannel.preflight`: make's check of DATABASE_URL before it migrates.

A wrong DATABASE_URL (a database that does not exist, a server that does not answer, a
mistyped scheme) made migrate print some 90 lines of traceback; this prints one line, why,
and exits 1. It reads the settings and connects, without loading the apps (seconds saved on
every make run). The line never shows the URL's password, whatever the message quotes."""

import os
import sys
from urllib.parse import unquote


def _password_of(url: str) -> str:
    """The password in url, found by hand: a mistyped URL (`postgres:pw@host`,
    `//user:pw@host`) does not parse as one."""
    if "@" not in url:
        return ""
    userinfo = url.rpartition("@")[0]
    if "//" in userinfo:  # after `scheme://`, or a mistyped `scheme//`
        return userinfo.rpartition("//")[2].partition(":")[2]
    return userinfo.rpartition(":")[2]  # `postgres:pw@host`, `postgres:/user:pw@host`


def _without_password(text: str, url: str) -> str:
    password = _password_of(url)
    for secret in {password, unquote(password)} - {""}:
        text = text.replace(secret, "***")
    return text


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "omnichannel.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.db import DatabaseError, connection

    try:
        connection.ensure_connection()
    except ImproperlyConfigured as exc:  # the settings' refusal, a driver Django cannot load
        reason = str(exc)
    except DatabaseError as exc:
        reason = f"DATABASE_URL: no connection: {exc}"
    else:
        connection.close()
        return 0
    reason = _without_password(reason, os.environ.get("DATABASE_URL", ""))
    print((reason.strip().splitlines() or [reason])[0].strip(), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
