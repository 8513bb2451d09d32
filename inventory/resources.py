"""CSV of a cycle count (`sku,location,counted`): exported as a count sheet, imported with
django-import-export's preview. Each row is applied by `inventory.services.stock_count`, so
the ledger records every difference; a file with any bad row writes nothing, a row at a
location outside the importing staff member's store limit included; so does a file counting
one SKU at one location twice (`AllOrNothingResource`), or a count that is not a whole number."""

from decimal import Decimal, InvalidOperation

from import_export import fields
from import_export.widgets import ForeignKeyWidget, IntegerWidget

from catalog.models import Variant
from omnichannel.models import Location
from omnichannel.resources import AllOrNothingResource
from omnichannel.selectors import StoreLimit, location_allowed

from . import services
from .models import StockLevel


class CountedWidget(IntegerWidget):
    def clean(self, value, row=None, **kwargs):
        try:  # the library's IntegerWidget cuts 2.9 down to 2 without a word
            whole = value is None or str(value).strip() == "" or Decimal(str(value)) % 1 == 0
        except (InvalidOperation, ValueError):
            whole = True  # not a number: the library's own message says so
        if not whole:
            raise ValueError(f"counted must be a whole number of units, not {value}.")
        counted = super().clean(value, row=row, **kwargs)
        if counted is None:
            raise ValueError("counted is required.")
        if not 0 <= counted <= services.MAX_QUANTITY:
            raise ValueError(f"counted must be between 0 and {services.MAX_QUANTITY}.")
        return int(counted)


class AllowedLocationWidget(ForeignKeyWidget):
    """A location by code, refused when it is outside the store limit."""

    def __init__(self, *, limit: StoreLimit):
        super().__init__(Location, field="code")
        self.limit = limit

    def clean(self, value, row=None, **kwargs):
        location = super().clean(value, row=row, **kwargs)
        if location is not None and not location_allowed(limit=self.limit, location_id=location.pk):
            raise ValueError(f"Your staff account may not count stock at '{value}'.")
        return location


class CycleCountResource(AllOrNothingResource):
    sku = fields.Field(
        attribute="variant", column_name="sku", widget=ForeignKeyWidget(Variant, field="sku")
    )
    location = fields.Field(
        attribute="location",
        column_name="location",
        widget=ForeignKeyWidget(Location, field="code"),
    )
    counted = fields.Field(attribute="on_hand", column_name="counted", widget=CountedWidget())

    class Meta:
        model = StockLevel
        fields = ("sku", "location", "counted")
        import_id_fields = ("sku", "location")
        skip_unchanged = True
        report_skipped = True
        use_transactions = True

    def __init__(self, *, limit: StoreLimit = None, **kwargs):
        super().__init__(**kwargs)
        self.fields["location"].widget = AllowedLocationWidget(limit=limit)

    def before_import(self, dataset, **kwargs):
        """Every counted row is locked before the first is applied, in the global order."""
        super().before_import(dataset, **kwargs)
        if "sku" not in (dataset.headers or []) or "location" not in dataset.headers:
            return  # the library reports the missing column
        pairs = {
            (str(row.get("sku") or "").strip(), str(row.get("location") or "").strip())
            for row in dataset.dict
        }
        variants = dict(
            Variant.objects.filter(sku__in={sku for sku, _ in pairs}).values_list("sku", "id")
        )
        locations = dict(
            Location.objects.filter(code__in={code for _, code in pairs}).values_list("code", "id")
        )
        services.stock_lock(
            keys=[
                (variants[sku], locations[code])
                for sku, code in pairs
                if sku in variants and code in locations
            ]
        )

    def get_queryset(self):
        return StockLevel.objects.select_related("variant", "location").order_by(
            "location__code", "variant__sku"
        )

    def save_instance(self, instance, is_create, row, **kwargs):
        user = kwargs.get("user")
        services.stock_count(
            variant_id=instance.variant_id,
            location_id=instance.location_id,
            counted=instance.on_hand,
            reference="count-import",
            note=str(kwargs.get("file_name") or "")[:500],
            actor=services.Actor(user_id=getattr(user, "pk", None)),
        )
