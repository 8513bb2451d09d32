"""CSV of a cycle count (`sku,location,counted`): exported as a count sheet, imported with
django-import-export's preview. Each row is applied by `inventory.services.stock_count`, so
the ledger records every difference; a file with any bad row writes nothing, a row at a
location outside the importing staff member's store limit included; so does a file counting
one SKU at one location twice (`AllOrNothingResource`), or a count that is not a whole number.
A sheet missing one of the three columns is refused whole, before any row is read."""

import re
from decimal import Decimal

from django.core.exceptions import ValidationError
from import_export import fields
from import_export.widgets import IntegerWidget

from catalog.models import Variant
from catalog.resources import LookupWidget
from omnichannel.models import Location
from omnichannel.resources import AllOrNothingResource
from omnichannel.selectors import StoreLimit, location_allowed

from . import services
from .models import StockLevel

# Digits, as a count is written: "12", or "12.0" as a spreadsheet writes a number cell (the
# adjust form and the API's `counted` take it too). Not "1e3" or "1_000", which Python reads
# as 1000, nor "1,000", which is a thousand in one country and one unit in another.
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.0*)?")


class CountedWidget(IntegerWidget):
    """A whole number of units, zero or more; anything else is refused on its row (the
    library's IntegerWidget cut 2.9 down to 2 and read 1e3 as 1000 without a word)."""

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, bool):  # a yes/no cell is no count
            counted = None
        elif isinstance(value, int):
            counted = Decimal(value)
        elif isinstance(value, float):  # a spreadsheet's number cell: 12.0 is 12
            counted = Decimal(value) if value.is_integer() else None
        else:
            text = "" if value is None else str(value).strip()
            if not text:
                raise ValueError("counted is required.")
            counted = Decimal(text) if WHOLE_NUMBER.fullmatch(text) else None
        if counted is None:
            raise ValueError(
                f"counted must be a whole number of units written in digits, such as 12, "
                f"not '{value}'."
            )
        if not 0 <= counted <= services.MAX_QUANTITY:
            raise ValueError(f"counted must be between 0 and {services.MAX_QUANTITY}.")
        return int(counted)


class AllowedLocationWidget(LookupWidget):
    """A location by code, refused when it is outside the store limit."""

    def __init__(self, *, limit: StoreLimit):
        super().__init__(Location, field="code", label="location")
        self.limit = limit

    def clean(self, value, row=None, **kwargs):
        location = super().clean(value, row=row, **kwargs)
        if location is not None and not location_allowed(limit=self.limit, location_id=location.pk):
            raise ValueError(f"Your staff account may not count stock at '{value}'.")
        return location


class CycleCountResource(AllOrNothingResource):
    sheet_name = "count sheet"
    required_columns = ("sku", "location", "counted")
    sku = fields.Field(
        attribute="variant", column_name="sku", widget=LookupWidget(Variant, "sku", "sku")
    )
    location = fields.Field(
        attribute="location",
        column_name="location",
        widget=LookupWidget(Location, "code", "location"),
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

    def get_instance(self, instance_loader, row):
        try:
            return super().get_instance(instance_loader, row)
        except ValueError:
            # A blank or unknown sku or location: the row goes on as new, so that
            # import_instance reports it on its column with the row's other mistakes.
            return None

    def import_instance(self, instance, row, **kwargs):
        """Each mistake named by the sheet's column (`counted`), not the model's field."""
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as exc:
            column = {field.attribute: field.column_name for field in self.get_import_fields()}
            raise ValidationError(
                {column.get(key, key): errors for key, errors in exc.error_dict.items()}
            ) from exc

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
