"""The merchandisers' catalog: search, filters, variants inline on the product, prices
inline on the variant, and CSV sheets with a preview before anything is written. Products,
variants and prices have a "History" page (who, when, from where, old -> new), and "Price
changes" lists every price change across the catalog.

Any save here that changes a product, a variant or a price queues the product's search-text
refresh (it runs once the transaction commits), as an import does.
"""

from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import Count, OuterRef, Subquery
from import_export.admin import ImportExportModelAdmin

from omnichannel.admin_base import (
    AllOrNothingImportMixin,
    DateLookupsMixin,
    HistoryAdmin,
    ReadOnlyAdminMixin,
)

from .gtin import barcode_key
from .models import Category, ChannelPrice, Product, Variant, touch_products
from .resources import ChannelPriceResource, VariantResource
from .services import category_edited, product_refresh_search_later


class CategoryForm(forms.ModelForm):
    class Meta:
        model = Category
        fields = ["name", "slug", "parent"]

    def clean_parent(self):
        """A category under itself or its own subcategory would make the tree a loop."""
        parent = self.cleaned_data.get("parent")
        node, seen = parent, set()
        while self.instance.pk and node is not None and node.pk not in seen:
            if node.pk == self.instance.pk:
                raise forms.ValidationError(
                    "A category cannot sit under itself or one of its subcategories."
                )
            seen.add(node.pk)
            node = node.parent
        return parent


