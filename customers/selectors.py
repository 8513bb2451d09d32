"""Read queries on members."""

from django.db.models import Prefetch, QuerySet

from .models import Member, MemberChannel, PointsEntry


def member_list() -> QuerySet[Member]:
    seen = MemberChannel.objects.select_related("channel", "location")
    return (
        Member.objects.select_related("score")
        .prefetch_related(Prefetch("seen_in", queryset=seen))
        .order_by("-id")
    )


def points_ledger(*, member_id: int) -> QuerySet[PointsEntry]:
    return PointsEntry.objects.filter(member_id=member_id).select_related("order", "ret")
