"""Hot statements the ORM writes once per process, then runs with new values.

Building a query (filters, joins, the SELECT list, FOR UPDATE) costs 0.3-0.5 ms of CPU per
statement on the machines we measure, several times what running it costs; a ship order
spent a quarter of its CPU building the same two reads for every order. A `CompiledQuery`
keeps what the ORM wrote (the SQL, where each value goes, the database's converters) per
database, process and shape (how many values each list holds), and afterwards only binds
values. The ORM stays the one definition of the query; `tests/test_compiled_query.py` runs
each one both ways.

`build` receives placeholders and returns a `values_list()` QuerySet; each placeholder must
reach the SQL as exactly one parameter, unchanged: ints and strings compared with `=` or
`__in` (a list becomes one parameter per item). Anything else is refused when compiled.

Writes the same way: `bulk_insert` for the rows every order writes (bulk_create's SQL),
`row_update` for a stock level's new figures (update()'s SQL), and `insert_unless_taken`
for an Idempotency-Key's claim (INSERT ... ON CONFLICT DO NOTHING).
"""

import itertools
import threading
from collections.abc import Callable, Sequence

from django.core.exceptions import EmptyResultSet
from django.db import connections, transaction
from django.db.models import AutoField, QuerySet
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery, UpdateQuery

# Shapes kept per query: list lengths vary (a page of up to 200 orders), so the cache is
# bounded; beyond it, a new shape is compiled for that call and not kept.
MAX_SHAPES = 256

Value = int | str
Arg = Value | Sequence[Value]

_serial = itertools.count(1)


class Unpreparable(TypeError):
    """The query does not pass each value through as one parameter."""


def _shape_of(arg) -> tuple[int | None, type]:
    """(None, its type) for one value, (length, their type) for a list of them. Anything else
    is refused: a bool, None or a float would change the SQL the ORM writes or bind
    differently, and a value of another type than the one compiled would skip the ORM's
    conversion (a str where an int column was compiled)."""
    if isinstance(arg, int | str) and not isinstance(arg, bool):
        return None, type(arg)
    if isinstance(arg, list | tuple):
        kinds = {type(v) for v in arg}
        if len(kinds) <= 1 and kinds <= {int, str}:
            return len(arg), kinds.pop() if kinds else int
    raise Unpreparable(f"only ints, strings and lists of one of them can be bound, not {arg!r}")


def _placeholder(value: Value) -> Value:
    """A unique value of the same type. Ints stay within every integer column's range (the
    ORM drops a lookup it finds out of range: the statement would lose its parameter)."""
    n = next(_serial)
    return 2_000_000_000 + n if isinstance(value, int) else f"\x1f{n}\x1f"


class CompiledQuery:
    """One read, defined by `build` with the ORM, compiled once per shape (see above)."""

    def __init__(self, build: Callable[..., QuerySet]) -> None:
        self._build = build
        self._shapes: dict[tuple, tuple] = {}
        self._lock = threading.Lock()

    def rows(self, *args: Arg, using: str = "default") -> list[tuple]:
        """The rows `build(*args)` would return, as tuples, converted as the ORM would."""
        shapes = [_shape_of(a) for a in args]
        is_list = [length is not None for length, _ in shapes]
        shape = (using, *shapes)
        compiled = self._shapes.get(shape)
        if compiled is None:
            compiled = self._compile(args, is_list, using)
            with self._lock:
                if len(self._shapes) < MAX_SHAPES:
                    self._shapes[shape] = compiled
        sql, template, slots, converters = compiled
        if sql is None:  # an empty list where it rules out every row, as the ORM knows
            return []
        params = list(template)
        values = itertools.chain.from_iterable(
            a if many else (a,) for a, many in zip(args, is_list, strict=True)
        )
        for slot, value in zip(slots, values, strict=True):
            params[slot] = value
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if not converters:
            return rows
        converted = []
        for row in map(list, rows):
            for pos, (funcs, expression) in converters:
                value = row[pos]
                for func in funcs:
                    value = func(value, expression, connection)
                row[pos] = value
            converted.append(tuple(row))
        return converted

    def _compile(self, args, is_list, using):
        placeholders = [
            [_placeholder(v) for v in a] if many else _placeholder(a)
            for a, many in zip(args, is_list, strict=True)
        ]
        try:
            queryset = self._build(*placeholders)
            compiler = queryset.query.get_compiler(using=using)
            sql, params = compiler.as_sql()
        except EmptyResultSet:
            if not any(many and not a for a, many in zip(args, is_list, strict=True)):
                raise Unpreparable("the query matches nothing whatever the values") from None
            return None, (), [], []  # an empty list: nothing, for any other values
        except (TypeError, ValueError) as exc:  # the ORM would convert the value: a str for an int
            raise Unpreparable(f"the ORM does not take these values as they are: {exc}") from exc
        flat = list(
            itertools.chain.from_iterable(
                p if many else (p,) for p, many in zip(placeholders, is_list, strict=True)
            )
        )
        slots = []
        for placeholder in flat:
            found = [i for i, param in enumerate(params) if param == placeholder]
            if len(found) != 1 or type(params[found[0]]) is not type(placeholder):
                raise Unpreparable("each value must reach the SQL as one parameter, unchanged")
            slots.append(found[0])
        fields = [s[0] for s in compiler.select[: compiler.col_count]]
        converters = list(compiler.get_converters(fields).items())
        return sql, tuple(params), slots, converters


