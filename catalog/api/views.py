import django_filters
from django.core.exceptions import ValidationError
from django.db.models import Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import serializers, viewsets

from omnichannel.api.filters import IdFilter, MultipleValueFilter, UtcIsoDateTimeFilter
from omnichannel.auth import api_client_of
from omnichannel.selectors import channel_scope

from ..gtin import barcode_key
from ..models import Product, Variant
from ..selectors import (
    category_subtree_ids,
    product_list,
    products_listing_skus,
    variant_lookup,
)
from .serializers import ProductSerializer, VariantDetailSerializer

CHANNEL_PARAM = OpenApiParameter(
    "channel",
    OpenApiTypes.STR,
    description=(
        "Channel code whose published products and prices to show. An API client always sees "
        "its own channel; naming another is 403 `channel_forbidden`."
    ),
)


def channel_of(request):
    """The channel a catalog read is priced in: a client's own, or the one staff name. Kept
    on the request: the view and its filters (what `sku` finds) read the same one."""
    if not hasattr(request, "_catalog_channel"):
        request._catalog_channel = channel_scope(
            client=api_client_of(request), code=request.query_params.get("channel")
        )
    return request._catalog_channel


class ChannelScopedMixin:
    def channel(self):
        return channel_of(self.request)


class ProductFilter(django_filters.FilterSet):
    search = django_filters.CharFilter(method="filter_search", max_length=200)
    category = django_filters.CharFilter(
        method="filter_category", max_length=120, help_text="Category slug; includes subcategories."
    )
    sku = MultipleValueFilter(
        method="filter_sku",
        help_text="SKUs, repeated or comma-separated: the products the channel sells one of.",
    )
    updated_since = UtcIsoDateTimeFilter(
        field_name="updated_at",
        lookup_expr="gte",
        help_text=(
            "The products changed at or after this time (a change to a variant or a price "
            "changes its product). A product changed since that the channel no longer sells "
            "(discontinued, or its last price there unpublished or deleted) is listed too, "
            "with `variants: []`, if it was listed in the channel at that time or after it: "
            "take it down. Ask from a little before your last poll."
        ),
    )

    class Meta:
        model = Product
        fields = ["search", "category", "sku", "updated_since"]

    def filter_search(self, qs, name, value):
        for term in value.lower().split()[:10]:
            qs = qs.filter(search_text__contains=term)
        return qs

    @extend_schema_field(OpenApiTypes.STR)
    def filter_sku(self, qs, name, value):
        # Only what the channel sells: a product must not be found by a SKU it does not show.
        return products_listing_skus(qs, channel=channel_of(self.request), skus=value)

    def filter_category(self, qs, name, value):
        ids = category_subtree_ids(slug=value)
        if ids is None:
            raise serializers.ValidationError({"category": ["No category has that slug."]})
        return qs.filter(category_id__in=ids)


@extend_schema_view(
    list=extend_schema(parameters=[CHANNEL_PARAM]),
    retrieve=extend_schema(parameters=[CHANNEL_PARAM]),
)
class ProductViewSet(ChannelScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Products with their variants, priced in the caller's channel."""

    queryset = Product.objects.none()
    serializer_class = ProductSerializer
    filterset_class = ProductFilter

    def get_queryset(self):
        return product_list(channel=self.channel(), left_since=self.updated_since())

    def updated_since(self):
        """`?updated_since=` as its filter reads it; None when absent or invalid (the
        filter then answers the 400)."""
        field = ProductFilter.base_filters["updated_since"].field
        try:
            return field.clean(self.request.query_params.get("updated_since"))
        except ValidationError:
            return None


class VariantFilter(django_filters.FilterSet):
    sku = MultipleValueFilter(field_name="sku", lookup_expr="in")
    barcode = MultipleValueFilter(
        method="filter_barcode",
        help_text=(
            "GTINs as scanned, in any of their lengths: EAN-13 4006381333931 and GTIN-14 "
            "04006381333931 find the same variant, and so does 11-digit 12345678905 for UPC-A "
            "012345678905 (its leading zero lost), as the catalog reads it. What is no GTIN "
            "finds nothing, but for a barcode stored before barcodes had to be GTINs: it is "
            "found as it is stored."
        ),
    )
    product = IdFilter(field_name="product_id", help_text="The product's id.")

    class Meta:
        model = Variant
        fields = ["sku", "barcode", "product"]

    @extend_schema_field(OpenApiTypes.STR)
    def filter_barcode(self, qs, name, value):
        # By the GTIN's number; a row kept from before barcodes had to be GTINs (its gtin14
        # NULL, migration 0004) by its barcode as stored, as the label it was sold with reads.
        # A scanned value is keyed as a stored barcode is (`barcode_key`): an 11-digit UPC-A
        # that lost its leading zero is that UPC-A, as the sheet and the admin read it. So a
        # legacy row stored so (its key the UPC-A's, migration 0006) is still found by those
        # 11 digits once the admin has re-spelt its barcode 012345678905.
        keys = {key for key in map(barcode_key, value) if key is not None}
        return qs.filter(Q(gtin14__in=keys) | Q(barcode__in=set(value)))


@extend_schema_view(
    list=extend_schema(parameters=[CHANNEL_PARAM]),
    retrieve=extend_schema(parameters=[CHANNEL_PARAM]),
)
class VariantViewSet(ChannelScopedMixin, viewsets.ReadOnlyModelViewSet):
    """The POS scan path: `?barcode=` or `?sku=`; `variants/{sku}/` for one."""

    queryset = Variant.objects.none()
    serializer_class = VariantDetailSerializer
    filterset_class = VariantFilter
    lookup_field = "sku"
    # A SKU may hold '/' (`TEE/M`, see `sku_validator`): sent as it is or as %2F, it is one
    # path parameter. Nothing else is routed below `variants/{sku}/`; a detail action added
    # here would be taken for a SKU, so it would need a route of its own.
    lookup_value_regex = r".+"

    def get_queryset(self):
        return variant_lookup(channel=self.channel())
