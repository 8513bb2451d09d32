"""The nightly jobs: RFM scores and segments, cohort retention, (CLV when fitted). Each stage
is set-based SQL over all channels' orders, replaces what it computed before, and is
recorded in a NightlyRun. Running a date twice gives the same rows."""

import logging
import time
from datetime import date, timedelta

from django.db import Error as DatabaseBroken
from django.db import connection, transaction
from django.utils import timezone

from .models import CohortRetention, MemberScore, NightlyRun

log = logging.getLogger(__name__)

HANDED_OVER = ("completed", "picked_up", "shipped")


def _days_between(later: str, earlier: str) -> str:
    if connection.vendor == "postgresql":
        return f"({later})::date - ({earlier})::date"
    return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"


def _month_index(day: str) -> str:
    if connection.vendor == "postgresql":
        return f"(EXTRACT(YEAR FROM {day})::int * 12 + EXTRACT(MONTH FROM {day})::int)"
    return (
        f"(CAST(strftime('%%Y', {day}) AS INTEGER) * 12 + CAST(strftime('%%m', {day}) AS INTEGER))"
    )


def _month_start(day: str) -> str:
    if connection.vendor == "postgresql":
        return f"date_trunc('month', {day})::date"
    return f"date({day}, 'start of month')"


def _local_date(column: str) -> str:
    """The date of a timestamp in the business's TIME_ZONE (the `%(tz)s` parameter), as
    the sales figures and the dashboard count days: an order at 23:30 local time is that
    day's, whatever the UTC date."""
    if connection.vendor == "postgresql":
        return f"({column} AT TIME ZONE %(tz)s)::date"
    return f"django_datetime_cast_date({column}, %(tz)s, 'UTC')"  # Django's SQLite function


def _purchase_days_sql() -> str:
    """One row per member and day with a purchase (all channels), and that day's spend:
    what its orders came to less what their goods brought back were worth (the returns'
    lines' `refund`, as the tier job and the sales figures count them). Like an order's
    status, its returns are read as they stand when the job runs: the coat bought last
    week and brought back today is out of tonight's run for yesterday. A day whose goods
    all came back is no purchase (a refunded coat counted as a second purchase day and
    750.00 of spend); a day of free goods kept still is, as before. Same-day
    purchases are one purchase, as the CLV models count them. Its channel is `store` for a
    sale at a till (POS), `web` for every online channel (the web shop, a marketplace), and
    `store` for a day of both, counting the orders of which something was kept.
    Parameters: as_of (a date) and tz (TIME_ZONE, see `_params`)."""
    statuses = ", ".join(f"'{s}'" for s in HANDED_OVER)
    day = _local_date("o.created_at")
    kept = "o.total - COALESCE(r.returned, 0)"
    # An order's channel, when something of it was kept (or nothing came back); else null.
    channel = (
        f"CASE WHEN {kept} > 0 OR r.returned IS NULL"
        " THEN CASE WHEN c.kind = 'pos' THEN 'store' ELSE 'web' END END"
    )
    return f"""
        SELECT o.member_id AS member_id, {day} AS day, SUM({kept}) AS spend,
               MIN({channel}) AS channel
          FROM orders_order o JOIN omnichannel_channel c ON c.id = o.channel_id
          LEFT JOIN (
              SELECT ret.order_id, SUM(rl.refund) AS returned
                FROM orders_return ret JOIN orders_returnline rl ON rl.ret_id = ret.id
               GROUP BY ret.order_id
          ) r ON r.order_id = o.id
         WHERE o.member_id IS NOT NULL AND o.status IN ({statuses})
           AND {day} <= %(as_of)s
         GROUP BY o.member_id, {day}
        HAVING MIN({channel}) IS NOT NULL
    """


def _params(as_of: date) -> dict:
    from django.conf import settings

    return {"as_of": as_of, "tz": settings.TIME_ZONE}


def _score(column: str, *, order: str = "") -> str:
    """A 1-5 score from where the member's figure stands among everyone's: its mid-rank
    quantile (half of the ties counted below it), in fifths. Equal figures get equal scores,
    whatever the members' ids; a lone member stands in the middle (3)."""
    window = f"OVER (ORDER BY {column} {order})"
    quantile = f"((RANK() {window} - 1) + (CUME_DIST() {window} * COUNT(*) OVER ())) / 2.0"
    fifths = f"5 * {quantile} / COUNT(*) OVER ()"  # in [0, 5): the quantile is under 1
    if connection.vendor == "postgresql":
        return f"1 + FLOOR({fifths})::int"
    return f"1 + CAST({fifths} AS INTEGER)"  # SQLite truncates, which is floor here


