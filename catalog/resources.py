"""CSV sheets for merchandisers (django-import-export: upload, preview, confirm).

- The catalog sheet, one row per variant: sku, barcode, name, attributes (a JSON object),
  is_active, product_code, product_name, product_description, category (slug). Products are
  found or created by product_code and take their name, description and category from the row.
- The price sheet: sku, channel, amount, published.

A bad value is reported on its row and column; a file with any bad row writes nothing (the
import runs in one transaction, rolled back on any error).
"""

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

from .models import Category, ChannelPrice, Product, Variant
from .services import product_refresh_search_later


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


class BlankIsNullWidget(CharWidget):
    """An empty cell is "no value" (NULL), e.g. a variant without a barcode."""

    def clean(self, value, row=None, **kwargs):
        value = super().clean(value, row=row, **kwargs)
        return value.strip() or None if isinstance(value, str) else value


class AmountWidget(DecimalWidget):
    def clean(self, value, row=None, **kwargs):
        try:
            return super().clean(value, row=row, **kwargs)
        except (ArithmeticError, TypeError) as exc:  # decimal.InvalidOperation
            raise ValueError(f"amount must be a number such as 12.90, not '{value}'.") from exc


class AttributesWidget(JSONWidget):
    def clean(self, value, row=None, **kwargs):
        if value in (None, ""):
            return {}
        try:
            parsed = super().clean(value, row=row, **kwargs)
        except ValueError as exc:  # JSONDecodeError is a ValueError
            raise ValueError(
                f'attributes must be a JSON object such as {{"size": "M"}}: {exc}'
            ) from exc
        if not isinstance(parsed, dict):
            raise ValueError('attributes must be a JSON object such as {"size": "M"}.')
        return parsed


class ProductByCodeWidget(ForeignKeyWidget):
    """Finds the product by `product_code`, or prepares a new one, with name, description
    and category from the same row. Saved just before its variant (see the resource)."""

    def __init__(self):
        super().__init__(Product, field="code")

    def clean(self, value, row=None, **kwargs):
        row = row or {}
        code = str(value or "").strip()
        if not code:
            raise ValueError("product_code is required.")
        product = Product.objects.filter(code=code).first() or Product(code=code)
        name = str(row.get("product_name") or "").strip() or product.name
        if not name:
            raise ValueError("product_name is required for a new product.")
        description = row.get("product_description")
        description = product.description if description is None else str(description)
        category = product.category
        slug = str(row.get("category") or "").strip()
        if slug:
            category = Category.objects.filter(slug=slug).first()
            if category is None:
                raise ValueError(f"Unknown category '{slug}'.")
        before = (product.name, product.description, product.category_id)
        product.name, product.description, product.category = name, description, category
        product.import_changed = product.pk is None or before != (
            name,
            description,
            category.pk if category else None,
        )
        try:
            product.full_clean(exclude=["search_text", "updated_at"], validate_unique=False)
        except ValidationError as exc:
            messages = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise ValueError(messages) from exc
        return product

    def render(self, value, obj=None, **kwargs):
        return value.code if value else ""


class VariantResource(AllOrNothingResource):
    sku = fields.Field(attribute="sku", column_name="sku", widget=CharWidget(allow_blank=False))
    barcode = fields.Field(attribute="barcode", column_name="barcode", widget=BlankIsNullWidget())
    name = fields.Field(attribute="name", column_name="name", widget=CharWidget())
    attributes = fields.Field(
        attribute="attributes", column_name="attributes", widget=AttributesWidget()
    )
    is_active = fields.Field(
        attribute="is_active", column_name="is_active", widget=BooleanWidget(), default=True
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

    class Meta:
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
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True
        use_transactions = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.touched_products: set[int] = set()

    def get_queryset(self):
        return Variant.objects.select_related("product__category").order_by("sku")

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        errors = dict(import_validation_errors or {})
        exclude = set(errors)
        if instance.product_id is None:  # a new product is saved just before its variant
            exclude.add("product")
        try:
            instance.full_clean(exclude=exclude, validate_unique=validate_unique)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)

    def skip_row(self, instance, original, row, import_validation_errors=None):
        product = (
            instance.product
            if instance.product_id or "product" in instance._state.fields_cache
            else None
        )
        if product is not None and getattr(product, "import_changed", False):
            return False
        return super().skip_row(instance, original, row, import_validation_errors)

    def before_save_instance(self, instance, row, **kwargs):
        product = instance.product
        if product.pk is None or getattr(product, "import_changed", False):
            product.save()
            instance.product = product

    def after_save_instance(self, instance, row, **kwargs):
        self.touched_products.add(instance.product_id)

    def after_import(self, dataset, result, **kwargs):
        if not kwargs.get("dry_run") and not result.has_errors():
            product_refresh_search_later(product_ids=self.touched_products)


class ChannelPriceResource(AllOrNothingResource):
    sku = fields.Field(
        attribute="variant", column_name="sku", widget=LookupWidget(Variant, "sku", "sku")
    )
    channel = fields.Field(
        attribute="channel",
        column_name="channel",
        widget=LookupWidget(Channel, "code", "channel"),
    )
    amount = fields.Field(attribute="amount", column_name="amount", widget=AmountWidget())
    published = fields.Field(
        attribute="published", column_name="published", widget=BooleanWidget(), default=True
    )

    class Meta:
        model = ChannelPrice
        name = "Price sheet (sku, channel, amount, published)"
        fields = ("sku", "channel", "amount", "published")
        import_id_fields = ("sku", "channel")
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True
        use_transactions = True

    def get_queryset(self):
        return ChannelPrice.objects.select_related("variant", "channel").order_by(
            "variant__sku", "channel__code"
        )
