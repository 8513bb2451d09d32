"""Hot reads the ORM writes once per process, then runs with new values.

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
"""

import itertools
import threading
from collections.abc import Callable, Sequence

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import QuerySet

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
