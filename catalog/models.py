"""The catalog: a category tree, products, their variants (the sellable SKUs), channel prices."""

from collections.abc import Iterable
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import Upper
from django.utils import timezone

from omnichannel.history import tracked_history

from .gtin import as_gtin, barcode_key, validate_gtin

sku_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$",
    "Letters, digits, '.', '_', '/', '-' (at most 64), starting with a letter or digit.",
)

ATTRIBUTES_MESSAGE = 'attributes must be a JSON object such as {"size": "M"}.'


def attributes_validator(value) -> None:
    """Attributes are named values (size, colour): the API shows them as an object and the
    search indexes their values. JSON itself also allows "red", [..] or 3."""
    if not isinstance(value, dict):
        # Not "invalid": a model form would show its own "Enter a valid JSON." for that code.
        raise ValidationError(ATTRIBUTES_MESSAGE, code="not_an_object")


def spelt_otherwise(instance: models.Model, field: str) -> str | None:
    """The `field` of another row of the model that is `instance`'s but for upper and lower
    case (SKUs, product codes: `SKU-1` and `sku-1` are one), or None."""
    value = getattr(instance, field)
    if not value:
        return None
    others = type(instance)._default_manager.filter(**{f"{field}__iexact": value})
    if not instance._state.adding:
        others = others.exclude(pk=instance.pk)
    return others.exclude(**{field: value}).values_list(field, flat=True).first()


