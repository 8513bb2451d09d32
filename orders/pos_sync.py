"""Offline POS sales, synced in a batch when the till is back online.

Each sale carries the till's own `client_id`; syncing the same sale twice (a retried batch,
two overlapping syncs) finds the first order instead of making another. A sale whose goods
are already gone from the shelf still stands: the customer walked out with them. Stock goes
below zero and the order is flagged for review, never dropped. So does a sale for a member
merged into another since (booked to that one) or erased since (booked to no one).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from inventory.services import Actor
from omnichannel.errors import DomainError
from omnichannel.models import ApiClient

from .models import Order
from .services import ZERO, LineRequest, PaymentRequest, order_member, order_place

ACCEPTED = "accepted"
ACCEPTED_OVERSOLD = "accepted_oversold"
REJECTED = "rejected"
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class OfflineSale:
    client_id: str
    lines: list[LineRequest]
    payments: list[PaymentRequest]
    discount: Decimal = ZERO
    sold_at: datetime | None = None
    # {"id": n} or {"contact": {...}} (orders.api.serializers.MemberRefField): the member the
    # till rang the sale up for. It was not read, and the points were never earned.
    member: dict | None = None


@dataclass(frozen=True)
class InvalidSale:
    """A sale the API's checks refused (orders.api.serializers.OfflineSaleListSerializer):
    rejected `invalid` alone, `detail` naming its fields; the rest of the batch goes on."""

    client_id: str
    detail: str


@dataclass(frozen=True)
class SyncResult:
    client_id: str
    status: str
    order: Order | None = None
    code: str = ""
    detail: str = ""


def _outcome(sale: OfflineSale, order: Order) -> SyncResult:
    return SyncResult(
        sale.client_id, ACCEPTED_OVERSOLD if order.needs_review else ACCEPTED, order=order
    )


def _replayed(sale: OfflineSale, order: Order) -> SyncResult:
    """The answer to a client_id this till already synced: the first answer for the same
    sale; for other goods under it (a till whose counter was reset), a refusal. Answered
    `accepted`, that sale was lost without a word: no stock moved, no revenue."""
    sold: dict[str, int] = {}
    for line in sale.lines:
        sold[line.sku] = sold.get(line.sku, 0) + line.quantity
    if sold != {line.sku: line.quantity for line in order.lines.all()}:
        return SyncResult(
            sale.client_id,
            REJECTED,
            code="client_id_reused",
            detail=f"This till synced other goods under this client_id: order {order.number}.",
        )
    return _outcome(sale, order)


def pos_sale_sync(*, client: ApiClient, sale: OfflineSale) -> SyncResult:
    """Record one offline sale exactly once; its own transaction, whatever the batch does."""
    existing = Order.objects.filter(api_client=client, client_id=sale.client_id).first()
    if existing is not None:
        return _replayed(sale, existing)
    if sale.sold_at is not None and sale.sold_at > timezone.now() + CLOCK_SKEW:
        return SyncResult(
            sale.client_id, REJECTED, code="invalid", detail="sold_at is in the future."
        )
    try:
        with transaction.atomic():
            # An unknown member id rejects this sale alone (unknown_member): the till can
            # send it again, corrected, under the same client_id. One merged since books
            # the sale to the member it was merged into, one erased since to no one.
            member = (
                order_member(
                    ref=sale.member,
                    channel=client.channel,
                    location=client.location,
                    already_sold=True,
                )
                if sale.member
                else None
            )
            order = order_place(
                channel=client.channel,
                fulfillment=Order.Fulfillment.IN_STORE,
                lines=sale.lines,
                location=client.location,
                payments=sale.payments,
                discount=sale.discount,
                allow_oversell=True,
                sold_at=sale.sold_at,  # priced as it was rung up
                client_id=sale.client_id,
                member=member,
                actor=Actor(api_client_id=client.pk),
            )
            if sale.sold_at is not None:  # the books count the sale when it happened
                Order.objects.filter(pk=order.pk).update(created_at=sale.sold_at)
    except IntegrityError:
        # The same sale arrived through an overlapping sync that committed first.
        return _replayed(sale, Order.objects.get(api_client=client, client_id=sale.client_id))
    except DomainError as refused:
        return SyncResult(sale.client_id, REJECTED, code=refused.code, detail=refused.detail)
    except DataError:
        # A figure past what its column holds: this sale is rolled back to its savepoint and
        # refused, and the rest of the batch goes on (a 500 stopped every retry here).
        return SyncResult(
            sale.client_id,
            REJECTED,
            code="out_of_range",
            detail="A value of this sale is too large to be recorded.",
        )
    return _outcome(sale, order)


def pos_sync(*, client: ApiClient, sales: list[OfflineSale | InvalidSale]) -> list[SyncResult]:
    return [
        SyncResult(sale.client_id, REJECTED, code="invalid", detail=sale.detail)
        if isinstance(sale, InvalidSale)
        else pos_sale_sync(client=client, sale=sale)
        for sale in sales
    ]
