"""What each location served of each order, in whole cents, worked out once in SQL.

Each line is spread over its allocations (which location served how many of its units) as
`orders.pricing.spread` spreads what the line was paid (its amount less its share of the
discount) over the allocations' units: each allocation gets its share's cents rounded
down, and the cents left over go one each to the largest fractions, the first allocation
first among equals. A line's paid is whole cents, so its leftover is the sum of its
allocations' fractions, and an allocation that serves a whole line is exact: only the
allocations of lines split between locations are ranked, by a window over their line.
An order's total is what its lines were paid (orders.services), so its allocations add up
to it, and a SKU's cents over every location are what its lines were paid. Ranked over
the whole order, the spare cents of two split lines both went to the first line's
allocations: a manager of every store counted one SKU a cent up, the other a cent down.

Every figure made of these cents (a store manager's rows and totals, head office's row for
the store, the dashboard) is a sum of the same whole cents: rows add up to their totals,
and a store counts the same for its manager and for head office. Rounded per group
instead, a store's rows made 20.00 beside a total of 19.99, and head office gave the spare
cent of three equal shares to another store than the store's manager did.

Set-based, one statement per figure: the orders' query is the ORM's, as a CTE."""

from decimal import Decimal

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Case, F, QuerySet, Value, When

from omnichannel.selectors import StoreLimit
from orders.models import Allocation, OrderLine, ReturnLine
from orders.pricing import CENT


def _cents(column: str) -> str:
    """An amount column in whole cents, exactly (numeric on PostgreSQL; SQLite keeps
    amounts as floats: rounded to the cent they hold)."""
    if connection.vendor == "postgresql":
        return f"({column} * 100)"
    return f"CAST(ROUND({column} * 100) AS INTEGER)"


def _quotient(a: str, b: str) -> str:
    if connection.vendor == "postgresql":
        return f"DIV({a}, {b})"  # exact for numeric, however large
    return f"(({a}) / ({b}))"  # integers


def _remainder(a: str, b: str) -> str:
    if connection.vendor == "postgresql":
        return f"MOD({a}, {b})"
    return f"(({a}) %% ({b}))"


def _fraction(a: str, b: str) -> str:
    """a / b, for a < b: the part of a cent an allocation's floor left, to rank by."""
    if connection.vendor == "postgresql":
        return f"({a}::numeric(40, 20) / {b})"
    return f"(CAST({a} AS REAL) / {b})"


def _orders_cte(orders: QuerySet, group: dict) -> tuple[str, tuple] | None:
    """The orders asked about: `o_id`, `o_pickup` (1 for a pickup) and the grouping
    columns `g_<name>`; None when the ORM knows there are none (a filter on an empty list:
    a staff member limited to no store), a query it refuses to write (EmptyResultSet)."""
    pickup = Case(When(fulfillment="pickup", then=Value(1)), default=Value(0))
    columns = {
        "o_id": F("pk"),
        "o_pickup": pickup,
        **{f"g_{name}": value for name, value in group.items()},
    }
    try:
        sql, params = orders.order_by().values(**columns).query.sql_with_params()
    except EmptyResultSet:
        return None
    return sql, tuple(params)


def _spread_ctes(*, amount: str, whole: str, source: str, **carried: str) -> str:
    """`served`: per allocation `a` of a line `l` (joined in `source`, a FROM clause), its
    cents of `amount` (SQL, whole cents: what was paid for the line, or refunded for part of
    it) spread over the line's units: `order_id`, `location_id`, `cents`, and the columns
    named in `carried` (name: SQL). `whole` names what one amount is of (the line, a
    returned line): its allocations share it. A whole line's allocation is exact; a split
    line's go through the window, ranked among the allocations sharing that amount."""
    share = f"({amount}) * a.quantity"
    columns = "".join(f", {name}" for name in carried)
    return f"""
        base AS (
            SELECT a.id, {whole} AS whole_id, l.order_id, a.location_id,
                   l.quantity AS of_units,
                   {_quotient(share, "l.quantity")} AS cents,
                   {_remainder(share, "l.quantity")} AS remainder
                   {"".join(f", {sql} AS {name}" for name, sql in carried.items())}
              FROM {source}
        ),
        split AS (
            SELECT *, {_fraction("remainder", "of_units")} AS fraction
              FROM base WHERE remainder <> 0
        ),
        served AS (
            SELECT order_id, location_id, cents{columns} FROM base WHERE remainder = 0
            UNION ALL
            SELECT order_id, location_id, cents + CASE
                       WHEN ROW_NUMBER() OVER (
                           PARTITION BY whole_id ORDER BY fraction DESC, id
                       ) <= ROUND(SUM(fraction) OVER (PARTITION BY whole_id))
                       THEN 1 ELSE 0 END{columns}
              FROM split
        )
    """


def _served_ctes(**carried: str) -> str:
    """`served` (`_spread_ctes`): per allocation of the orders of `o` (`o`), its line
    (`l`) and itself (`a`), its cents of what its line was paid."""
    return _spread_ctes(
        amount=f"{_cents('l.line_total')} - {_cents('l.discount')}",
        whole="a.line_id",
        source=f"""{Allocation._meta.db_table} a
              JOIN {OrderLine._meta.db_table} l ON l.id = a.line_id
              JOIN o ON o.o_id = l.order_id""",
        **carried,
    )


