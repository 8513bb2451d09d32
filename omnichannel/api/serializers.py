from rest_framework import serializers

from ..models import Channel, ChannelLocation, Location


class AddressSerializer(serializers.Serializer):
    line1 = serializers.CharField()
    line2 = serializers.CharField()
    postal_code = serializers.CharField()
    city = serializers.CharField()
    region = serializers.CharField()
    country = serializers.CharField()


class LocationSerializer(serializers.ModelSerializer):
    address = AddressSerializer(read_only=True)

    class Meta:
        model = Location
        fields = ["code", "name", "kind", "ships", "pickup", "address"]


class ChannelFeedSerializer(serializers.ModelSerializer):
    location = serializers.CharField(source="location.code")

    class Meta:
        model = ChannelLocation
        fields = ["location", "priority", "safety_stock"]


class ChannelSerializer(serializers.ModelSerializer):
    locations = ChannelFeedSerializer(source="feeds", many=True, read_only=True)

    class Meta:
        model = Channel
        fields = ["code", "name", "kind", "currency", "locations"]
