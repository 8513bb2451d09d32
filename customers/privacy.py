"""Who a member is: merge, export and erase. Staff operations, each in one transaction and
recorded as a MemberEvent (ids only, never personal data). Merges also leave rows in the
members' change history (who, when, which details moved); an erasure deletes the person's
change history, and the admin log keeps only "member #id" for them."""

import json

from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q, TextField, Value
from django.db.models.functions import Cast, Concat
from rest_framework import status

from analytics.services import member_scores_forget
from omnichannel.errors import DomainError
from omnichannel.models import IdempotencyRecord

from .models import Member, MemberAlias, MemberChannel, MemberEvent, PointsEntry
from .selectors import alias_holder
from .services import MemberConflict


class MemberGone(DomainError):
    """Found when the request came in, merged away or erased by the time its lock came: a
    merge or an erasure clicked twice, or two staff at once."""

    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"
    default_detail = "No member has that id: merged or erased meanwhile."


class CannotMergeWithItself(DomainError):
    code = "invalid"
    field = "other"
    default_detail = "A member cannot be merged with itself."


@transaction.atomic
def member_merge(*, survivor_id: int, other_id: int, staff_id: int | None = None) -> Member:
    """Everything of `other` moves to `survivor`: orders, points, where they were seen,
    missing contact details and consents. An email or phone of `other`'s where the survivor
    keeps its own stays as an alias that still finds them. `other` is then deleted. A
    contact of `other`'s that is an alias of a third member is a 409: merge that one first."""
    from orders.models import Order

    if survivor_id == other_id:
        raise CannotMergeWithItself()
    member_scores_forget(member_id=other_id)  # before any lock: see its docstring
    # The orders that move, then the members: an order's row before its member's, as every
    # order service takes them (customers.services.member_lock). Members first waited on a
    # handover holding the order while it waited on the member.
    list(Order.objects.select_for_update().filter(member_id=other_id).order_by("pk").values("pk"))
    locked = {
        m.pk: m
        for m in Member.objects.select_for_update()
        .filter(pk__in=[survivor_id, other_id])
        .order_by("pk")
    }
    if len(locked) < 2:
        raise MemberGone(member=other_id if survivor_id in locked else survivor_id)
    survivor, other = locked[survivor_id], locked[other_id]
    for kind in ("email", "phone"):
        holder = alias_holder(kind=kind, value=getattr(other, kind), other_than=survivor_id)
        if holder is not None:
            raise MemberConflict(
                f"The {kind} of member {other_id} also finds member {holder}, kept from an "
                f"earlier merge: merge member {holder} into {survivor_id} first.",
                members=[holder],
            )
    Order.objects.filter(member=other).update(member=survivor)
    PointsEntry.objects.filter(member=other).update(member=survivor)
    for seen in MemberChannel.objects.filter(member=other):
        exists = MemberChannel.objects.filter(
            member=survivor, channel_id=seen.channel_id, location_id=seen.location_id
        ).exists()
        if exists:
            seen.delete()
        else:
            MemberChannel.objects.filter(pk=seen.pk).update(member=survivor)
    survivor.points += other.points
    contact = {
        field: getattr(other, field) for field in ("email", "phone", "first_name", "last_name")
    }
    for kind in ("email", "sms"):  # the most recent consent decision wins
        mine, theirs = getattr(survivor, f"{kind}_consent_at"), getattr(other, f"{kind}_consent_at")
        if theirs and (not mine or theirs > mine):
            for suffix in ("consent", "consent_at", "consent_source"):
                setattr(survivor, f"{kind}_{suffix}", getattr(other, f"{kind}_{suffix}"))
    if staff_id:  # else the history takes the request's user, if any
        staff = get_user_model().objects.filter(pk=staff_id).first()
        other._history_user = survivor._history_user = staff
    other._change_reason = f"merged into member {survivor_id}"
    MemberAlias.objects.filter(member=other).update(member=survivor)
    other.delete()  # frees its email and phone for the survivor
    for field, value in contact.items():
        if value and not getattr(survivor, field):
            setattr(survivor, field, value)
        elif value and field in ("email", "phone") and value != getattr(survivor, field):
            # The survivor keeps its own; the other one still finds the person. It may be
            # their alias already: `other` was made under it by an upsert that raced the
            # merge that made it.
            MemberAlias.objects.get_or_create(
                kind=field, value=value, defaults={"member": survivor}
            )
    survivor._change_reason = f"member {other_id} merged into this one"
    survivor.save()
    MemberEvent.objects.create(
        kind=MemberEvent.Kind.MERGED,
        member_id_ref=survivor.pk,
        other_id_ref=other_id,
        staff_id=staff_id,
    )
    return survivor