def _within(limit: StoreLimit, column: str) -> tuple[str, tuple]:
    if limit is None:
        return "1 = 1", ()
    if not limit:
        return "1 = 0", ()
    ids = sorted(limit)
    return f"{column} IN ({', '.join(['%s'] * len(ids))})", tuple(ids)


def _rows(sql: str, params: tuple, names: list[str]) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        row["revenue"] = Decimal(int(row["revenue"] or 0)) * CENT
    return rows


def served_by_order(orders: QuerySet, *, limit: StoreLimit, group: dict) -> list[dict]:
    """`orders` grouped by the expressions of `group` (name: expression on Order), each
    group with its `orders`, `pickups` and `revenue`: the cents its orders' allocations at
    the limit's locations were given (every allocation without a limit: the orders'
    totals). An order the limit's stores took but served none of counts with 0.00."""
    asked = _orders_cte(orders, group)
    if asked is None:  # no orders: no rows
        return []
    orders_sql, orders_params = asked
    where, where_params = _within(limit, "location_id")
    keys = ", ".join(f"o.g_{name}" for name in group)
    sql = f"""
        WITH o AS ({orders_sql}), {_served_ctes()},
        mine AS (
            SELECT order_id, SUM(cents) AS cents FROM served WHERE {where} GROUP BY order_id
        )
        SELECT {keys}, COUNT(*), SUM(o.o_pickup), COALESCE(SUM(mine.cents), 0)
          FROM o LEFT JOIN mine ON mine.order_id = o.o_id
         GROUP BY {keys}
         ORDER BY {keys}
    """
    return _rows(sql, orders_params + where_params, [*group, "orders", "pickups", "revenue"])


def served_by_location(orders: QuerySet, *, limit: StoreLimit, currency) -> list[dict]:
    """`orders` per location that served them (of the limit's) and currency: `key` (the
    location's code), `currency`, `orders` (an order counts once at each location that
    served part of it) and `revenue` (the cents it was given of them)."""
    from omnichannel.models import Location

    asked = _orders_cte(orders, {"currency": currency})
    if asked is None:  # no orders: no rows
        return []
    orders_sql, orders_params = asked
    where, where_params = _within(limit, "location_id")
    sql = f"""
        WITH o AS ({orders_sql}), {_served_ctes(currency="o.g_currency")}
        SELECT location.code, mine.currency, mine.orders, mine.cents
          FROM (
            SELECT location_id, currency, COUNT(DISTINCT order_id) AS orders,
                   SUM(cents) AS cents
              FROM served WHERE {where}
             GROUP BY location_id, currency
          ) mine
          JOIN {Location._meta.db_table} location ON location.id = mine.location_id
         ORDER BY location.code, mine.currency
    """
    return _rows(sql, orders_params + where_params, ["key", "currency", "orders", "revenue"])


def served_by_sku(orders: QuerySet, *, limit: StoreLimit, currency, top: int) -> list[dict]:
    """The `top` SKUs by the cents the limit's locations were given for them, per SKU and
    currency: `sku`, `currency`, `revenue`, `units`, `variant` (the latest variant sold
    under the SKU)."""
    asked = _orders_cte(orders, {"currency": currency})
    if asked is None:  # no orders: no rows
        return []
    orders_sql, orders_params = asked
    where, where_params = _within(limit, "location_id")
    ctes = _served_ctes(
        currency="o.g_currency", sku="l.sku", variant="l.variant_id", units="a.quantity"
    )
    sql = f"""
        WITH o AS ({orders_sql}), {ctes}
        SELECT sku, currency, SUM(cents), SUM(units), MAX(variant)
          FROM served
         WHERE {where}
         GROUP BY sku, currency
         ORDER BY SUM(cents) DESC, sku, currency
         LIMIT %s
    """
    names = ["sku", "currency", "revenue", "units", "variant"]
    return _rows(sql, orders_params + where_params + (top,), names)


def refunded_by_currency(returns: QuerySet, *, limit: StoreLimit) -> dict[str, Decimal]:
    """What `returns` (Return rows) gave back for the goods (the worth each returned line
    recorded), per currency of their orders, counted at the limit's locations: each
    returned line's refund goes to the locations that served its line, all of it when one
    served the whole line, and for a line split between locations spread over their units
    (which units came back is not recorded) in whole cents, as the line's revenue is. So a
    store's refunds stand beside its revenue, and the stores' refunds add up to the
    returns' to the cent (each store's share summed and rounded apart, a 9.99 line back
    whole made 5.00 at each of its two stores, 10.00)."""
    try:
        returns_sql, returns_params = (
            returns.order_by()
            .values(r_id=F("pk"), r_currency=F("order__currency"))
            .query.sql_with_params()
        )
    except EmptyResultSet:  # no returns (a staff member limited to no store)
        return {}
    where, where_params = _within(limit, "location_id")
    ctes = _spread_ctes(
        amount=_cents("rl.refund"),
        whole="rl.id",
        source=f"""{ReturnLine._meta.db_table} rl
              JOIN r ON r.r_id = rl.ret_id
              JOIN {OrderLine._meta.db_table} l ON l.id = rl.line_id
              JOIN {Allocation._meta.db_table} a ON a.line_id = l.id""",
        currency="r.r_currency",
    )
    sql = f"""
        WITH r AS ({returns_sql}), {ctes}
        SELECT currency, SUM(cents) FROM served WHERE {where} GROUP BY currency
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, tuple(returns_params) + where_params)
        return {currency: Decimal(int(cents or 0)) * CENT for currency, cents in cursor}