def _replace_alone(model) -> None:
    """A stage replaces every row of its table: two runs at once (a redelivered task beside
    `run_nightly`) take turns at it. Without this the second one's delete missed the rows
    the first had just written, and its insert failed on their keys. Readers are not held
    up (SHARE ROW EXCLUSIVE stops writers only); SQLite writes one at a time anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {model._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")


def _rfm_rows_sql() -> str:
    """The RFM stage's rows, one per member, in the columns of `RFM_COLUMNS`: quintile
    scores and a segment (parameters as `_purchase_days_sql`)."""
    recency = _days_between("%(as_of)s", "p.last_day")
    return f"""
        WITH days AS ({_purchase_days_sql()}),
        per_member AS (
            SELECT member_id, MIN(day) AS first_day, MAX(day) AS last_day,
                   COUNT(*) AS frequency, AVG(spend) AS monetary
              FROM days GROUP BY member_id
        ),
        first_channel AS (
            SELECT d.member_id, MIN(d.channel) AS channel
              FROM days d JOIN per_member p ON p.member_id = d.member_id AND d.day = p.first_day
             GROUP BY d.member_id
        ),
        scored AS (
            SELECT p.*, {recency} AS recency_days,
                   {_score("p.last_day")} AS r_score,
                   -- One purchase day is no habit: a one-time buyer is never loyal.
                   CASE WHEN p.frequency = 1 THEN 1 ELSE {_score("p.frequency")} END
                       AS f_score,
                   {_score("p.monetary")} AS m_score
              FROM per_member p
        )
        SELECT s.member_id, %(as_of)s, s.first_day, s.last_day, s.recency_days, s.frequency,
               ROUND(s.monetary, 2), s.r_score, s.f_score, s.m_score,
               CASE
                   WHEN s.r_score >= 4 AND s.f_score >= 4 THEN 'champions'
                   WHEN s.r_score >= 4 AND s.f_score <= 1 THEN 'new'
                   WHEN s.r_score >= 3 AND s.f_score >= 3 THEN 'loyal'
                   WHEN s.r_score <= 2 AND s.f_score >= 3 THEN 'at_risk'
                   WHEN s.r_score <= 2 THEN 'hibernating'
                   ELSE 'promising'
               END,
               f.channel
          FROM scored s JOIN first_channel f ON f.member_id = s.member_id
    """


RFM_COLUMNS = (
    "member_id, as_of, first_purchase, last_purchase, recency_days, frequency, monetary, "
    "r_score, f_score, m_score, segment, first_channel"
)


def rfm_stage(*, as_of: date) -> int:
    """RFM per member with quintile scores and a segment, in one INSERT ... SELECT."""
    sql = f"INSERT INTO analytics_memberscore ({RFM_COLUMNS}) {_rfm_rows_sql()}"
    with transaction.atomic():
        _replace_alone(MemberScore)
        MemberScore.objects.all().delete()
        with connection.cursor() as cursor:
            cursor.execute(sql, _params(as_of))
    return MemberScore.objects.count()


def _cohort_rows_sql() -> str:
    """The cohort stage's rows, in the columns of `COHORT_COLUMNS`: per monthly cohort (by
    first purchase) and first channel, the members active each month since."""
    return f"""
        WITH days AS ({_purchase_days_sql()}),
        firsts AS (
            SELECT d.member_id, MIN(d.day) AS first_day FROM days d GROUP BY d.member_id
        ),
        cohorts AS (
            SELECT f.member_id, {_month_start("f.first_day")} AS cohort,
                   {_month_index("f.first_day")} AS cohort_index, MIN(d.channel) AS channel
              FROM firsts f JOIN days d ON d.member_id = f.member_id AND d.day = f.first_day
             GROUP BY f.member_id, f.first_day
        ),
        activity AS (
            SELECT DISTINCT c.member_id, c.cohort, c.channel,
                   {_month_index("d.day")} - c.cohort_index AS months_since
              FROM cohorts c JOIN days d ON d.member_id = c.member_id
        ),
        sizes AS (
            SELECT cohort, channel, COUNT(*) AS members FROM cohorts GROUP BY cohort, channel
        )
        SELECT %(as_of)s, a.cohort, a.channel, a.months_since, s.members, COUNT(*)
          FROM activity a JOIN sizes s ON s.cohort = a.cohort AND s.channel = a.channel
         GROUP BY a.cohort, a.channel, a.months_since, s.members
    """


COHORT_COLUMNS = "as_of, cohort, first_channel, months_since, members, active"


def cohort_stage(*, as_of: date) -> int:
    """Monthly cohorts by first purchase and first channel: who bought again, month by month."""
    sql = f"INSERT INTO analytics_cohortretention ({COHORT_COLUMNS}) {_cohort_rows_sql()}"
    with transaction.atomic():
        _replace_alone(CohortRetention)
        CohortRetention.objects.all().delete()
        with connection.cursor() as cursor:
            cursor.execute(sql, _params(as_of))
    return CohortRetention.objects.count()


def _clv_rows_sql() -> str:
    """What the CLV stage fits on: every member's purchase days and their spend."""
    return f"SELECT member_id, day, spend FROM ({_purchase_days_sql()}) AS days"


