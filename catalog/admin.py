"""The merchandisers' catalog: search, filters, variants inline on the product, prices
inline on the variant, and CSV sheets with a preview before anything is written."""

from django.contrib import admin
from django.db.models import Count
from import_export.admin import ImportExportModelAdmin

from .models import Category, ChannelPrice, Product, Variant
from .resources import ChannelPriceResource, VariantResource
from .services import product_refresh_search_later


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "parent"]
    list_filter = ["parent"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    autocomplete_fields = ["parent"]
    list_select_related = ["parent"]


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 0
    fields = ["sku", "barcode", "name", "attributes", "is_active"]
    show_change_link = True  # prices are edited on the variant's own page


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "category", "is_active", "variant_count", "updated_at"]
    list_filter = ["is_active", "category"]
    search_fields = ["code", "name", "variants__sku", "variants__barcode"]
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


class ChannelPriceInline(admin.TabularInline):
    model = ChannelPrice
    extra = 0
    fields = ["channel", "amount", "published"]


@admin.register(Variant)
class VariantAdmin(ImportExportModelAdmin):
    resource_classes = [VariantResource]
    list_display = ["sku", "barcode", "name", "product", "is_active"]
    list_filter = ["is_active", "product__category"]
    search_fields = ["sku", "barcode", "name", "product__code", "product__name"]
    autocomplete_fields = ["product"]
    inlines = [ChannelPriceInline]
    list_select_related = ["product"]

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        product_refresh_search_later(product_ids=[form.instance.product_id])


@admin.register(ChannelPrice)
class ChannelPriceAdmin(ImportExportModelAdmin):
    resource_classes = [ChannelPriceResource]
    list_display = ["sku", "channel", "amount", "published"]
    list_editable = ["amount", "published"]
    list_filter = ["channel", "published"]
    search_fields = ["variant__sku", "variant__product__name"]
    autocomplete_fields = ["variant"]
    list_select_related = ["variant", "channel"]

    @admin.display(ordering="variant__sku")
    def sku(self, obj):
        return obj.variant.sku
