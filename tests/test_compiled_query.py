"""omnichannel.compiled: a read compiled once by the ORM returns what the ORM returns."""

import json
from decimal import Decimal

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

import omnichannel.compiled
from catalog.models import ChannelPrice, Variant
from catalog.selectors import _SELLING_PRICES, _SOLD_PRICES, selling_prices
from inventory.availability import _FEEDS, _LEVELS, _PUBLISHED, availability_recompute
from inventory.models import ChannelAvailability, StockLevel
from inventory.services import _LOCK_GRID, StockLine, _levels, stock_receive
from omnichannel.compiled import CompiledQuery, Unpreparable
from omnichannel.models import ChannelLocation
from tests.concurrency import require_postgres, run_in_threads
from tests.factories import (
    ChannelFactory,
    ChannelLocationFactory,
    ChannelPriceFactory,
    LocationFactory,
    VariantFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def priced():
    web, pos = ChannelFactory(code="web"), ChannelFactory(code="pos")
    variants = [VariantFactory(sku=f"SKU-{i}", name=f"size {i}") for i in range(4)]
    for i, variant in enumerate(variants):
        ChannelPriceFactory(variant=variant, channel=web, amount=Decimal(f"{i + 1}.50"))
        ChannelPriceFactory(variant=variant, channel=pos, amount=Decimal(f"{i + 1}.00"))
    ChannelPrice.objects.filter(variant=variants[3], channel=web).update(published=False)
    gone = VariantFactory(sku="GONE-V", is_active=False)
    gone_product = VariantFactory(sku="GONE-P", product__is_active=False)
    for variant in (gone, gone_product):
        for channel in (web, pos):
            ChannelPriceFactory(variant=variant, channel=channel)
    return web, pos, variants


def orm_prices(channel, skus, *, active_only=True):
    prices = ChannelPrice.objects.filter(channel=channel, published=True, variant__sku__in=skus)
    if active_only:
        prices = prices.filter(variant__is_active=True, variant__product__is_active=True)
    return sorted(
        prices.values_list(
            "variant_id", "variant__sku", "variant__name", "variant__product__name", "amount"
        )
    )


@pytest.mark.parametrize(
    "skus",
    [
        ["SKU-0"],
        ["SKU-2", "SKU-0", "SKU-1"],
        ["SKU-3"],
        ["NOPE", "SKU-1"],
        ["SKU-0", "SKU-0"],
        ["GONE-V", "SKU-1", "GONE-P"],
    ],
    ids=["one", "three", "unpublished", "unknown", "twice", "discontinued"],
)
def test_the_selling_prices_are_the_orms_rows_for_every_shape(priced, skus):
    web, pos, _ = priced
    for channel in (web, pos):
        rows = sorted(_SELLING_PRICES.rows(channel.pk, skus))
        assert rows == orm_prices(channel, skus)
        assert all(isinstance(row[4], Decimal) for row in rows)
        assert not {"GONE-V", "GONE-P"} & {row[1] for row in rows}  # discontinued: not sold
    # The same shape again, other values: bound into the kept statement.
    assert sorted(_SELLING_PRICES.rows(pos.pk, skus)) == orm_prices(pos, skus)
    # What an offline sale is priced from: discontinued goods too (they already left).
    for channel in (web, pos):
        sold = sorted(_SOLD_PRICES.rows(channel.pk, skus))
        assert sold == orm_prices(channel, skus, active_only=False)
        if "GONE-V" in skus:
            assert {"GONE-V", "GONE-P"} <= {row[1] for row in sold}


def test_a_shape_is_built_once_then_each_call_is_one_statement(priced):
    web, pos, _ = priced
    builds = []

    def build(channel_id, skus):
        builds.append((channel_id, skus))
        return ChannelPrice.objects.filter(
            channel_id=channel_id, variant__sku__in=skus
        ).values_list("amount")

    query = CompiledQuery(build)
    with CaptureQueriesContext(connection) as captured:
        assert query.rows(web.pk, ["SKU-0"]) == [(Decimal("1.50"),)]
        assert query.rows(pos.pk, ["SKU-1"]) == [(Decimal("2.00"),)]
        assert sorted(query.rows(pos.pk, ["SKU-1", "SKU-2"])) == [
            (Decimal("2.00"),),
            (Decimal("3.00"),),
        ]
    assert len(builds) == 2  # one list of one SKU, one of two
    assert len(captured.captured_queries) == 3
    # Placeholders: ints within any integer column's range, strings with control characters.
    assert 2_000_000_000 < builds[0][0] < 2**31 and builds[0][1][0].startswith("\x1f")


def test_values_go_where_their_placeholder_went_even_next_to_equal_constants(priced):
    """Two int arguments of one type, a constant 1 in the query: each value lands in its
    own slot, so swapping them swaps the answer."""
    web, pos, variants = priced
    query = CompiledQuery(
        lambda channel_id, variant_id: ChannelPrice.objects.filter(
            channel_id=channel_id, variant_id=variant_id, amount__gte=1
        ).values_list("channel_id", "variant_id")
    )
    assert query.rows(web.pk, variants[1].pk) == [(web.pk, variants[1].pk)]
    assert query.rows(pos.pk, variants[2].pk) == [(pos.pk, variants[2].pk)]
    assert query.rows(variants[2].pk, pos.pk) == list(
        ChannelPrice.objects.filter(channel_id=variants[2].pk, variant_id=pos.pk).values_list(
            "channel_id", "variant_id"
        )
    )


def test_the_databases_converters_apply_as_the_orm_applies_them(priced):
    """JSON and datetimes come back as the ORM gives them (on SQLite every one needs a
    converter; on PostgreSQL, JSON does)."""
    _, _, variants = priced
    Variant.objects.filter(pk=variants[0].pk).update(attributes={"size": "M", "fit": ["slim"]})
    query = CompiledQuery(
        lambda ids: (
            Variant.objects.filter(pk__in=ids)
            .order_by("pk")
            .values_list("pk", "attributes", "is_active", "product__created_at")
        )
    )
    ids = [v.pk for v in variants[:2]]
    expected = list(
        Variant.objects.filter(pk__in=ids)
        .order_by("pk")
        .values_list("pk", "attributes", "is_active", "product__created_at")
    )
    assert query.rows(ids) == expected
    assert query.rows(ids)[0][1] == {"size": "M", "fit": ["slim"]}


def test_an_empty_list_matches_nothing_without_a_statement(priced):
    with CaptureQueriesContext(connection) as captured:
        assert _SELLING_PRICES.rows(priced[0].pk, []) == []
    assert captured.captured_queries == []


@pytest.mark.parametrize(
    "build, value",
    [
        (lambda sku: Variant.objects.filter(sku__contains=sku).values_list("pk"), "SKU"),
        (lambda sku: Variant.objects.filter(sku=sku, name=sku).values_list("pk"), "SKU-0"),
        (lambda flag: Variant.objects.filter(is_active=flag).values_list("pk"), True),
        (lambda amount: ChannelPrice.objects.filter(amount=amount).values_list("pk"), 1.5),
        (lambda nothing: Variant.objects.filter(barcode=nothing).values_list("pk"), None),
    ],
    ids=["value rewritten (LIKE %x%)", "value used twice", "bool", "float", "None"],
)
def test_a_query_that_does_not_pass_values_through_unchanged_is_refused(build, value):
    with pytest.raises(Unpreparable):
        CompiledQuery(build).rows(value)


def test_more_shapes_than_kept_still_answer_right(priced, monkeypatch):
    web, _, _ = priced
    monkeypatch.setattr(omnichannel.compiled, "MAX_SHAPES", 2)
    query = CompiledQuery(
        lambda skus: (
            ChannelPrice.objects.filter(channel_id=web.pk, variant__sku__in=skus)
            .order_by("variant__sku")
            .values_list("variant__sku")
        )
    )
    for n in range(1, 5):
        skus = [f"SKU-{i}" for i in range(n)]
        assert query.rows(skus) == [(s,) for s in skus]
    assert len(query._shapes) == 2


def test_the_lock_grid_locks_every_row_it_reads_in_the_global_order():
    require_postgres()
    variants = [VariantFactory() for _ in range(2)]
    locations = [LocationFactory() for _ in range(3)]
    for v in variants:
        for loc in locations[:2]:
            stock_receive(lines=[StockLine(v.pk, loc.pk, 5)], reference="seed")
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        rows = _LOCK_GRID.rows(sorted(v.pk for v in variants), sorted(loc.pk for loc in locations))
    assert [(r[1], r[2]) for r in rows] == sorted(
        (v.pk, loc.pk) for v in variants for loc in locations[:2]
    )
    expected = StockLevel.objects.filter(variant__in=variants).order_by("variant_id", "location_id")
    assert [r[0] for r in rows] == [level.pk for level in expected]
    [statement] = captured.captured_queries
    assert statement["sql"].endswith("FOR UPDATE")


@pytest.mark.django_db(transaction=True)
def test_threads_compiling_the_same_shape_at_once_all_get_their_own_answer():
    require_postgres()
    web = ChannelFactory(code="web")
    variants = [VariantFactory(sku=f"T-{i}") for i in range(16)]
    for i, variant in enumerate(variants):
        ChannelPriceFactory(variant=variant, channel=web, amount=Decimal(i))
    query = CompiledQuery(
        lambda channel_id, skus: ChannelPrice.objects.filter(
            channel_id=channel_id, variant__sku__in=skus
        ).values_list("variant__sku", "amount")
    )

    def ask(i):
        return query.rows(web.pk, [f"T-{i}"])

    assert run_in_threads(16, ask) == [[(f"T-{i}", Decimal(i))] for i in range(16)]
    assert selling_prices(channel_id=web.pk, skus=["T-3"]) == {
        "T-3": (variants[3].pk, variants[3].name, variants[3].product.name, Decimal(3))
    }


def test_a_value_of_another_type_than_compiled_is_never_bound_raw(priced):
    """A str where an int was compiled is its own shape, which the ORM would convert
    (so it cannot be bound as it is): refused, not run with the int's statement."""
    _, _, variants = priced
    query = CompiledQuery(lambda pk: Variant.objects.filter(pk=pk).values_list("sku"))
    assert query.rows(variants[0].pk) == [("SKU-0",)]
    assert query.rows(variants[1].pk) == [("SKU-1",)]
    with pytest.raises(Unpreparable):
        query.rows(str(variants[1].pk))
    assert len(query._shapes) == 1
    with pytest.raises(Unpreparable):
        query.rows([1, "2"])  # a list of mixed types


def test_the_lock_grid_reads_back_full_stock_levels_as_the_orm_loads_them():
    """A routed reservation works on StockLevel instances built from the grid's rows: the
    same values as the ORM loads, updated_at included, marked as loaded from the database."""
    variant, location = VariantFactory(), LocationFactory()
    stock_receive(lines=[StockLine(variant.pk, location.pk, 3)], reference="seed")
    [(key, level)] = _levels(_LOCK_GRID.rows([variant.pk], [location.pk])).items()
    orm = StockLevel.objects.get(variant=variant, location=location)
    assert key == (variant.pk, location.pk)
    assert (level.pk, level.on_hand, level.reserved, level.updated_at) == (
        orm.pk,
        orm.on_hand,
        orm.reserved,
        orm.updated_at,
    )
    assert not level._state.adding and level._state.db == "default"


def test_an_int_placeholder_fits_a_32_bit_column_and_a_query_empty_for_any_value_is_refused():
    """The ORM drops a lookup whose value is out of the column's range: placeholders stay in
    range, so a plain IntegerField compiles and binds. A query that matches nothing before
    any value is bound (not an empty list) is refused, never kept as "always empty"."""
    variant, location = VariantFactory(), LocationFactory()
    stock_receive(lines=[StockLine(variant.pk, location.pk, 7)], reference="seed")
    query = CompiledQuery(
        lambda on_hand: StockLevel.objects.filter(on_hand=on_hand).values_list("variant_id")
    )
    assert query.rows(7) == [(variant.pk,)]
    assert query.rows(8) == []
    with pytest.raises(Unpreparable):
        CompiledQuery(lambda pk: Variant.objects.none().values_list("pk")).rows(variant.pk)


def test_the_availability_syncs_reads_are_the_orms_rows():
    """Every sync reads the channels' feeds (no value to bind), its variants' stock and what
    is published for them, compiled (inventory.availability): the ORM's rows, in the feeds'
    order, the published breakdown decoded from JSON as the ORM decodes it."""
    web, pos = ChannelFactory(code="web"), ChannelFactory(code="pos")
    shop, depot = LocationFactory(code="shop"), LocationFactory(code="depot", pickup=False)
    ChannelLocationFactory(channel=web, location=shop, priority=2, safety_stock=1)
    ChannelLocationFactory(channel=web, location=depot, priority=1)
    ChannelLocationFactory(channel=pos, location=shop, priority=1)
    variants = [VariantFactory() for _ in range(3)]
    stock_receive(
        lines=[
            StockLine(v.pk, loc.pk, 4 + i)
            for i, v in enumerate(variants[:2])
            for loc in (shop, depot)
        ],
        reference="seed",
    )
    ids = [v.pk for v in variants]
    assert len(availability_recompute(variant_ids=ids)) == 6  # 3 variants x 2 channels

    feeds = ChannelLocation.objects.order_by("channel_id", "priority", "location__code")
    assert _FEEDS.rows() == list(
        feeds.values_list(
            "channel_id", "location_id", "safety_stock", "location__code", "location__pickup"
        )
    )
    stock = StockLevel.objects.filter(variant_id__in=ids)
    assert sorted(_LEVELS.rows(ids)) == sorted(
        stock.values_list("variant_id", "location_id", "on_hand", "reserved")
    )
    published = sorted(_PUBLISHED.rows(ids))
    assert published == sorted(
        ChannelAvailability.objects.filter(variant_id__in=ids).values_list(
            "channel_id", "variant_id", "available", "locations"
        )
    )
    assert published[0][3][0] == {"location": "depot", "available": 4, "pickup": False}
    assert availability_recompute(variant_ids=ids) == []  # the same figures: nothing changed


# omnichannel.compiled.bulk_insert: the rows an order writes, inserted with the ORM's SQL.


def _order(channel, **fields):
    from orders.models import Order

    return Order(channel=channel, fulfillment="ship", status="placed", currency="EUR", **fields)


def _columns(obj, *, skip=("id", "created_at", "updated_at")):
    """Every column the database holds for `obj`, read back by the ORM."""
    model = type(obj)
    names = [f.attname for f in model._meta.concrete_fields if f.attname not in skip]
    return model.objects.filter(pk=obj.pk).values(*names).get()


def test_bulk_insert_writes_the_rows_bulk_create_writes():
    """Same columns for the same objects (defaults, FKs given as objects or ids, None),
    the primary keys set, auto_now and auto_now_add filled in, `_state` as bulk_create
    leaves it; for rows without a primary key and for one that brings its own."""
    from omnichannel.bulk import next_ids
    from omnichannel.compiled import bulk_insert
    from orders.models import Order, OrderLine, Payment

    channel, variant = ChannelFactory(), VariantFactory()
    [mine] = next_ids(Order, 1)
    ours = bulk_insert([_order(channel, id=mine, number="A-1", subtotal=1, total=1)])
    theirs = Order.objects.bulk_create([_order(channel, number="A-2", subtotal=1, total=1)])
    assert ours[0].pk == mine and theirs[0].pk
    assert {**_columns(ours[0]), "number": "A-2"} == _columns(theirs[0])
    order = Order.objects.get(pk=mine)
    assert order.created_at == ours[0].created_at and order.updated_at == ours[0].updated_at
    assert order.needs_review is False and order.points_earned == 0 and order.discount == 0

    def lines():
        return [
            OrderLine(
                order=order,
                variant=variant,
                sku="S",
                name="n",
                unit_price=Decimal("2.5"),
                quantity=2,
                line_total=Decimal("5.00"),
            ),
            OrderLine(
                order_id=order.pk,
                variant_id=variant.pk,
                sku="T",
                name="",
                unit_price=1,
                quantity=1,
                line_total=1,
            ),
        ]

    ours, theirs = bulk_insert(lines()), OrderLine.objects.bulk_create(lines())
    assert len({line.pk for line in ours + theirs}) == 4
    assert [_columns(line) for line in ours] == [_columns(line) for line in theirs]
    assert all(not line._state.adding and line._state.db == "default" for line in ours)
    assert [line.sku for line in order.lines.order_by("pk")] == ["S", "T", "S", "T"]
    [paid] = bulk_insert([Payment(order=order, method="card", amount=Decimal("5.00"))])
    assert Payment.objects.get(pk=paid.pk).amount == Decimal("5.00")


def test_bulk_insert_builds_each_shape_once_and_then_sends_only_the_statement(monkeypatch):
    """The second insert of as many rows reuses the SQL (one statement, no building);
    another row count is another shape, written right too."""
    import omnichannel.compiled as compiled
    from inventory.models import AvailabilityOutbox

    built = []
    real = compiled._compile_insert
    monkeypatch.setattr(compiled, "_INSERTS", {})
    monkeypatch.setattr(compiled, "_compile_insert", lambda *a: built.append(len(a[2])) or real(*a))
    variants = [VariantFactory() for _ in range(3)]
    with CaptureQueriesContext(connection) as captured:
        for variant in variants:
            compiled.bulk_insert([AvailabilityOutbox(variant=variant)])
        compiled.bulk_insert([AvailabilityOutbox(variant=v) for v in variants[:2]])
    assert built == [1, 2]
    assert len(captured.captured_queries) == 4
    assert sorted(AvailabilityOutbox.objects.values_list("variant_id", flat=True)) == sorted(
        [v.pk for v in variants] + [v.pk for v in variants[:2]]
    )


def test_bulk_insert_refuses_what_the_kept_sql_cannot_hold():
    """An expression as a value (it would be SQL, not a parameter), whether the shape is
    new or kept; rows mixing own and database primary keys; an unsaved related object,
    refused as bulk_create refuses it. Nothing is written."""
    from django.db.models import F

    from omnichannel.compiled import bulk_insert
    from orders.models import Order, Payment

    channel = ChannelFactory()
    order = bulk_insert([_order(channel, number="B-1", subtotal=1, total=1)])[0]
    with pytest.raises(Unpreparable):
        bulk_insert([_order(channel, number="B-2", subtotal=F("total"), total=1)])
    with pytest.raises(Unpreparable):  # two rows: a new shape, refused when built
        bulk_insert(
            [_order(channel, subtotal=1, total=1), _order(channel, subtotal=F("total"), total=1)]
        )
    with pytest.raises(Unpreparable):
        bulk_insert(
            [
                _order(channel, id=order.pk + 1000, subtotal=1, total=1),
                _order(channel, subtotal=1, total=1),
            ]
        )
    with pytest.raises(ValueError, match="unsaved related object"):
        bulk_insert([Payment(order=_order(channel, subtotal=1, total=1), method="card", amount=1)])
    assert list(Order.objects.values_list("number", flat=True)) == ["B-1"]
    assert not Payment.objects.exists()


def test_a_refused_insert_inside_a_transaction_rolls_the_transaction_back():
    """A constraint the row breaks (a payment of 0): IntegrityError, and the transaction
    around it is marked for rollback, as after a failed bulk_create, so nothing of it
    commits even if the caller carries on."""
    from django.db import IntegrityError

    from omnichannel.compiled import bulk_insert
    from orders.models import Order, Payment

    channel = ChannelFactory()
    with transaction.atomic():
        order = bulk_insert([_order(channel, number="C-1", subtotal=1, total=1)])[0]
        bulk_insert([Payment(order=order, method="card", amount=1)])  # the shape is kept
        with pytest.raises(IntegrityError):
            bulk_insert([Payment(order=order, method="card", amount=0)])
        assert transaction.get_rollback()
    assert not Order.objects.filter(number="C-1").exists()


def test_row_update_writes_the_given_columns_of_one_row_and_nothing_else(monkeypatch):
    """As filter(pk=...).update(...): only the columns named, only that row, the number of
    rows updated (0 for a row gone); the SQL is built once per model and columns; an
    expression is refused before anything is written."""
    from django.db.models import F
    from django.utils import timezone

    import omnichannel.compiled as compiled

    monkeypatch.setattr(compiled, "_UPDATES", {})
    variants, location = [VariantFactory() for _ in range(2)], LocationFactory()
    for variant in variants:
        stock_receive(lines=[StockLine(variant.pk, location.pk, 5)], reference="seed")
    mine, other = (StockLevel.objects.get(variant=v) for v in variants)
    later = timezone.now() + timezone.timedelta(minutes=5)
    with transaction.atomic():
        mine.on_hand, mine.reserved, mine.updated_at = 9, 4, later
        with CaptureQueriesContext(connection) as captured:
            assert compiled.row_update(mine, fields=["on_hand", "reserved", "updated_at"]) == 1
            mine.on_hand = 5  # the same shape again: bound into the kept statement
            assert compiled.row_update(mine, fields=["on_hand", "reserved", "updated_at"]) == 1
        assert len(captured.captured_queries) == 2 and len(compiled._UPDATES) == 1
        fresh = StockLevel.objects.get(pk=mine.pk)
        assert (fresh.on_hand, fresh.reserved, fresh.updated_at) == (5, 4, later)
        untouched = StockLevel.objects.get(pk=other.pk)
        assert (untouched.on_hand, untouched.reserved) == (5, 0)
        mine.on_hand = F("on_hand") + 1
        with pytest.raises(Unpreparable):
            compiled.row_update(mine, fields=["on_hand"])
        transaction.set_rollback(True)  # these rows moved without the ledger
    gone = StockLevel(pk=other.pk + 10_000, on_hand=1, reserved=0)
    assert compiled.row_update(gone, fields=["on_hand", "reserved"]) == 0


def _claim(key="k-1", fingerprint="a" * 64):
    from omnichannel.models import IdempotencyRecord

    return IdempotencyRecord(
        scope="client:1", key=key, method="POST", path="/api/v1/orders/",
        fingerprint=fingerprint, status_code=0,
    )  # fmt: skip


def test_insert_unless_taken_writes_a_new_row_once_and_then_skips_its_taken_key():
    """The key's claim: written with its key and auto_now_add set (True), or, for a key
    already written, nothing (False), the first row left as it was; one statement each and
    no error, so the transaction goes on without a savepoint."""
    from omnichannel.compiled import insert_unless_taken
    from omnichannel.models import IdempotencyRecord

    with transaction.atomic():
        first = _claim()
        with CaptureQueriesContext(connection) as captured:
            assert insert_unless_taken(first) is True
            assert insert_unless_taken(_claim(fingerprint="b" * 64)) is False
            assert insert_unless_taken(_claim(key="k-2")) is True  # the kept statement
        assert len(captured.captured_queries) == 3
        assert not any("SAVEPOINT" in q["sql"] for q in captured.captured_queries)
        assert first.pk is not None and first.created_at is not None
        assert not first._state.adding
        rows = IdempotencyRecord.objects.order_by("key").values_list("pk", "key", "fingerprint")
        assert rows.first() == (first.pk, "k-1", "a" * 64)
        assert rows.count() == 2  # the transaction is still usable after the skip


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("writer_ends", ["commit", "rollback"])
def test_insert_unless_taken_waits_for_a_writer_of_the_same_key(writer_ends):
    """Two requests with one key at once: the second waits for the first's transaction on
    the unique index, then skips (it committed) or writes (it rolled back), as create()
    does, and never raises."""
    import threading

    from omnichannel.compiled import insert_unless_taken
    from omnichannel.models import IdempotencyRecord
    from tests.concurrency import until_waiting

    require_postgres()
    claimed, release, results = threading.Event(), threading.Event(), {}

    def writer():
        try:
            with transaction.atomic():
                assert insert_unless_taken(_claim(fingerprint="a" * 64))
                claimed.set()
                assert release.wait(10)
                if writer_ends == "rollback":
                    transaction.set_rollback(True)
        finally:
            connection.close()

    def second():
        try:
            results["second"] = insert_unless_taken(_claim(fingerprint="b" * 64))
        finally:
            connection.close()

    first = threading.Thread(target=writer)
    first.start()
    assert claimed.wait(10)
    then = threading.Thread(target=second)
    then.start()
    until_waiting(1)  # the second waits on the first's key
    release.set()
    for thread in (first, then):
        thread.join(30)
    assert results["second"] is (writer_ends == "rollback")
    assert list(IdempotencyRecord.objects.values_list("fingerprint", flat=True)) == [
        ("a" if writer_ends == "commit" else "b") * 64
    ]


def test_row_update_writes_a_json_value_as_update_does(monkeypatch):
    """A JSON column (the key's answer): the driver wraps the value, and the wrapper
    compares by identity; it is still one parameter, bound into the kept statement."""
    from omnichannel.compiled import insert_unless_taken, row_update
    from omnichannel.models import IdempotencyRecord

    monkeypatch.setattr(omnichannel.compiled, "_UPDATES", {})
    record = _claim()
    assert insert_unless_taken(record)
    for body in ({"total": Decimal("9.90"), "lines": [1, "é"]}, {"code": "out_of_stock"}):
        record.status_code, record.response_body = 201, body
        assert row_update(record, fields=["status_code", "response_body"]) == 1
        fresh = IdempotencyRecord.objects.get(pk=record.pk)
        assert (fresh.status_code, fresh.response_body) == (
            201,
            json.loads(json.dumps(body, cls=DjangoJSONEncoder)),
        )
    assert len(omnichannel.compiled._UPDATES) == 1