def clv_stage(*, as_of: date) -> tuple[int, dict]:
    """BG/NBD and Gamma-Gamma fitted on every member's purchase days (all channels), then per
    member: expected purchases in the next 90 days, P(alive) and 12-month discounted CLV,
    written onto the RFM rows. Vectorised over members (analytics.clv)."""
    import numpy as np
    from django.conf import settings

    from . import clv

    with connection.cursor() as cursor:
        cursor.execute(_clv_rows_sql(), _params(as_of))
        rows = cursor.fetchall()
    if not rows:
        return 0
    ids = np.array([row[0] for row in rows])
    days = np.array([row[1] for row in rows], dtype="datetime64[D]")
    spend = np.array([float(row[2]) for row in rows])
    summary = clv.summarise(ids, days, spend, calibration_end=as_of)
    try:
        bgnbd = clv.bgnbd_fit(summary.x, summary.t_x, summary.T)
        gg = clv.gamma_gamma_fit(summary.x, summary.m)
    except clv.FitError as exc:
        raise StageSkipped(f"not enough history to fit CLV: {exc}") from exc
    # A fit on little history can make a member's figure 0 * inf: numpy warns, the figure is
    # NaN, and it is left empty and counted below (`clv_not_finite`), not a warning per run.
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        expected = clv.bgnbd_expected_purchases(bgnbd, 90 / 7, summary.x, summary.t_x, summary.T)
        alive = clv.bgnbd_p_alive(bgnbd, summary.x, summary.t_x, summary.T)
        try:
            value = clv.clv(
                bgnbd,
                gg,
                summary.x,
                summary.t_x,
                summary.T,
                summary.m,
                months=12,
                monthly_discount=settings.CLV_MONTHLY_DISCOUNT,
            )
        except ValueError as exc:  # the fitted spend has no finite mean (Gamma-Gamma q <= 1)
            raise StageSkipped(f"the fitted Gamma-Gamma gives no finite spend: {exc}") from exc
    finite = np.isfinite(expected) & np.isfinite(alive) & np.isfinite(value)
    if not finite.any():
        raise StageSkipped(f"the fitted BG/NBD is degenerate ({bgnbd}): no finite CLV")
    keep = finite  # a non-finite figure is left empty, and counted
    written = _write_clv(
        summary.customer_ids[keep].tolist(),
        np.round(expected[keep], 4).tolist(),
        np.round(alive[keep], 4).tolist(),
        [round(v, 2) for v in value[keep].tolist()],
    )
    fitted = {
        "bgnbd": bgnbd.__dict__,
        "gamma_gamma": gg.__dict__,
        "clv_not_finite": int((~finite).sum()),
    }
    return written, fitted


