"""Writes to the analytics figures other apps need: the nightly run itself lives in jobs.py."""

from .models import MemberScore


def member_scores_forget(*, member_id: int) -> None:
    """Delete a member's nightly score ahead of the member (merge, erasure), before the
    caller locks any order or member row. The RFM stage holds the scores' table while it
    rewrites it and waits on the members at its commit (it checks each row's member):
    deleting the member took its score (cascade) while holding the member, and the two
    waited on each other until PostgreSQL killed one. The scores' table first, the merge and
    the stage take turns: whichever has it goes on, the other waits for its commit. The
    score is derived and recomputed the next night. In the caller's transaction."""
    MemberScore.objects.filter(member_id=member_id).delete()