def member_export(*, member_id: int, staff_id: int | None = None) -> dict:
    """Everything held on the person, as JSON-ready data."""
    from orders.models import Order

    member = Member.objects.get(pk=member_id)
    orders = (
        Order.objects.filter(member=member)
        .select_related("channel", "pickup_location")
        .prefetch_related("lines", "payments", "returns__location", "returns__lines__line")
        .order_by("created_at")
    )
    score = getattr(member, "score", None)  # the nightly profile, as members/{id}/ shows it
    data = {
        "member": {
            "id": member.pk,
            "email": member.email,
            "phone": member.phone,
            "first_name": member.first_name,
            "last_name": member.last_name,
            "points": member.points,
            "tier": member.tier,
            "created_at": member.created_at.isoformat(),
        },
        # Emails and phones of members merged into this one, which still find them.
        "other_contacts": [
            {"kind": a.kind, "value": a.value, "since": a.created_at.isoformat()}
            for a in member.aliases.order_by("id")
        ],
        "consents": {
            kind: {
                "given": getattr(member, f"{kind}_consent"),
                "at": (getattr(member, f"{kind}_consent_at") or None)
                and getattr(member, f"{kind}_consent_at").isoformat(),
                "where": getattr(member, f"{kind}_consent_source"),
            }
            for kind in ("email", "sms")
        },
        "seen_in": [
            {
                "channel": s.channel.code,
                "location": s.location.code if s.location else None,
                "first_seen": s.first_seen.isoformat(),
                "last_seen": s.last_seen.isoformat(),
            }
            for s in member.seen_in.select_related("channel", "location")
        ],
        "orders": [
            {
                "number": o.number,
                "channel": o.channel.code,
                "created_at": o.created_at.isoformat(),
                "status": o.status,
                "total": str(o.total),
                "currency": o.currency,
                "fulfillment": o.fulfillment,
                "pickup_location": o.pickup_location.code if o.pickup_location else None,
                "lines": [
                    {
                        "sku": line.sku,
                        "name": line.name,
                        "quantity": line.quantity,
                        "unit_price": str(line.unit_price),
                    }
                    for line in o.lines.all()
                ],
                "payments": [
                    {"method": p.method, "amount": str(p.amount)} for p in o.payments.all()
                ],
                "returns": [
                    {
                        "created_at": r.created_at.isoformat(),
                        "location": r.location.code,
                        "refund": str(r.refund),
                        "points_refunded": r.points_refunded,
                        "lines": [
                            {"sku": rl.line.sku, "quantity": rl.quantity, "refund": str(rl.refund)}
                            for rl in r.lines.all()
                        ],
                    }
                    for r in o.returns.all()
                ],
            }
            for o in orders
        ],
        "points": [
            {"kind": e.kind, "points": e.points, "created_at": e.created_at.isoformat()}
            for e in member.points_ledger.order_by("id")
        ],
        "profile_scores": score
        and {
            "as_of": score.as_of.isoformat(),
            "segment": score.segment,
            "recency_days": score.recency_days,
            "frequency": score.frequency,
            "monetary": str(score.monetary),
            "rfm": [score.r_score, score.f_score, score.m_score],
            "first_channel": score.first_channel,
            "expected_purchases_90d": score.expected_purchases_90d,
            "p_alive": score.p_alive,
            "clv_12m": None if score.clv_12m is None else str(score.clv_12m),
        },
        # Earlier details (and those of members merged into this one), as the admin's
        # History page holds them: they are held on the person too.
        "history": [
            {
                "member": h.id,
                "at": h.history_date.isoformat(),
                "change": h.get_history_type_display(),
                "reason": h.history_change_reason,
                "email": h.email,
                "phone": h.phone,
                "first_name": h.first_name,
                "last_name": h.last_name,
                "email_consent": h.email_consent,
                "sms_consent": h.sms_consent,
            }
            for h in Member.history.filter(id__in=_merged_into(member.pk)).order_by(
                "history_date", "history_id"
            )
        ],
    }
    MemberEvent.objects.create(
        kind=MemberEvent.Kind.EXPORTED, member_id_ref=member.pk, staff_id=staff_id
    )
    return data


