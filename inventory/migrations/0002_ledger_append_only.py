"""The movement ledger is append-only, enforced by the database itself (not only by Python).

PostgreSQL (production) refuses any row UPDATE or DELETE. TRUNCATE stays possible: it is the
table owner's maintenance statement, never issued by the application, and Django's test flush
uses it. The SQLite fallback (a newcomer's laptop) refuses UPDATE; DELETE stays possible there
because Django flushes SQLite test databases with DELETE.
"""

from django.db import migrations

TABLE = "inventory_stockmovement"

POSTGRES_UP = f"""
CREATE OR REPLACE FUNCTION inventory_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the stock movement ledger is append-only (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER inventory_ledger_no_update BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION inventory_ledger_append_only();
"""
POSTGRES_DOWN = f"""
DROP TRIGGER IF EXISTS inventory_ledger_no_update ON {TABLE};
DROP FUNCTION IF EXISTS inventory_ledger_append_only();
"""
SQLITE_UP = [
    f"""CREATE TRIGGER inventory_ledger_no_update BEFORE UPDATE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'the stock movement ledger is append-only'); END;""",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS inventory_ledger_no_update;",
]


def up(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_UP, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for sql in SQLITE_UP:
            schema_editor.execute(sql)


def down(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_DOWN, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for sql in SQLITE_DOWN:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("inventory", "0001_stock_and_ledger")]
    operations = [migrations.RunPython(up, down)]