# Inserts: the same idea for the rows every order writes (the order, its lines and
# allocations, the ledger and outbox rows). bulk_create builds its INSERT again for each call:
# 0.07-0.1 ms of CPU per statement, five statements an order. Kept per database, model, row
# count and whether the rows bring their own primary key; bounded like the reads. One lock
# guards both write caches (these inserts and row_update's UPDATEs below).
_INSERTS: dict[tuple, tuple] = {}
_WRITES_LOCK = threading.Lock()


def _bindable(value) -> bool:
    """A value the ORM sends as one parameter, not SQL of its own (an F(), Now(), DEFAULT)."""
    return not hasattr(value, "resolve_expression")


def bulk_insert(objs: list, *, using: str = "default") -> list:
    """`Model.objects.bulk_create(objs)` for a hot insert, with what the ORM wrote the first
    time: same SQL, same values (each field's pre_save and get_db_prep_save, so auto_now and
    defaults apply), the primary key and other returned columns set on each object, and
    `_state` as bulk_create leaves it. As bulk_create: no signals, no save(); the models
    used here have none. Rows must all bring a primary key or none; a value that is an
    expression is refused (Unpreparable). Where the database cannot return inserted rows, or
    would split the rows into batches, this is bulk_create itself."""
    if not objs:
        return objs
    model = type(objs[0])
    opts = model._meta
    connection = connections[using]
    if any(type(obj) is not model for obj in objs):
        raise Unpreparable("rows of one model only")
    if opts.parents:
        raise Unpreparable("not for a multi-table inherited model")
    for obj in objs:
        if not obj._is_pk_set():
            obj.pk = opts.pk.get_pk_value_on_save(obj)
        obj._prepare_related_fields_for_save(operation_name="bulk_create")
    with_pk = {obj._is_pk_set() for obj in objs}
    if len(with_pk) > 1:
        raise Unpreparable("rows must all bring their primary key, or none")
    with_pk = with_pk.pop()
    fields = [f for f in opts.concrete_fields if not f.generated]
    if not with_pk:
        fields = [f for f in fields if not isinstance(f, AutoField)]
    if not connection.features.can_return_rows_from_bulk_insert or connection.ops.bulk_batch_size(
        fields, objs
    ) < len(objs):
        return model._base_manager.db_manager(using).bulk_create(objs)
    key = (using, model, len(objs), with_pk)
    compiled = _INSERTS.get(key)
    if compiled is None:
        compiled, params = _compile_insert(model, fields, objs, using)
        with _WRITES_LOCK:
            if len(_INSERTS) < MAX_SHAPES:
                _INSERTS[key] = compiled
    else:
        rows = [_bound_row(obj, fields, connection) for obj in objs]
        by_column = compiled[3]
        if by_column:
            params = [list(column) for column in zip(*rows, strict=True)]
        else:
            params = list(itertools.chain.from_iterable(rows))
    sql, returning, converters, _ = compiled
    with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = connection.ops.fetch_returned_insert_rows(cursor) if returning else [()] * len(objs)
    for obj, row in zip(objs, rows, strict=True):
        for pos, field in enumerate(returning):
            value = row[pos]
            for func in converters.get(pos, ((), None))[0]:
                value = func(value, converters[pos][1], connection)
            if not (with_pk and field is opts.pk):
                setattr(obj, field.attname, value)
        obj._state.adding = False
        obj._state.db = using
    return objs


def _bound_row(obj, fields, connection) -> list:
    """One row's parameters, as the ORM's INSERT binds them (pre_save, get_db_prep_save)."""
    row = []
    for field in fields:
        value = field.pre_save(obj, True)
        if not _bindable(value):
            raise Unpreparable(f"{field.name} is an expression, not a value")
        row.append(field.get_db_prep_save(value, connection=connection))
    return row


# One row unless a unique constraint already holds its values: INSERT ... ON CONFLICT DO
# NOTHING RETURNING the key, per database and model.
_CLAIMS: dict[tuple, str] = {}


