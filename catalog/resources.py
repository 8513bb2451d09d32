"""CSV sheets for merchandisers (django-import-export: upload, preview, confirm).

- The catalog sheet, one row per variant: sku, barcode, name, attributes (a JSON object),
  is_active, product_code, product_name, product_description, category (slug). Products are
  found or created by product_code and take their name, description and category from the row;
  a blank cell keeps the product's own. A variant given another product_code moves to it.
  A barcode is a GTIN (`catalog.gtin`): a cell with the variant's own in another length, or
  with the leading zeros a spreadsheet drops, leaves it as it is. A SKU or a product code
  is one in upper and lower case: a row spelling one another row has in another case is
  refused, naming that spelling.
- The price sheet: sku, channel, amount, currency (optional), published. Amounts are in the
  channel's currency: a row naming another is refused, never read as the channel's.

A bad value is reported on its row and column; a file with any bad row writes nothing (the
import runs in one transaction, rolled back on any error, see `AllOrNothingResource`). After a
real import the touched products' search text is refreshed, once the transaction commits.

Each row dates its product (`updated_at`) as it is written, but the file becomes visible only
at the commit, minutes later for a long one: a storefront polling `updated_since` meanwhile
missed those products for good. They are dated again just before the commit. The time is
still taken before the commit (as for any write), so a poll within that last instant can miss
them: polls should overlap a little.
"""

import json

from django.core.exceptions import ValidationError
from import_export import fields
from import_export.widgets import (
    BooleanWidget,
    CharWidget,
    DecimalWidget,
    ForeignKeyWidget,
    JSONWidget,
)

from omnichannel.models import Channel
from omnichannel.resources import AllOrNothingResource

from .gtin import as_gtin, barcode_key
from .models import ATTRIBUTES_MESSAGE, Category, ChannelPrice, Product, Variant, touch_products
from .services import product_refresh_search_later


class TrimmedCharWidget(CharWidget):
    """Text with the spaces a spreadsheet leaves around a cell removed."""

    def clean(self, value, row=None, **kwargs):
        value = super().clean(value, row=row, **kwargs)
        return value.strip() if isinstance(value, str) else value


class BlankIsNullWidget(TrimmedCharWidget):
    """An empty cell is "no value" (NULL), e.g. a variant without a barcode."""

    def clean(self, value, row=None, **kwargs):
        return super().clean(value, row=row, **kwargs) or None


class BarcodeWidget(BlankIsNullWidget):
    """A GTIN as the sheet has it. A spreadsheet that took the column for numbers drops a
    UPC-A's leading zero (012345678905 -> 12345678905, 11 digits, which no GTIN has): an
    11-digit cell that is a UPC-A with that zero back is read as that UPC-A. A number cell
    (12345678905.0) is read as its digits."""

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return as_gtin(super().clean(value, row=row, **kwargs))


class BarcodeField(fields.Field):
    """The barcode column. A cell with the stored GTIN's number in another spelling (another
    length, leading zeros lost in a spreadsheet) leaves the barcode as it is: the number
    is the barcode, and the stored spelling is the one on the labels. The stored number is
    the barcode's key (`barcode_key`): a legacy 11-digit barcode, a UPC-A without its leading
    zero, is that UPC-A's number, so the sheet it was exported in leaves it alone too."""

    def save(self, instance, row, is_m2m=False, **kwargs):
        cell = self.clean(row, **kwargs)
        stored = barcode_key(instance.barcode) if instance.pk is not None else None
        if stored is not None and cell and cell.zfill(14) == stored:
            return
        super().save(instance, row, is_m2m=is_m2m, **kwargs)


class StrictBooleanWidget(BooleanWidget):
    """1/0, true/false or yes/no; anything else is a row error, never a silent False
    (the library's widget reads "yes" or "Y" as False)."""

    TRUE = {"1", "true", "yes", "y"}
    FALSE = {"0", "false", "no", "n"}

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):  # a spreadsheet's number cell
            return bool(value)
        text = "" if value is None else str(value).strip().lower()
        if not text:
            return None  # a new row takes the field's default, a row that exists keeps its own
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise ValueError(f"Use 1 or 0 (true/false, yes/no), not '{value}'.")


class FlagField(fields.Field):
    """A yes/no column. An empty cell on a new row takes the field's default; on a row that
    exists it keeps what the row has (an empty `published` cell re-published a hidden price,
    an empty `is_active` one brought a discontinued variant back)."""

    def save(self, instance, row, is_m2m=False, **kwargs):
        if instance.pk is not None and self.widget.clean(row.get(self.column_name)) is None:
            return
        super().save(instance, row, is_m2m=is_m2m, **kwargs)


class AmountWidget(DecimalWidget):
    def clean(self, value, row=None, **kwargs):
        try:
            amount = super().clean(value, row=row, **kwargs)
        except (ArithmeticError, TypeError, ValueError) as exc:  # decimal.InvalidOperation
            raise ValueError(f"amount must be a number such as 12.90, not '{value}'.") from exc
        if amount is None:
            raise ValueError("amount is required.")
        if not amount.is_finite():
            raise ValueError(f"amount must be a number such as 12.90, not '{value}'.")
        return amount


