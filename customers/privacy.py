"""Who a member is: merge, export and erase. Staff operations, each in one transaction and
recorded as a MemberEvent (ids only, never personal data)."""

from django.db import transaction
from django.db.models import Q, TextField
from django.db.models.functions import Cast

from omnichannel.errors import DomainError
from omnichannel.models import IdempotencyRecord

from .models import Member, MemberChannel, MemberEvent, PointsEntry


class CannotMergeWithItself(DomainError):
    code = "invalid"
    default_detail = "A member cannot be merged with itself."


@transaction.atomic
def member_merge(*, survivor_id: int, other_id: int, staff_id: int | None = None) -> Member:
    """Everything of `other` moves to `survivor`: orders, points, where they were seen,
    missing contact details and consents. `other` is then deleted."""
    from orders.models import Order

    if survivor_id == other_id:
        raise CannotMergeWithItself()
    locked = {
        m.pk: m
        for m in Member.objects.select_for_update()
        .filter(pk__in=[survivor_id, other_id])
        .order_by("pk")
    }
    survivor, other = locked[survivor_id], locked[other_id]
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
    other.delete()  # frees its email and phone for the survivor
    for field, value in contact.items():
        if value and not getattr(survivor, field):
            setattr(survivor, field, value)
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
        .select_related("channel")
        .prefetch_related("lines")
        .order_by("created_at")
    )
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
                "lines": [
                    {
                        "sku": line.sku,
                        "name": line.name,
                        "quantity": line.quantity,
                        "unit_price": str(line.unit_price),
                    }
                    for line in o.lines.all()
                ],
            }
            for o in orders
        ],
        "points": [
            {"kind": e.kind, "points": e.points, "created_at": e.created_at.isoformat()}
            for e in member.points_ledger.order_by("id")
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

    member = Member.objects.select_for_update().get(pk=member_id)
    traces = [value for value in (member.email, member.phone) if value]
    Order.objects.filter(member=member).update(member=None)
    PointsEntry.objects.filter(member=member).delete()
    if traces:
        stored = IdempotencyRecord.objects.annotate(text=Cast("response_body", TextField()))
        match = Q()
        for value in traces:
            match |= Q(text__icontains=value)
        stored.filter(match).delete()
    member.delete()
    MemberEvent.objects.create(
        kind=MemberEvent.Kind.ERASED, member_id_ref=member_id, staff_id=staff_id
    )
