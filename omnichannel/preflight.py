"""`python -m omnichannel.preflight`: make's check of DATABASE_URL before it migrates.

A wrong DATABASE_URL (a database that does not exist, a server that does not answer, a
mistyped scheme) made migrate print some 90 lines of traceback; this prints one line, why,
and exits 1. It reads the settings and connects, without loading the apps (seconds saved on
every make run)."""

import os
import sys


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
    print((reason.strip().splitlines() or [reason])[0].strip(), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
