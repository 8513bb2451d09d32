import django_filters
from rest_framework import viewsets

from ..auth import api_client_of
from ..models import Channel, Location
from ..selectors import channel_list, location_list
from .filters import YesNoFilter
from .serializers import ChannelSerializer, LocationSerializer


class ChannelFilter(django_filters.FilterSet):
    class Meta:
        model = Channel
        fields = ["kind"]


class ChannelViewSet(viewsets.ReadOnlyModelViewSet):
    """Sales channels. An API client sees its own channel only."""

    queryset = Channel.objects.none()  # for permissions and the schema; see get_queryset
    serializer_class = ChannelSerializer
    filterset_class = ChannelFilter
    lookup_field = "code"

    def get_queryset(self):
        return channel_list(client=api_client_of(self.request))


class LocationFilter(django_filters.FilterSet):
    ships = YesNoFilter()
    pickup = YesNoFilter()

    class Meta:
        model = Location
        fields = ["kind", "ships", "pickup"]


class LocationViewSet(viewsets.ReadOnlyModelViewSet):
    """Stores and warehouses. An API client sees the locations feeding its channel and its own."""

    queryset = Location.objects.none()
    serializer_class = LocationSerializer
    filterset_class = LocationFilter
    lookup_field = "code"

    def get_queryset(self):
        return location_list(client=api_client_of(self.request))
