"""`manage.py clv_fit`: fit BG/NBD and Gamma-Gamma on an exported transaction history.

Reads the file, not the database, so an analyst can refit on any export (another period,
another shop) and compare the parameters with what the nightly job uses.
"""

import csv
import json
import math
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from analytics.clv import FitError, bgnbd_fit, gamma_gamma_fit, summarise

HEADER = ["customer_id", "date", "amount"]


class Command(BaseCommand):
    help = (
        "Fit the CLV models (BG/NBD, Gamma-Gamma; weeks; same-day purchases count as one) on a "
        "CSV with header customer_id,date,amount and print the parameters as JSON. Customers are "
        "those with a purchase on or before the calibration end."
    )

    def add_arguments(self, parser):
        parser.add_argument("--transactions", required=True, help="CSV: customer_id,date,amount")
        parser.add_argument(
            "--calibration-end", required=True, help="YYYY-MM-DD, last day of the calibration"
        )

    def handle(self, *args, transactions: str, calibration_end: str, **options):
        try:
            end = date.fromisoformat(calibration_end)
        except ValueError as exc:
            raise CommandError(
                f"--calibration-end must be YYYY-MM-DD, got {calibration_end!r}"
            ) from exc

        ids, days, amounts = _read(Path(transactions))
        summary = summarise(ids, days, amounts, calibration_end=end)
        if len(summary) == 0:
            raise CommandError(f"{transactions}: no transactions on or before {end.isoformat()}")
        try:
            bg = bgnbd_fit(summary.x, summary.t_x, summary.T)
            gg = gamma_gamma_fit(summary.x, summary.m)
        except FitError as exc:
            raise CommandError(f"{transactions}: {exc}") from exc

        result = {
            "customers": len(summary),
            "bgnbd": {
                "r": bg.r,
                "alpha": bg.alpha,
                "a": bg.a,
                "b": bg.b,
                "log_likelihood": bg.log_likelihood,  # a = b = 0: the no-drop-out limit
            },
            "gamma_gamma": {"p": gg.p, "q": gg.q, "gamma": gg.gamma},
        }
        self.stdout.write(json.dumps(result))


def _read(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Parse and validate the whole file; every error names the line (as an editor counts
    them, header = line 1) so the export can be fixed."""
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    ids: list[str] = []
    days: list[date] = []
    amounts: list[float] = []
    try:
        # utf-8-sig: spreadsheets put a byte-order mark in front of the header.
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or [h.strip().lower() for h in header] != HEADER:
                raise CommandError(
                    f"{path}: line 1: header must be {','.join(HEADER)}, got "
                    f"{','.join(header) if header else 'an empty file'}"
                )
            for row in reader:
                line = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue  # blank lines, e.g. a trailing one
                if len(row) != len(HEADER):
                    raise CommandError(f"{path}: line {line}: expected 3 fields, got {len(row)}")
                customer, day, amount = (cell.strip() for cell in row)
                if not customer:
                    raise CommandError(f"{path}: line {line}: empty customer_id")
                try:
                    parsed_day = date.fromisoformat(day)
                except ValueError:
                    raise CommandError(
                        f"{path}: line {line}: bad date {day!r}, expected YYYY-MM-DD"
                    ) from None
                try:
                    value = Decimal(amount)
                except InvalidOperation:
                    raise CommandError(f"{path}: line {line}: bad amount {amount!r}") from None
                if not value.is_finite() or value < 0 or not math.isfinite(float(value)):
                    raise CommandError(
                        f"{path}: line {line}: bad amount {amount!r}, must be a number >= 0 "
                        "(net refunds out before exporting)"
                    )
                ids.append(customer)
                days.append(parsed_day)
                amounts.append(float(value))
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path}: not UTF-8 text ({exc})") from exc
    except csv.Error as exc:
        raise CommandError(f"{path}: line {reader.line_num}: {exc}") from exc
    return ids, np.asarray(days, dtype="datetime64[D]"), np.asarray(amounts, dtype=np.float64)