class ChannelCurrencyField(fields.Field):
    """The price sheet's `currency`: a price is in its channel's currency (it has none of
    its own), so the column is exported to say so and never written. A row in another
    currency is refused on that row: the library dropped the column, and `12.90,USD` on
    the EUR web shop became 12.90 EUR. An empty cell, or no column, is the channel's."""

    def save(self, instance, row, is_m2m=False, **kwargs):
        given = str(row.get(self.column_name) or "").strip()
        if not given or instance.channel_id is None:  # an unknown channel has its own error
            return
        channel = instance.channel
        if given.upper() != channel.currency:
            raise ValueError(
                f"Channel '{channel.code}' sells in {channel.currency}, not '{given}': give "
                f"its amounts in {channel.currency}."
            )


class AttributesWidget(JSONWidget):
    def clean(self, value, row=None, **kwargs):
        if value is None or str(value).strip() == "":
            return {}
        try:
            parsed = super().clean(value, row=row, **kwargs)
        except ValueError as exc:  # JSONDecodeError is a ValueError
            raise ValueError(f"{ATTRIBUTES_MESSAGE.rstrip('.')}: {exc}") from exc
        if not isinstance(parsed, dict):
            raise ValueError(ATTRIBUTES_MESSAGE)
        return parsed

    def render(self, value, obj=None, **kwargs):
        # The text as merchandisers typed it ("écru"), not \u00e9 escapes a spreadsheet shows
        # as they are; the file is UTF-8 and reads back to the same value.
        return json.dumps(value, ensure_ascii=False) if value else ""


class LookupWidget(ForeignKeyWidget):
    """A foreign key by a natural key, with a row error (not a traceback) when unknown."""

    def __init__(self, model, field: str, label: str):
        super().__init__(model, field=field)
        self.label = label

    def clean(self, value, row=None, **kwargs):
        value = str(value).strip() if value is not None else ""
        if not value:
            raise ValueError(f"{self.label} is required.")
        try:
            return self.model.objects.get(**{self.field: value})
        except self.model.DoesNotExist as exc:
            raise ValueError(f"Unknown {self.label} '{value}'.") from exc


class ProductByCodeWidget(ForeignKeyWidget):
    """Finds the product by `product_code`, or prepares a new one, with name, description
    and category from the same row. Saved just before its variant (see the resource), so a
    product is only ever written together with a valid variant row."""

    def __init__(self):
        super().__init__(Product, field="code")

    def clean(self, value, row=None, **kwargs):
        row = row or {}
        code = str(value or "").strip()
        if not code:
            raise ValueError("product_code is required.")
        found = {p.code: p for p in Product.objects.filter(code__iexact=code)}
        if found and code not in found:
            raise ValueError(
                f"Product {min(found)} has this code: codes are the same in upper and lower case."
            )
        product = found.get(code) or Product(code=code)
        name = str(row.get("product_name") or "").strip() or product.name
        if not name:
            raise ValueError(f"product_name is required for the new product '{code}'.")
        # A blank cell keeps what the product has, as for the name and the category: the
        # other rows of a product may leave its columns blank (see `before_import_row`).
        description = str(row.get("product_description") or "")
        description = description if description.strip() else product.description
        category = product.category
        slug = str(row.get("category") or "").strip()
        if slug:
            category = Category.objects.filter(slug=slug).first()
            if category is None:
                raise ValueError(f"Unknown category '{slug}'.")
        before = (product.name, product.description, product.category_id)
        product.name, product.description, product.category = name, description, category
        after = (name, description, category.pk if category else None)
        product.import_changed = product.pk is None or before != after
        try:
            product.full_clean(exclude=["search_text", "updated_at"], validate_unique=False)
        except ValidationError as exc:
            messages = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise ValueError(messages) from exc
        return product

    def render(self, value, obj=None, **kwargs):
        return value.code if value else ""


class CatalogSheet(AllOrNothingResource):
    """What both sheets share: errors named by the sheet's columns, a row id given twice in
    one file is an error (never "last row wins"), and the search refresh after a real import.
    """

    class Meta:
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True
        use_transactions = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.touched_products: set[int] = set()

    def product_id_of(self, instance) -> int:
        raise NotImplementedError

    def _column_of(self, key: str) -> str:
        """The sheet's column for a model field or resource attribute name."""
        for field in self.get_import_fields():
            if key in (field.attribute, field.column_name):
                return field.column_name
        return key

    def validation_exclude(self, instance) -> set[str]:
        """Model fields not to check yet (e.g. a foreign key to a row still to be saved)."""
        return set()

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        errors = dict(import_validation_errors or {})
        try:
            instance.full_clean(
                exclude={*errors, *self.validation_exclude(instance)},
                validate_unique=validate_unique,
            )
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        if errors:
            named: dict[str, list] = {}
            for key, messages in errors.items():
                messages = messages if isinstance(messages, list) else [messages]
                named.setdefault(self._column_of(key), []).extend(messages)
            raise ValidationError(named)

    def after_save_instance(self, instance, row, **kwargs):
        super().after_save_instance(instance, row, **kwargs)
        self.touched_products.add(self.product_id_of(instance))

    def after_import(self, dataset, result, **kwargs):
        super().after_import(dataset, result, **kwargs)
        failed = result.has_errors() or result.has_validation_errors()
        if not kwargs.get("dry_run", True) and not failed:
            # Dated now, just before the commit, not when each row was written (see above).
            touch_products(self.touched_products)
            product_refresh_search_later(product_ids=self.touched_products)