@admin.register(Category)
class CategoryAdmin(DateLookupsMixin, admin.ModelAdmin):
    form = CategoryForm
    list_display = ["name", "slug", "parent"]
    list_filter = ["parent"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    autocomplete_fields = ["parent"]
    list_select_related = ["parent"]

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if change:
                category_edited(category=obj, changed=form.changed_data)


class CatalogSheetAdmin(AllOrNothingImportMixin, HistoryAdmin, ImportExportModelAdmin):
    """Import (upload, preview, confirm) needs the rights to add and change everything the
    sheet writes; export needs the right to view. The library's default lets any staff
    member who reaches the list import."""

    import_permissions: tuple[str, ...]

    def has_import_permission(self, request):
        return bool(self.import_permissions) and request.user.has_perms(self.import_permissions)

    def has_export_permission(self, request):
        return self.has_view_permission(request)


class VariantInlineFormSet(forms.BaseInlineFormSet):
    """Each row is checked against the database (`Variant.validate_unique`); two rows of
    the page giving one SKU in two cases, or one GTIN in two lengths, are checked here, or
    the second was an IntegrityError when saved."""

    def clean(self):
        super().clean()
        skus: dict[str, str] = {}
        gtins: dict[str, str] = {}
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or (self.can_delete and self._should_delete_form(form)):
                continue
            sku = data.get("sku") or ""
            if sku.upper() in skus and skus[sku.upper()] != sku:
                form.add_error("sku", f"The row of {skus[sku.upper()]} has this SKU too.")
            elif sku:
                skus[sku.upper()] = sku
            key = barcode_key(data.get("barcode"))
            if key in gtins:
                form.add_error("barcode", f"The row of {gtins[key]} has this GTIN too.")
            elif key is not None:
                gtins[key] = sku or "another variant"


class VariantInline(admin.TabularInline):
    model = Variant
    formset = VariantInlineFormSet
    extra = 0
    fields = ["sku", "barcode", "name", "attributes", "is_active"]
    show_change_link = True  # prices are edited on the variant's own page


@admin.register(Product)
class ProductAdmin(HistoryAdmin):
    list_display = ["code", "name", "category", "is_active", "variant_count", "updated_at"]
    list_filter = ["category", "is_active"]
    search_fields = ["code", "name", "variants__sku", "variants__barcode", "variants__gtin14"]
    autocomplete_fields = ["category"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [VariantInline]
    list_select_related = ["category"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(variant_total=Count("variants"))

    @admin.display(description="variants", ordering="variant_total")
    def variant_count(self, obj):
        return obj.variant_total

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        product_refresh_search_later(product_ids=[form.instance.pk])


class ChannelPriceForm(forms.ModelForm):
    """A price is the price of one variant in one channel: once it exists, its variant and
    channel are fixed (shown, not editable). Re-pointed at another variant, the product it
    left was not dated for `updated_since`, and the row's earlier history, read by variant
    and channel (offline sales priced as rung up), read as that variant's price. To move a
    price, delete it and add one. The price sheet cannot move one: its row id is the sku and
    channel themselves."""

    FIXED = ("variant", "channel")

    class Meta:
        model = ChannelPrice
        fields = ["variant", "channel", "amount", "published"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            for name in self.FIXED:
                if name in self.fields:
                    self.fields[name].disabled = True


class ChannelPriceInline(admin.TabularInline):
    model = ChannelPrice
    form = ChannelPriceForm
    extra = 0
    fields = ["channel", "amount", "published"]


@admin.register(Variant)
class VariantAdmin(CatalogSheetAdmin):
    resource_classes = [VariantResource]
    import_permissions = (
        "catalog.add_product",
        "catalog.change_product",
        "catalog.add_variant",
        "catalog.change_variant",
    )
    list_display = ["sku", "barcode", "name", "product", "is_active"]
    list_filter = ["is_active", "product__category"]
    search_fields = ["sku", "barcode", "gtin14", "name", "product__code", "product__name"]
    autocomplete_fields = ["product"]
    inlines = [ChannelPriceInline]
    list_select_related = ["product"]

    def get_export_queryset(self, request):
        return super().get_export_queryset(request).select_related("product__category")

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        product_ids = [form.instance.product_id]
        if "product" in form.changed_data and form.initial.get("product"):
            product_ids.append(form.initial["product"])  # moved: the old product changed too
        product_refresh_search_later(product_ids=product_ids)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        product_refresh_search_later(product_ids=[obj.product_id])

    def delete_queryset(self, request, queryset):
        product_ids = list(queryset.values_list("product_id", flat=True))
        with transaction.atomic():
            super().delete_queryset(request, queryset)
            touch_products(product_ids)  # a queryset delete skips Variant.delete, which does it
            product_refresh_search_later(product_ids=product_ids)


@admin.register(ChannelPrice)
class ChannelPriceAdmin(CatalogSheetAdmin):
    resource_classes = [ChannelPriceResource]
    form = ChannelPriceForm
    import_permissions = ("catalog.add_channelprice", "catalog.change_channelprice")
    list_display = ["sku", "channel", "amount", "published"]
    list_editable = ["amount", "published"]
    list_filter = ["channel", "published"]
    search_fields = ["variant__sku", "variant__barcode", "variant__product__name"]
    autocomplete_fields = ["variant"]
    list_select_related = ["variant", "channel"]

    @admin.display(ordering="variant__sku")
    def sku(self, obj):
        return obj.variant.sku

    def save_model(self, request, obj, form, change):  # also each row saved from the list
        super().save_model(request, obj, form, change)
        product_refresh_search_later(product_ids=[obj.variant.product_id])

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        product_refresh_search_later(product_ids=[obj.variant.product_id])

    def delete_queryset(self, request, queryset):
        product_ids = list(queryset.values_list("variant__product_id", flat=True))
        with transaction.atomic():
            super().delete_queryset(request, queryset)
            touch_products(product_ids)  # a queryset delete skips ChannelPrice.delete
            product_refresh_search_later(product_ids=product_ids)


PriceHistory = ChannelPrice.history.model


@admin.register(PriceHistory)
class PriceChangeAdmin(DateLookupsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every price written, newest first, with the amount before it: who (staff member or
    API client), when, and from where (admin, CSV import, API, system). For anyone who may
    see prices."""

    list_display = [
        "when",
        "sku",
        "channel",
        "old_amount",
        "amount",
        "published",
        "change",
        "staff",
        "history_api_client",
        "history_source",
        "reason",
    ]
    list_filter = [
        "history_source",
        "history_type",
        "channel",
        ("history_user", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["variant__sku"]
    date_hierarchy = "history_date"
    list_select_related = [
        "variant",
        "channel",
        "history_user",
        "history_api_client__channel",
        "history_api_client__location",
    ]

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("catalog.view_channelprice")

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def get_queryset(self, request):
        before = PriceHistory.objects.filter(
            id=OuterRef("id"), history_id__lt=OuterRef("history_id")
        ).order_by("-history_id")
        return (
            super()
            .get_queryset(request)
            .annotate(amount_before=Subquery(before.values("amount")[:1]))
        )

    @admin.display(ordering="variant__sku")
    def sku(self, obj):
        return obj.variant.sku if obj.variant else f"variant #{obj.variant_id}"

    @admin.display(description="old amount")
    def old_amount(self, obj):
        return obj.amount_before

    @admin.display(ordering="history_date")
    def when(self, obj):
        return obj.history_date

    @admin.display()
    def change(self, obj):
        return obj.get_history_type_display()

    @admin.display(description="staff member")
    def staff(self, obj):
        return obj.history_user

    @admin.display()
    def reason(self, obj):
        return obj.history_change_reason
