"""Transfers between locations: the stock rules of inventory.services, applied in order.

requested: the lines are reserved at the origin (nobody else can sell them);
shipped:   the reserved units leave the origin (ledger `transfer_out`) and are in transit;
received:  what arrived is added at the destination (ledger `transfer_in`); a short or over
           receipt is kept on the line as `received_quantity` beside `shipped_quantity`;
cancelled: only before shipping; the reservation is released.
"""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from rest_framework import status

from omnichannel.errors import DomainError

from .models import StockMovement, Transfer, TransferLine
from .services import (
    SYSTEM,
    Actor,
    InvalidQuantity,
    StockLine,
    is_whole,
    stock_commit,
    stock_receive,
    stock_release,
    stock_reserve,
)


class InvalidTransition(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "invalid_transition"
    default_detail = "The transfer is not in a state that allows this."


class NotOnTransfer(DomainError):
    code = "not_on_transfer"
    default_detail = "A received line is not on this transfer."


class SameLocation(DomainError):
    code = "invalid"
    field = "to_location"
    default_detail = "A transfer goes between two different locations."


@dataclass(frozen=True)
class TransferItem:
    variant_id: int
    quantity: int


def _locked(transfer_id: int, *, expected: str, action: str) -> Transfer:
    transfer = Transfer.objects.select_for_update().get(pk=transfer_id)
    if transfer.status != expected:
        raise InvalidTransition(
            f"Cannot {action} a transfer that is {transfer.status}.",
            status=transfer.status,
            action=action,
        )
    return transfer


@transaction.atomic
def transfer_request(
    *,
    from_location_id: int,
    to_location_id: int,
    items: list[TransferItem],
    note: str = "",
    actor: Actor = SYSTEM,
) -> Transfer:
    if from_location_id == to_location_id:
        raise SameLocation()
    merged: dict[int, int] = {}
    for item in items:
        merged[item.variant_id] = merged.get(item.variant_id, 0) + item.quantity
    transfer = Transfer.objects.create(
        from_location_id=from_location_id,
        to_location_id=to_location_id,
        note=note,
        created_by_id=actor.user_id,
        api_client_id=actor.api_client_id,
    )
    stock_reserve(
        lines=[StockLine(v, from_location_id, q) for v, q in merged.items()],
        reference=transfer.reference,
        actor=actor,
    )
    TransferLine.objects.bulk_create(
        [TransferLine(transfer=transfer, variant_id=v, quantity=q) for v, q in merged.items()]
    )
    return transfer


@transaction.atomic
def transfer_ship(*, transfer_id: int, actor: Actor = SYSTEM) -> Transfer:
    transfer = _locked(transfer_id, expected=Transfer.Status.REQUESTED, action="ship")
    lines = list(transfer.lines.all())
    stock_commit(
        lines=[
            StockLine(line.variant_id, transfer.from_location_id, line.quantity) for line in lines
        ],
        reference=transfer.reference,
        reason=StockMovement.Reason.TRANSFER_OUT,
        actor=actor,
    )
    for line in lines:
        line.shipped_quantity = line.quantity
    TransferLine.objects.bulk_update(lines, ["shipped_quantity"])
    transfer.status = Transfer.Status.SHIPPED
    transfer.shipped_at = timezone.now()
    transfer.save(update_fields=["status", "shipped_at"])
    return transfer


@transaction.atomic
def transfer_receive(
    *,
    transfer_id: int,
    received: dict[int, int] | None = None,
    actor: Actor = SYSTEM,
) -> Transfer:
    """Book the receipt. `received` maps variant id to the units that arrived; a variant
    left out arrived in full; without `received` everything arrived as shipped."""
    transfer = _locked(transfer_id, expected=Transfer.Status.SHIPPED, action="receive")
    lines = list(transfer.lines.all())
    received = received or {}
    unknown = set(received) - {line.variant_id for line in lines}
    if unknown:
        raise NotOnTransfer(variant_ids=sorted(unknown))
    for line in lines:
        quantity = received.get(line.variant_id, line.shipped_quantity)
        if not is_whole(quantity, low=0):
            raise InvalidQuantity(quantity=quantity)
        line.received_quantity = quantity
    arrived = [
        StockLine(line.variant_id, transfer.to_location_id, line.received_quantity)
        for line in lines
        if line.received_quantity
    ]
    if arrived:
        stock_receive(
            lines=arrived,
            reference=transfer.reference,
            reason=StockMovement.Reason.TRANSFER_IN,
            actor=actor,
        )
    TransferLine.objects.bulk_update(lines, ["received_quantity"])
    transfer.status = Transfer.Status.RECEIVED
    transfer.received_at = timezone.now()
    transfer.save(update_fields=["status", "received_at"])
    return transfer


@transaction.atomic
def transfer_cancel(*, transfer_id: int, actor: Actor = SYSTEM) -> Transfer:
    transfer = _locked(transfer_id, expected=Transfer.Status.REQUESTED, action="cancel")
    stock_release(
        lines=[
            StockLine(line.variant_id, transfer.from_location_id, line.quantity)
            for line in transfer.lines.all()
        ],
        reference=transfer.reference,
        actor=actor,
    )
    transfer.status = Transfer.Status.CANCELLED
    transfer.save(update_fields=["status"])
    return transfer
