from rest_framework import serializers

from ..models import Product, Variant


class VariantSerializer(serializers.ModelSerializer):
    price = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        read_only=True,
        allow_null=True,
        help_text="Price in the requesting client's channel (null for staff without `channel`).",
    )

    class Meta:
        model = Variant
        fields = ["sku", "barcode", "name", "attributes", "price"]


class ProductSerializer(serializers.ModelSerializer):
    category = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    category_name = serializers.CharField(source="category.name", read_only=True, allow_null=True)
    variants = VariantSerializer(source="listed_variants", many=True, read_only=True)

    class Meta:
        model = Product
        fields = [
            "id",
            "code",
            "name",
            "description",
            "category",
            "category_name",
            "variants",
            "updated_at",
        ]


class VariantProductSerializer(serializers.ModelSerializer):
    category = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = Product
        fields = ["id", "code", "name", "category"]


class VariantDetailSerializer(VariantSerializer):
    product = VariantProductSerializer(read_only=True)

    class Meta(VariantSerializer.Meta):
        fields = [*VariantSerializer.Meta.fields, "product"]
