from django.contrib import admin
from django.utils.html import format_html_join

from omnichannel.admin_base import DateLookupsMixin, ReadOnlyAdminMixin, WholeBusinessAdminMixin

from .models import CohortRetention, MemberScore, NightlyRun


class ReadOnly(DateLookupsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Computed by the nightly run; recomputed, never edited."""


@admin.register(NightlyRun)
class NightlyRunAdmin(WholeBusinessAdminMixin, ReadOnly):
    """The runs' rows and fitted models count every member, whichever store they buy at."""

    list_display = ["run_date", "status", "started_at", "finished_at", "stage_summary"]
    list_filter = ["status"]
    date_hierarchy = "run_date"
    readonly_fields = [
        "run_date",
        "status",
        "started_at",
        "finished_at",
        "stages",
        "parameters",
        "error",
    ]

    @admin.display(description="stages (rows, seconds)")
    def stage_summary(self, run):
        # A skipped stage records why, not rows and seconds ("clv: 0 rows in None s").
        return (
            format_html_join(
                ", ",
                "{}: {}",
                (
                    (
                        name,
                        "skipped"
                        if "skipped" in stage
                        else f"{stage.get('rows')} rows in {stage.get('seconds')} s",
                    )
                    for name, stage in run.stages.items()
                ),
            )
            or "-"
        )


@admin.register(MemberScore)
class MemberScoreAdmin(WholeBusinessAdminMixin, ReadOnly):
    list_display = [
        "member",
        "segment",
        "recency_days",
        "frequency",
        "monetary",
        "p_alive",
        "clv_12m",
        "first_channel",
        "as_of",
    ]
    list_filter = ["segment", "first_channel"]
    search_fields = ["member__email", "member__phone"]
    list_select_related = ["member"]


@admin.register(CohortRetention)
class CohortRetentionAdmin(WholeBusinessAdminMixin, ReadOnly):
    list_display = ["cohort", "first_channel", "months_since", "members", "active"]
    list_filter = ["first_channel", "cohort"]