class Category(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=120, unique=True)
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children"
    )

    class Meta:
        ordering = ["slug"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    code = models.CharField(
        max_length=64,
        unique=True,
        validators=[sku_validator],
        help_text="The style or model number that groups the variants.",
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.ForeignKey(
        Category, on_delete=models.PROTECT, related_name="products", null=True, blank=True
    )
    is_active = models.BooleanField(default=True)
    search_text = models.TextField(blank=True, editable=False, help_text="Kept by a task.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)
    history = tracked_history(excluded_fields=["search_text", "updated_at"])

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(Upper("code"), name="uniq_product_code_any_case"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def save(self, *args, **kwargs):
        self.updated_at = timezone.now()
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], "updated_at"}
        super().save(*args, **kwargs)

    def validate_unique(self, exclude=None):
        """A code is one in upper and lower case: refused when another product has it in
        another case, naming that spelling (the admin; the catalog sheet asks too)."""
        exclude = set(exclude or ())
        errors: dict[str, list[ValidationError]] = {}
        if "code" not in exclude and (other := spelt_otherwise(self, "code")):
            errors["code"] = [
                ValidationError(
                    f"Product {other} has this code: codes are the same in upper and lower case.",
                    code="code_in_another_case",
                )
            ]
        try:
            super().validate_unique(exclude=exclude | set(errors))
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)

    def validate_constraints(self, exclude=None):
        # The code in any case is validate_unique's, with a message naming the spelling
        # another product has; the constraint's own would name neither.
        super().validate_constraints(exclude={*(exclude or ()), "code"})


def touch_product(product_id: int) -> None:
    """A change to a variant or a price is a change to its product for `updated_since`."""
    Product.objects.filter(pk=product_id).update(updated_at=timezone.now())


def touch_products(product_ids: Iterable[int]) -> None:
    """`touch_product` for many, where rows change without their model's save or delete
    (a queryset delete, a category renamed under them)."""
    Product.objects.filter(pk__in=list(product_ids)).update(updated_at=timezone.now())


class Gtin14Field(models.CharField):
    """The variant's `barcode` as its GTIN zero-padded to 14 digits (`catalog.gtin.
    barcode_key`; a legacy 11-digit UPC-A without its leading zero has its UPC-A's), NULL
    without one (or for a row saved before a barcode had to be a GTIN, which the scan then
    finds by its barcode as stored): what is unique and what the scan finds. Set from the
    barcode by every save and by `bulk_create` (both call `pre_save`); `update()` and
    `bulk_update()` do not, so they must not write a barcode."""

    def pre_save(self, model_instance, add):
        value = barcode_key(model_instance.barcode)
        setattr(model_instance, self.attname, value)
        return value


class Variant(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="variants")
    sku = models.CharField(max_length=64, unique=True, validators=[sku_validator])
    # As the label or the sheet spells it; one GTIN is one variant whatever its length.
    barcode = models.CharField(
        max_length=14, unique=True, null=True, blank=True, validators=[validate_gtin]
    )
    gtin14 = Gtin14Field(max_length=14, unique=True, null=True, blank=True, editable=False)
    name = models.CharField(max_length=200, blank=True)
    attributes = models.JSONField(
        default=dict, blank=True, validators=[attributes_validator], help_text='e.g. {"size": "M"}'
    )
    is_active = models.BooleanField(default=True)
    history = tracked_history(excluded_fields=["gtin14"])

    # The product this row belongs to in the database (as read, or as last saved): a variant
    # moved to another product changes the one it leaves too (search text, `updated_since`).
    stored_product_id: int | None = None

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.UniqueConstraint(Upper("sku"), name="uniq_variant_sku_any_case"),
        ]

    def __str__(self) -> str:
        return self.sku

    def save(self, *args, **kwargs):
        if self.barcode == "":
            self.barcode = None
        if kwargs.get("update_fields") is not None and "barcode" in kwargs["update_fields"]:
            kwargs["update_fields"] = {*kwargs["update_fields"], "gtin14"}
        left = self.stored_product_id
        super().save(*args, **kwargs)
        touch_product(self.product_id)
        if left is not None and left != self.product_id:
            touch_product(left)
        self.stored_product_id = self.product_id

    def delete(self, *args, **kwargs):
        product_id = self.product_id
        result = super().delete(*args, **kwargs)
        touch_product(product_id)
        return result

    def clean(self):
        # An emptied box in the admin (or `null`) is no attributes: the column holds an
        # object, and NULL was an IntegrityError (the validator does not see empty values).
        if self.attributes is None:
            self.attributes = {}

    def clean_fields(self, exclude=None):
        # As the catalog sheet reads a cell: 12345678905 is UPC-A 012345678905 that lost its
        # leading zero in a spreadsheet, so the admin takes it as that UPC-A too.
        if "barcode" not in (exclude or ()):
            self.barcode = as_gtin(self.barcode)
        super().clean_fields(exclude=exclude)

    def validate_unique(self, exclude=None):
        """A SKU is one in upper and lower case, a GTIN one barcode in any of its lengths:
        refused when another variant has it, naming its spelling (the admin, the catalog
        sheet). `gtin14` follows the barcode, so its own unique check (a message on a field
        nobody typed) is left out. API look-ups by SKU stay exact."""
        exclude = set(exclude or ())
        errors: dict[str, list[ValidationError]] = {}
        if "sku" not in exclude and (other := spelt_otherwise(self, "sku")):
            errors["sku"] = [
                ValidationError(
                    f"Variant {other} has this SKU: SKUs are the same in upper and lower case.",
                    code="sku_in_another_case",
                )
            ]
        others = (
            Variant.objects.all() if self._state.adding else Variant.objects.exclude(pk=self.pk)
        )
        key = barcode_key(self.barcode)
        if "barcode" not in exclude and key is not None:
            holder = others.filter(gtin14=key).values_list("sku", "barcode").first()
            if holder is not None:
                errors["barcode"] = [
                    ValidationError(
                        f"Variant {holder[0]} already has this GTIN (as {holder[1]}).",
                        code="gtin_taken",
                    )
                ]
        try:
            super().validate_unique(exclude=exclude | set(errors) | {"gtin14"})
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)

    def validate_constraints(self, exclude=None):
        # The SKU in any case is validate_unique's, naming the spelling another variant has.
        super().validate_constraints(exclude={*(exclude or ()), "sku"})

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        if "product_id" in field_names:
            instance.stored_product_id = instance.product_id
        return instance


class ChannelPrice(models.Model):
    """The price of a variant in a channel (in the channel's currency); unpublished is hidden."""

    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="prices")
    channel = models.ForeignKey(
        "omnichannel.Channel", on_delete=models.CASCADE, related_name="prices"
    )
    amount = models.DecimalField(
        max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0.00"))]
    )
    published = models.BooleanField(default=True)
    history = tracked_history(verbose_name="price change", verbose_name_plural="price changes")

    class Meta:
        ordering = ["variant", "channel"]
        constraints = [
            models.UniqueConstraint(
                fields=["variant", "channel"], name="uniq_variant_channel_price"
            ),
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="price_amount_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.variant_id}@{self.channel_id}: {self.amount}"

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        touch_product(Variant.objects.filter(pk=self.variant_id).values("product_id")[:1])

    def delete(self, *args, **kwargs):
        variant_id = self.variant_id
        result = super().delete(*args, **kwargs)
        touch_product(Variant.objects.filter(pk=variant_id).values("product_id")[:1])
        return result
