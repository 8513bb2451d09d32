from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from analytics.jobs import nightly_run


class Command(BaseCommand):
    help = "Run the nightly analytics jobs now (what Celery beat runs each night)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--date", help="YYYY-MM-DD, the day the figures are as of (default: yesterday)"
        )

    def handle(self, *args, date: str | None = None, **options):
        try:
            run_date = _parse(date) if date is not None else None  # "": an error, not today
        except ValueError as exc:
            raise CommandError(f"--date must be YYYY-MM-DD: {exc}") from exc
        if run_date and run_date > timezone.localdate():
            # Scores as of a day to come would replace the real ones members/ and the
            # dashboard show (recency counted back from then).
            raise CommandError(f"--date {run_date} is in the future.")

        def progress(stage, rows, seconds):
            self.stderr.write(f"  {stage:<10} {rows:>8} rows  {seconds:>7.2f} s")

        try:
            run = nightly_run(run_date=run_date, progress=progress)
        except Exception as exc:  # recorded on the run (NightlyRun.error) and in the log
            raise CommandError(f"The nightly run failed: {type(exc).__name__}: {exc}") from exc
        self.stdout.write(f"Nightly run {run.pk} for {run.run_date}: {run.status}.")


def _parse(value: str) -> date:
    return date.fromisoformat(value)