def _write_clv(member_ids, expected, alive, value) -> int:
    """Set the CLV columns of the members' RFM rows: one UPDATE over arrays on PostgreSQL
    (100,000 members in well under a second), chunked UPDATE ... FROM VALUES elsewhere."""
    table = MemberScore._meta.db_table
    columns = "expected_purchases_90d = v.e, p_alive = v.p, clv_12m = v.c"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} s SET {columns} FROM unnest(%s::bigint[], %s::float8[], "
                f"%s::float8[], %s::numeric[]) AS v(id, e, p, c) WHERE s.member_id = v.id",
                [member_ids, expected, alive, value],
            )
            return cursor.rowcount
        written = 0
        rows = list(zip(member_ids, expected, alive, value, strict=True))
        for start in range(0, len(rows), 5000):
            chunk = rows[start : start + 5000]
            cursor.execute(
                f"WITH v (id, e, p, c) AS (VALUES {', '.join(['(%s, %s, %s, %s)'] * len(chunk))}) "
                f"UPDATE {table} SET {columns} FROM v "
                f"WHERE {table}.member_id = v.id",
                [x for row in chunk for x in row],
            )
            # Some SQLite builds report -1 for an UPDATE led by a WITH: every member here
            # has its RFM row (both read the same purchase days), so the chunk was written.
            written += cursor.rowcount if cursor.rowcount >= 0 else len(chunk)
        return written


class StageSkipped(Exception):
    """A stage that cannot run on this data (not an error): recorded, the run goes on."""


STAGES = [("rfm", rfm_stage), ("cohorts", cohort_stage), ("clv", clv_stage)]
# The SELECT each stage computes its rows from (what bench/large.py times bare, beside the
# stage), by stage name.
STAGE_ROWS_SQL = {"rfm": _rfm_rows_sql, "cohorts": _cohort_rows_sql, "clv": _clv_rows_sql}


def last_finished_day() -> date:
    """What a nightly run counts unless told: yesterday, the last whole day (TIME_ZONE).
    Counting today's sales so far, a date gave other rows each time it ran."""
    return timezone.localdate() - timedelta(days=1)


# A run still "running" this long after it started was left by a process that stopped (a
# worker killed, a machine restarted): the large demo's run takes well under a minute.
ABANDONED_AFTER = timedelta(hours=6)


def _abandoned_runs_failed() -> int:
    """Runs whose process died stayed "running" in the admin for good, beside the runs that
    came after them: the next run records them failed."""
    return NightlyRun.objects.filter(
        status=NightlyRun.Status.RUNNING, started_at__lt=timezone.now() - ABANDONED_AFTER
    ).update(
        status=NightlyRun.Status.FAILED,
        error="Abandoned: still running hours after it started (its process stopped).",
    )


def nightly_run(*, run_date: date | None = None, progress=None) -> NightlyRun:
    """Run every stage for `run_date` (default: the last finished day) and record the run."""
    run_date = run_date or last_finished_day()
    _abandoned_runs_failed()
    run = NightlyRun.objects.create(run_date=run_date, parameters={"as_of": str(run_date)})
    try:
        for name, stage in STAGES:
            started = time.monotonic()
            try:
                rows = stage(as_of=run_date)
                if isinstance(rows, tuple):  # (rows, what the stage fitted)
                    rows, fitted = rows
                    run.parameters.update(fitted)
                    run.save(update_fields=["parameters"])
            except StageSkipped as skipped:
                run.stages[name] = {"rows": 0, "skipped": str(skipped)}
                run.save(update_fields=["stages"])
                log.warning("nightly %s skipped: %s", name, skipped)
                continue
            seconds = round(time.monotonic() - started, 3)
            run.stages[name] = {"rows": rows, "seconds": seconds}
            run.save(update_fields=["stages"])
            log.info("nightly %s: %s rows in %.2f s", name, rows, seconds)
            if progress:
                progress(name, rows, seconds)
    except Exception as exc:
        _record_failure(run, exc)
        raise
    run.status, run.finished_at = NightlyRun.Status.SUCCEEDED, timezone.now()
    run.save(update_fields=["status", "finished_at"])
    return run


def _record_failure(run: NightlyRun, exc: Exception) -> None:
    """The run's row says it failed, and why. When the failure is the database connection
    itself (a failover, a dropped connection), saving on it raised InterfaceError, which
    replaced the error the task retries and left the run "running" for good: the broken
    connection is closed and the row saved on a new one. If even that fails, it is logged
    and the caller still sees the first error."""
    run.status, run.error = NightlyRun.Status.FAILED, f"{type(exc).__name__}: {exc}"
    run.finished_at = timezone.now()
    fields = ["status", "error", "finished_at"]
    try:
        run.save(update_fields=fields)
    except DatabaseBroken:
        if connection.in_atomic_block:  # the caller's transaction: not ours to close
            log.exception("nightly run %s: its failure could not be recorded", run.pk)
            return
        connection.close()
        try:
            run.save(update_fields=fields)
        except DatabaseBroken:
            log.exception("nightly run %s: its failure could not be recorded", run.pk)