class VariantResource(CatalogSheet):
    sheet_name = "catalog sheet"
    ids_in_any_case = ("sku",)
    sku = fields.Field(attribute="sku", column_name="sku", widget=TrimmedCharWidget())
    barcode = BarcodeField(attribute="barcode", column_name="barcode", widget=BarcodeWidget())
    name = fields.Field(attribute="name", column_name="name", widget=CharWidget())
    attributes = fields.Field(
        attribute="attributes", column_name="attributes", widget=AttributesWidget()
    )
    is_active = FlagField(
        attribute="is_active", column_name="is_active", widget=StrictBooleanWidget(), default=True
    )
    product_code = fields.Field(
        attribute="product", column_name="product_code", widget=ProductByCodeWidget()
    )
    product_name = fields.Field(
        attribute="product__name", column_name="product_name", readonly=True
    )
    product_description = fields.Field(
        attribute="product__description", column_name="product_description", readonly=True
    )
    category = fields.Field(
        attribute="product__category__slug", column_name="category", readonly=True
    )

    class Meta(CatalogSheet.Meta):
        model = Variant
        name = "Catalog sheet (one row per variant)"
        fields = (
            "sku",
            "barcode",
            "name",
            "attributes",
            "is_active",
            "product_code",
            "product_name",
            "product_description",
            "category",
        )
        import_id_fields = ("sku",)

    PRODUCT_COLUMNS = ("product_name", "product_description", "category")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._product_rows: dict[str, tuple[int, tuple[str, ...]]] = {}

    def get_queryset(self):
        return Variant.objects.select_related("product__category").order_by("sku")

    def product_id_of(self, instance) -> int:
        return instance.product_id

    def before_import_row(self, row, **kwargs):
        """The rows of one product must describe it the same way (or leave it blank)."""
        super().before_import_row(row, **kwargs)
        code = str(row.get("product_code") or "").strip()
        if not code:
            return
        described = tuple(str(row.get(column) or "").strip() for column in self.PRODUCT_COLUMNS)
        first, seen = self._product_rows.setdefault(code, (kwargs["row_number"], described))
        for column, mine, theirs in zip(self.PRODUCT_COLUMNS, described, seen, strict=True):
            if mine and theirs and mine != theirs:
                raise ValidationError(
                    {column: f"Product '{code}' has {column} '{theirs}' on row {first}."}
                )

    def validation_exclude(self, instance) -> set[str]:
        # A new product is saved just before its variant, once the whole row is valid.
        return {"product"} if instance.product_id is None else set()

    def skip_row(self, instance, original, row, import_validation_errors=None):
        product = instance.product if Variant.product.is_cached(instance) else None
        if getattr(product, "import_changed", False):
            return False
        return super().skip_row(instance, original, row, import_validation_errors)

    def before_save_instance(self, instance, row, **kwargs):
        super().before_save_instance(instance, row, **kwargs)
        if instance.stored_product_id not in (None, instance.product_id):
            # Moved to another product: the one it leaves loses its SKU from the search text.
            self.touched_products.add(instance.stored_product_id)
        product = instance.product
        if product.pk is None or getattr(product, "import_changed", False):
            product.save()
            product.import_changed = False
            instance.product = product


class ChannelPriceResource(CatalogSheet):
    sheet_name = "price sheet"
    sku = fields.Field(
        attribute="variant", column_name="sku", widget=LookupWidget(Variant, "sku", "sku")
    )
    channel = fields.Field(
        attribute="channel",
        column_name="channel",
        widget=LookupWidget(Channel, "code", "channel"),
    )
    amount = fields.Field(attribute="amount", column_name="amount", widget=AmountWidget())
    currency = ChannelCurrencyField(attribute="channel__currency", column_name="currency")
    published = FlagField(
        attribute="published",
        column_name="published",
        widget=StrictBooleanWidget(),
        default=True,
    )

    class Meta(CatalogSheet.Meta):
        model = ChannelPrice
        name = "Price sheet (sku, channel, amount, currency, published)"
        fields = ("sku", "channel", "amount", "currency", "published")
        import_id_fields = ("sku", "channel")

    def get_queryset(self):
        return ChannelPrice.objects.select_related("variant", "channel").order_by(
            "variant__sku", "channel__code"
        )

    def get_instance(self, instance_loader, row):
        try:
            return super().get_instance(instance_loader, row)
        except ValueError:
            # An unknown sku or channel: the row goes on as new, so that import_instance
            # reports it on its column with the row's other mistakes, as a validation error.
            return None

    def product_id_of(self, instance) -> int:
        return instance.variant.product_id
