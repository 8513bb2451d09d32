"""Members and loyalty: one person whatever channel they shop in, and points they can trust.

Rules kept here:
- email is trimmed and lower-cased, its domain in IDNA A-labels; phone is E.164 (read in
  PHONE_DEFAULT_REGION when it has no country code); either finds the member, and a member
  may have both;
- contact details finding two members (an email of one with the phone of another) are a
  conflict for staff to merge (409);
- the balance changes only with a ledger entry, in one transaction, under the member's row
  lock, so two tills redeeming at once cannot spend more than there is;
- points are earned once per order and reversed once per return (database constraints);
  points paid on an order come back once: when it is cancelled or expires, or in proportion
  to the goods returned.
"""

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Case, DecimalField, Q, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from rest_framework import status

from omnichannel.domains import domain_a_labels
from omnichannel.errors import DomainError

from .models import Member, MemberAlias, MemberChannel, PointsEntry
from .selectors import contact_is, member_survivor


class InvalidContact(DomainError):
    code = "invalid"
    default_detail = "The contact details are not valid."


class MemberConflict(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "member_conflict"
    default_detail = "The contact details given find more than one member: merge them."


class UnknownMember(DomainError):
    code = "unknown_member"
    default_detail = "No member has that id."


class InsufficientPoints(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "insufficient_points"
    default_detail = "The member does not have that many points."


def _domain_a_labels(domain: str) -> str:
    """The domain as omnichannel.domains spells it (IDNA 2008 A-labels, what IDNA 2008
    refuses and resolvers take kept); an address literal ("[192.0.2.1]") has no labels.
    UnicodeError: no spelling."""
    if domain.startswith("[") and domain.endswith("]"):
        return domain.lower()
    return domain_a_labels(domain)


def normalize_email(value: str | None) -> str | None:
    """An email in the one spelling members are stored and found by: trimmed, lower-cased,
    the mailbox in NFC (NFKC would merge mailboxes the receiving server may keep apart),
    the domain in IDNA A-labels (_domain_a_labels)."""
    if value is None or not str(value).strip():
        return None
    mailbox, at, domain = str(value).strip().rpartition("@")
    try:
        email = unicodedata.normalize("NFC", mailbox.lower()) + at + _domain_a_labels(domain)
    except UnicodeError as exc:
        raise InvalidContact(errors={"email": ["Enter a valid email address."]}) from exc
    # Lower-casing and the A-labels can lengthen it (U+0130 becomes two characters): the
    # stored form counts.
    if len(email) > Member._meta.get_field("email").max_length:
        raise InvalidContact(errors={"email": ["The email address is too long."]})
    try:
        validate_email(email)
    except ValidationError as exc:
        raise InvalidContact(errors={"email": ["Enter a valid email address."]}) from exc
    return email


# What people write in a phone number besides its digits. Letters are refused: the library
# reads them as a keypad's ("0612ABCDEF" is +33612222333), so a typo found someone else,
# and "ext 12" was dropped without a word.
_PHONE_CHARACTERS = re.compile(r"[0-9\s+().\-/]+")


def normalize_phone(value: str | None) -> str | None:
    if value is None or not str(value).strip():
        return None
    if not _PHONE_CHARACTERS.fullmatch(str(value)):
        raise InvalidContact(
            errors={"phone": ["Enter a phone number in digits (spaces, +, -, . and () allowed)."]}
        )
    try:
        number = phonenumbers.parse(str(value), settings.PHONE_DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise InvalidContact(errors={"phone": ["Enter a valid phone number."]}) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidContact(errors={"phone": ["Enter a valid phone number."]})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True)
class Contact:
    email: str | None = None
    phone: str | None = None
    first_name: str = ""
    last_name: str = ""
    email_consent: bool | None = None
    sms_consent: bool | None = None


def _find(email: str | None, phone: str | None) -> list[Member]:
    """The members this email or phone finds, locked."""
    match = Q(pk__in=[])
    if email:
        match |= contact_is(kind="email", value=email)
    if phone:
        match |= contact_is(kind="phone", value=phone)
    members = Member.objects.select_for_update().filter(match).order_by("pk")
    found = list(members)
    held = {m.email for m in found} | {m.phone for m in found}
    if any(value and value not in held for value in (email, phone)):
        # A contact none of them holds as their own: new, an alias, or a member merged away
        # while we waited on their row. PostgreSQL skips the deleted row, and the alias the
        # merge left on the survivor is not in this statement's snapshot, so the person came
        # out unknown and was made a second member. A new statement sees what was committed
        # meanwhile; the rows found stay locked.
        found = list(members.all())
    return found


def _conflict(found: list[Member], email: str | None, phone: str | None) -> MemberConflict:
    """Which member each contact finds (their own, or an alias kept from a merge), in the
    words staff need to merge them."""
    given = {kind: value for kind, value in (("email", email), ("phone", phone)) if value}
    aliases = set(
        MemberAlias.objects.filter(member__in=found, value__in=given.values()).values_list(
            "member_id", "kind"
        )
    )
    found_by = {
        kind: [m.pk for m in found if getattr(m, kind) == value or (m.pk, kind) in aliases]
        for kind, value in given.items()
    }
    found_by = {kind: ids for kind, ids in found_by.items() if ids}

    def members(ids: list[int]) -> str:
        if len(ids) == 1:
            return f"member {ids[0]}"
        return "members " + ", ".join(map(str, ids[:-1])) + f" and {ids[-1]}"

    said = " and ".join(f"the {kind} finds {members(ids)}" for kind, ids in found_by.items())
    return MemberConflict(
        f"{said[0].upper()}{said[1:]}: merge them.",
        members=[m.pk for m in found],
        found_by=found_by,
    )


def _apply_consent(member: Member, contact: Contact, source: str) -> None:
    changed = []
    for kind in ("email", "sms"):
        given = getattr(contact, f"{kind}_consent")
        if given is not None and given != getattr(member, f"{kind}_consent"):
            setattr(member, f"{kind}_consent", given)
            changed.append(kind)
    consent_dated(member=member, kinds=changed, source=source)


def consent_dated(*, member: Member, kinds: list[str], source: str) -> None:
    """Date the consent decisions just changed on `member` (kinds: "email", "sms") and say
    where they came from: a merge keeps the newest decision by this date."""
    now = timezone.now()
    for kind in kinds:
        setattr(member, f"{kind}_consent_at", now)
        setattr(member, f"{kind}_consent_source", source[:80])


PROFILE_FIELDS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "email_consent",
    "email_consent_source",
    "sms_consent",
    "sms_consent_source",
)


def _profile(member: Member) -> tuple:
    return tuple(getattr(member, field) for field in PROFILE_FIELDS)


def member_upsert(
    *, contact: Contact, channel=None, location=None, source: str = ""
) -> tuple[Member, bool]:
    """The member with this email or phone, completed with what was missing, or a new one.
    Returns (member, created)."""
    email, phone = normalize_email(contact.email), normalize_phone(contact.phone)
    if not email and not phone:
        raise InvalidContact(errors={"non_field_errors": ["Give an email or a phone."]})
    source = source or (channel.code if channel else "staff")
    for attempt in range(2):
        try:
            with transaction.atomic():
                found = _find(email, phone)
                if len(found) > 1:
                    raise _conflict(found, email, phone)
                created = not found
                member = found[0] if found else Member()
                before = _profile(member)
                member.email = member.email or email
                member.phone = member.phone or phone
                member.first_name = member.first_name or contact.first_name[:100]
                member.last_name = member.last_name or contact.last_name[:100]
                _apply_consent(member, contact, source)
                if created or _profile(member) != before:
                    member.save()  # with a history row: who completed the profile, from what
                else:
                    member.save_without_historical_record()  # found again, nothing new
                if channel is not None:
                    member_seen(member=member, channel=channel, location=location)
                return member, created
        except IntegrityError:
            # Someone created the same person a moment ago: find them this time.
            if attempt:
                raise
    raise AssertionError("unreachable")


def member_seen(*, member: Member, channel, location=None) -> None:
    seen, created = MemberChannel.objects.get_or_create(
        member=member, channel=channel, location=location
    )
    if not created:
        seen.save(update_fields=["last_seen"])


# --- loyalty -----------------------------------------------------------------------------


def _post(member: Member, kind: str, points: int, **links) -> PointsEntry | None:
    """Append a ledger entry and move the balance with it (the member row is locked)."""
    if points == 0:
        return None
    try:
        with transaction.atomic():
            entry = PointsEntry.objects.create(member=member, kind=kind, points=points, **links)
    except IntegrityError:
        return None  # already posted for this order or return: a retry changes nothing
    member.points += points
    # The points ledger is the history of the balance; the member's history is their profile.
    member.save_without_historical_record(update_fields=["points", "updated_at"])
    return entry


def _locked(member_id: int) -> Member:
    return Member.objects.select_for_update().get(pk=member_id)


def member_balance_kept(*, member: Member) -> None:
    """A profile edit of a member read without a lock (the admin's form) saves every
    column: its points and tier are taken from the locked row first, so what a till posted
    (or the nightly tier) since is not written back as it was. In the caller's transaction."""
    current = _locked(member.pk)
    member.points, member.tier = current.points, current.tier


def member_lock(*, member_id: int) -> Member:
    """Lock a member's row for the caller's transaction; 400 `unknown_member` when they are
    gone (merged into another or erased since the caller found them).

    The lock order every write keeps: an order's row, then its member's, then stock. An
    order service that will touch the member's points takes the member here, before any
    stock row; taking it after (as points are posted last) let a sale holding stock and a
    handover holding the member wait on each other until PostgreSQL killed one."""
    member = Member.objects.select_for_update().filter(pk=member_id).first()
    if member is None:
        raise UnknownMember(
            "The member is no longer there (merged into another, or erased).", member=member_id
        )
    return member


def member_survivor_lock(*, member_id: int) -> Member | None:
    """member_lock for a sale already made (offline, synced later), which stands whatever
    became of its member meanwhile: the member the id names, or the one they were merged
    into since (customers.selectors.member_survivor), locked; None when erased since (the
    sale is booked to no one). 400 `unknown_member` for an id no member ever had. A merge
    or an erasure running meanwhile holds the row: this waits for it, then follows it."""
    asked = member_id
    while True:
        member = Member.objects.select_for_update().filter(pk=member_id).first()
        if member is not None:
            return member
        try:
            member_id = member_survivor(member_id=member_id)
        except Member.DoesNotExist:
            raise UnknownMember(member=asked) from None
        if member_id is None:
            return None


def points_value(points: int) -> Decimal:
    return (Decimal(points) * Decimal(settings.POINT_VALUE)).quantize(Decimal("0.01"))


@transaction.atomic
def points_redeem(*, member_id: int, points: int, order) -> Decimal:
    """Spend points as a payment on `order`; returns the money they are worth."""
    member = _locked(member_id)
    if points <= 0:
        raise InsufficientPoints("Redeem a positive number of points.", points=member.points)
    if member.points < points:
        raise InsufficientPoints(points=member.points, asked=points)
    _post(member, PointsEntry.Kind.REDEEMED, -points, order=order)
    return points_value(points)


@transaction.atomic
def points_earn(*, order) -> int:
    """Points for goods handed over, once per order: money paid (not with points) times the
    channel's rate and the member's tier multiplier, rounded down."""
    if order.member_id is None:
        return 0
    member = _locked(order.member_id)
    base = (order.total - order.paid_with_points()) * order.channel.points_per_unit
    multiplier = Decimal(settings.TIER_EARN_MULTIPLIER.get(member.tier, "1"))
    points = int((base * multiplier).to_integral_value(rounding=ROUND_DOWN))
    if points <= 0 or _post(member, PointsEntry.Kind.EARNED, points, order=order) is None:
        return 0
    type(order).objects.filter(pk=order.pk).update(points_earned=points)
    return points


def _order_points(order, kind: str, *, on_returns: bool = False) -> int:
    """What the ledger holds for `order` of one kind: on the order itself, or (`on_returns`)
    on its returns."""
    return PointsEntry.objects.filter(order=order, kind=kind, ret__isnull=not on_returns).aggregate(
        total=Coalesce(Sum("points"), 0)
    )["total"]


@transaction.atomic
def points_restore(*, order) -> int:
    """Give back the points spent on an order that will never be handed over (cancelled,
    expired), once per order; returns how many."""
    if order.member_id is None:
        return 0
    spent = -_order_points(order, PointsEntry.Kind.REDEEMED)
    if spent <= 0:
        return 0
    member = _locked(order.member_id)
    entry = _post(member, PointsEntry.Kind.REFUNDED, spent, order=order)
    return entry.points if entry else 0


@dataclass(frozen=True)
class PointsDue:
    """The points a return gives back, and where the order's returns stand with it."""

    now: int  # given back by this return
    so_far: int  # given back by the order's returns, this one included
    spent: int  # spent on the order


def points_refund_due(*, order, share: Decimal) -> PointsDue:
    """How many of the points spent on `order` come back with a return that brings the
    goods returned so far to `share` of the order (0 to 1, by what was paid for them): that
    share of the points spent, rounded down, less what earlier returns gave back; the return
    that brings everything back gives back the rest. The caller holds the order's lock."""
    spent = -_order_points(order, PointsEntry.Kind.REDEEMED)
    if spent <= 0:
        return PointsDue(now=0, so_far=0, spent=0)
    back_before = _order_points(order, PointsEntry.Kind.REFUNDED, on_returns=True)
    due = spent if share >= 1 else int((spent * share).to_integral_value(rounding=ROUND_DOWN))
    now = max(0, due - back_before)
    return PointsDue(now=now, so_far=back_before + now, spent=spent)


@transaction.atomic
def points_reverse(*, ret) -> int:
    """Settle a return's points, once per return: give back `ret.points_refunded` (points
    paid for the goods), and take back the points earned on them in proportion to the money
    refunded. The earnings are taken back cumulatively: what the order's returns so far owe,
    less what the earlier returns owed, so returns in parts never take back more than was
    earned. Never below zero: points already spent stay spent. Returns the points taken."""
    order = ret.order
    if order.member_id is None:
        return 0
    member = _locked(order.member_id)
    if ret.points_refunded:
        _post(member, PointsEntry.Kind.REFUNDED, ret.points_refunded, ret=ret, order=order)
    if not order.points_earned:
        return 0
    money_paid = order.total - order.paid_with_points()
    if money_paid <= 0:
        return 0
    refunded_before = (
        type(ret)
        .objects.filter(order=order, pk__lt=ret.pk)
        .aggregate(total=Coalesce(Sum("refund"), Decimal(0), output_field=DecimalField()))["total"]
    )

    def owed(refunded: Decimal) -> int:
        share = min(Decimal(1), refunded / money_paid)
        return int((order.points_earned * share).to_integral_value())

    points = min(member.points, owed(refunded_before + ret.refund) - owed(refunded_before))
    entry = _post(member, PointsEntry.Kind.REVERSED, -points, ret=ret, order=order)
    return -entry.points if entry else 0


# --- nightly ---------------------------------------------------------------------------


def points_expire(*, now=None, days: int | None = None) -> int:
    """Expire earned points older than the period that were never spent. Debits (spent,
    reversed, expired) use the oldest points first, so what is left of the old earnings is
    `earned before the cutoff - all debits`. One set-based read finds the members with old
    points; each is then locked and their figure read again under the lock, so points spent
    meanwhile, or a second run at the same moment, are counted; a member merged away or
    erased meanwhile is skipped. Safe to run twice.

    The period counts whole days in TIME_ZONE: points earned on a day expire together, on
    the night that day falls out of the period, whatever the hour they were earned at."""
    from django.conf import settings

    earned_before = timezone.localdate(now or timezone.now()) - timedelta(
        days=days or settings.POINTS_EXPIRY_DAYS
    )
    cutoff = timezone.make_aware(datetime.combine(earned_before, time.min))

    figures = {
        "old_credit": Coalesce(Sum("points", filter=Q(points__gt=0, created_at__lt=cutoff)), 0),
        "debits": Coalesce(Sum("points", filter=Q(points__lt=0)), 0),
    }
    rows = PointsEntry.objects.values("member_id").annotate(**figures).filter(old_credit__gt=0)
    expired = 0
    for row in rows:
        if row["old_credit"] + row["debits"] <= 0:  # debits are negative
            continue
        with transaction.atomic():
            try:
                member = _locked(row["member_id"])
            except Member.DoesNotExist:
                # Merged into another since the scan (their points went with them and expire
                # on the survivor, in this run or the next) or erased: nothing left here.
                continue
            now_row = PointsEntry.objects.filter(member=member).aggregate(**figures)
            due = min(now_row["old_credit"] + now_row["debits"], member.points)
            if due > 0:
                PointsEntry.objects.create(
                    member=member,
                    kind=PointsEntry.Kind.EXPIRED,
                    points=-due,
                    note=f"earned before {earned_before:%Y-%m-%d}",
                )
                member.points -= due
                member.save_without_historical_record(update_fields=["points", "updated_at"])
                expired += due
    return expired


def tiers_recompute(*, now=None) -> int:
    """Tier from trailing 12-month spend across every channel (goods handed over, less what
    the goods returned were worth, however they were paid). Set-based; returns how many
    members changed tier."""
    from django.conf import settings

    from orders.models import Order, Return
    from orders.selectors import returned_value

    since = (now or timezone.now()) - timedelta(days=365)
    handed_over = ["completed", "picked_up", "shipped"]
    spend = dict(
        Order.objects.filter(member__isnull=False, status__in=handed_over, created_at__gte=since)
        .values("member_id")
        .annotate(total=Sum("total"))
        .values_list("member_id", "total")
    )
    for member_id, refunds in (
        Return.objects.filter(order__member__isnull=False, order__created_at__gte=since)
        .values("order__member_id")
        .annotate(total=Sum(returned_value()))
        .values_list("order__member_id", "total")
    ):
        spend[member_id] = spend.get(member_id, Decimal(0)) - refunds
    gold = Decimal(settings.TIER_SPEND_THRESHOLDS["gold"])
    silver = Decimal(settings.TIER_SPEND_THRESHOLDS["silver"])
    whens = [
        When(pk__in=[m for m, s in spend.items() if s >= gold], then=Value("gold")),
        When(pk__in=[m for m, s in spend.items() if silver <= s < gold], then=Value("silver")),
    ]
    target = Case(*whens, default=Value("basic"))
    changed = Member.objects.annotate(new_tier=target).exclude(tier=target)
    count = changed.count()
    Member.objects.filter(pk__in=changed.values("pk")).update(tier=target)
    return count
