"""What the nightly jobs compute, and a record of each run. Derived data: every row here can
be recomputed from orders and members, and a run for a date replaces that date's rows."""

from django.db import models


class NightlyRun(models.Model):
    """One run of the nightly jobs for a date: when, how long, how many rows, with what."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    run_date = models.DateField(db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    stages = models.JSONField(default=dict, help_text="Per stage: rows and seconds.")
    parameters = models.JSONField(default=dict)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"nightly {self.run_date} {self.status}"


# The RFM segments the nightly run gives (the CASE of analytics.jobs._rfm_rows_sql).
SEGMENTS = ("champions", "new", "loyal", "at_risk", "hibernating", "promising")


class MemberScore(models.Model):
    """A member's RFM summary, segment and CLV figures as of the last nightly run."""

    member = models.OneToOneField(
        "customers.Member", on_delete=models.CASCADE, related_name="score", primary_key=True
    )
    as_of = models.DateField()
    first_purchase = models.DateField()
    last_purchase = models.DateField()
    recency_days = models.IntegerField()
    frequency = models.IntegerField(help_text="Distinct days with a purchase.")
    # Wider than an order (12 digits): a day's spend adds up several orders; and a CLV
    # multiplies it. Two large orders on one day overflowed the column and failed the run.
    monetary = models.DecimalField(
        max_digits=18, decimal_places=2, help_text="Average spend per purchase day."
    )
    r_score = models.PositiveSmallIntegerField()
    f_score = models.PositiveSmallIntegerField()
    m_score = models.PositiveSmallIntegerField()
    segment = models.CharField(max_length=20, db_index=True)
    first_channel = models.CharField(max_length=10, help_text="web or store")
    expected_purchases_90d = models.FloatField(null=True, blank=True)
    p_alive = models.FloatField(null=True, blank=True)
    clv_12m = models.DecimalField(max_digits=18, decimal_places=2, null=True, blank=True)

    class Meta:
        ordering = ["member_id"]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.segment}"


class CohortRetention(models.Model):
    """Of the members whose first purchase fell in `cohort` (a month) and in
    `first_channel`, how many bought again `months_since` months later."""

    as_of = models.DateField()
    cohort = models.DateField(help_text="First day of the month of the first purchase.")
    first_channel = models.CharField(max_length=10)
    months_since = models.PositiveSmallIntegerField()
    members = models.IntegerField()
    active = models.IntegerField()

    class Meta:
        ordering = ["cohort", "first_channel", "months_since"]
        constraints = [
            models.UniqueConstraint(
                fields=["cohort", "first_channel", "months_since"], name="uniq_cohort_cell"
            )
        ]

    def __str__(self) -> str:
        return f"{self.cohort:%Y-%m} {self.first_channel} +{self.months_since}"