def insert_unless_taken(obj, *, using: str = "default") -> bool:
    """Write `obj` (a new row, its primary key left to the database) unless a unique
    constraint already holds its values: True with the row written and its key set, False
    with nothing written. On PostgreSQL a row another transaction is writing is waited for
    (False once it commits, written if it rolls back), as create() waits; but no error is
    raised, so no savepoint is needed around it. Same values as create() (pre_save,
    get_db_prep_save); no signals, no save()."""
    model = type(obj)
    opts = model._meta
    connection = connections[using]
    features = connection.features
    if not (features.supports_ignore_conflicts and features.can_return_columns_from_insert):
        raise Unpreparable("the database cannot skip a conflict and return the new key")
    if obj._is_pk_set() or opts.parents or not isinstance(opts.pk, AutoField):
        raise Unpreparable("for a new row of a plain model whose key the database assigns")
    obj._prepare_related_fields_for_save(operation_name="save")
    fields = [f for f in opts.concrete_fields if not f.generated and f is not opts.pk]
    key = (using, model)
    sql = _CLAIMS.get(key)
    if sql is None:
        query = InsertQuery(model, on_conflict=OnConflict.IGNORE)
        query.insert_values(fields, [obj])
        compiler = query.get_compiler(using=using)
        compiler.returning_fields = [opts.pk]
        statements = compiler.as_sql()
        if len(statements) != 1 or len(statements[0][1]) != len(fields):
            raise Unpreparable("each value must reach the SQL as one parameter")
        [(sql, params)] = statements
        with _WRITES_LOCK:
            if len(_CLAIMS) < MAX_SHAPES:
                _CLAIMS[key] = sql
    else:
        params = _bound_row(obj, fields, connection)
    with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = using
    return True


def _compile_insert(model, fields, objs, using) -> tuple[tuple, list]:
    """The ORM's INSERT for these rows, checked to take one parameter per field and row,
    and the parameters it wrote for them."""
    opts = model._meta
    for obj in objs:
        for field in fields:
            if not _bindable(getattr(obj, field.attname)):
                raise Unpreparable(f"{field.name} is an expression, not a value")
    query = InsertQuery(model)
    query.insert_values(fields, objs)
    compiler = query.get_compiler(using=using)
    compiler.returning_fields = opts.db_returning_fields
    statements = compiler.as_sql()
    if len(statements) != 1:
        raise Unpreparable("the ORM writes these rows in more than one statement")
    [(sql, params)] = statements
    # One parameter per row and field, or (several rows on PostgreSQL: INSERT ... SELECT
    # FROM UNNEST) one array per field, a column of the rows.
    by_column = len(objs) > 1 and all(isinstance(p, list) and len(p) == len(objs) for p in params)
    if len(params) != (len(fields) if by_column else len(objs) * len(fields)):
        raise Unpreparable("each value must reach the SQL as one parameter")
    returning = list(opts.db_returning_fields)
    converters = compiler.get_converters([f.get_col(opts.db_table) for f in returning])
    return (sql, returning, converters, by_column), list(params)


def _same_param(written, ours) -> bool:
    """The ORM's parameter and ours are one value: equal, or the same driver adapter (a
    JSON value's wrapper, which compares by identity) around equal values."""
    if written == ours:
        return True
    return (
        type(written) is type(ours)
        and hasattr(ours, "adapted")
        and getattr(written, "adapted", None) == ours.adapted
    )


# Updates: one row by primary key, given columns, as `filter(pk=...).update(...)` writes it.
_UPDATES: dict[tuple, str] = {}


def row_update(obj, *, fields: Sequence[str], using: str = "default") -> int:
    """`type(obj).objects.filter(pk=obj.pk).update(<each field>=getattr(obj, field))`, with
    the SQL the ORM wrote the first time; the number of rows updated. As update(): no
    signals, no pre_save (set auto_now fields yourself). Values must be plain values, not
    expressions (Unpreparable)."""
    model = type(obj)
    opts = model._meta
    connection = connections[using]
    targets = [opts.get_field(name) for name in fields]
    values = []
    for field in targets:
        value = getattr(obj, field.attname)
        if not _bindable(value):
            raise Unpreparable(f"{field.name} is an expression, not a value")
        values.append(field.get_db_prep_save(value, connection=connection))
    params = [*values, opts.pk.get_db_prep_value(obj.pk, connection)]
    key = (using, model, tuple(fields))
    sql = _UPDATES.get(key)
    if sql is None:
        query = UpdateQuery(model)
        query.add_update_fields([(f, None, getattr(obj, f.attname)) for f in targets])
        query.add_filter("pk", obj.pk)
        sql, written = query.get_compiler(using=using).as_sql()
        if len(written) != len(params) or not all(map(_same_param, written, params)):
            raise Unpreparable("each value must reach the SQL as one parameter, unchanged")
        with _WRITES_LOCK:
            if len(_UPDATES) < MAX_SHAPES:
                _UPDATES[key] = sql
    with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