@transaction.atomic
def member_erase(*, member_id: int, staff_id: int | None = None) -> None:
    """Remove the person: the member row, their points and where they were seen, and any
    stored API answer that contains their contact details. Their orders stay, anonymous, so
    the books and every sales total are unchanged."""
    from orders.models import Order

    member_scores_forget(member_id=member_id)  # before any lock: see its docstring
    # Their orders, then the member: an order's row before its member's, as every order
    # service takes them (customers.services.member_lock); the other way deadlocked with a
    # handover of one of their orders.
    list(Order.objects.select_for_update().filter(member_id=member_id).order_by("pk").values("pk"))
    member = Member.objects.select_for_update().filter(pk=member_id).first()
    if member is None:
        raise MemberGone(member=member_id)
    ids = _merged_into(member_id)
    traces = _contacts_held(member=member, ids=ids)
    Order.objects.filter(member=member).update(member=None)
    PointsEntry.objects.filter(member=member).delete()
    _forget_stored_answers(ids=ids, traces=traces)
    member.delete()
    _forget_history(ids=ids, traces=traces)
    MemberEvent.objects.create(
        kind=MemberEvent.Kind.ERASED, member_id_ref=member_id, staff_id=staff_id
    )


def _merged_into(member_id: int) -> set[int]:
    """The member and every member merged into it, directly or through earlier merges."""
    ids, frontier = {member_id}, {member_id}
    while frontier:
        frontier = set(
            MemberEvent.objects.filter(kind=MemberEvent.Kind.MERGED, member_id_ref__in=frontier)
            .exclude(other_id_ref__in=ids)
            .values_list("other_id_ref", flat=True)
        )
        ids |= frontier
    return ids


def _contacts_held(*, member: Member, ids: set[int]) -> set[str]:
    """Every email and phone the person had: now, before a change, and on the members merged
    into them."""
    held = {member.email, member.phone, *member.aliases.values_list("value", flat=True)}
    for email, phone in Member.history.filter(id__in=ids).values_list("email", "phone"):
        held |= {email, phone}
    return {value for value in held if value}


def _forget_stored_answers(*, ids: set[int], traces: set[str]) -> None:
    """Stored API answers (Idempotency-Key replays) about the person: the member answers
    of them and of those merged into them, and any answer holding one of their contacts as
    a whole JSON string (`"an@example.com"`, not a part of "joan@example.com", whose own
    replay must still work). Both spellings of a non-ASCII contact: PostgreSQL's jsonb text
    keeps the characters, the JSON text SQLite stores escapes them."""
    match = Q(path__startswith="/api/v1/members", response_body__id__in=list(ids))
    for value in traces:
        for quoted in {json.dumps(value), json.dumps(value, ensure_ascii=False)}:
            match |= Q(text__contains=quoted)
    stored = IdempotencyRecord.objects.annotate(text=Cast("response_body", TextField()))
    stored.filter(match).delete()


def _forget_history(*, ids: set[int], traces: set[str]) -> None:
    """The change history of the person (and of the members merged into them, whose details
    they took) goes, as does any history row holding their email or phone. The admin's log
    of edits keeps who edited when, under "member #id" instead of their email."""
    Member.history.filter(Q(id__in=ids) | Q(email__in=traces) | Q(phone__in=traces)).delete()
    LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Member),
        object_id__in=[str(pk) for pk in ids],
    ).update(object_repr=Concat(Value("member #"), "object_id"))
