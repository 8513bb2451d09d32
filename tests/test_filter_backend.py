"""omnichannel.api.filters.FilterBackend: django-filter, skipped only when there is nothing
to filter by."""

import django_filters
import pytest
from rest_framework import generics, serializers
from rest_framework.test import APIRequestFactory

from omnichannel.api.filters import FilterBackend
from omnichannel.models import Location
from tests.factories import LocationFactory

pytestmark = pytest.mark.django_db


class LocationCodes(serializers.ModelSerializer):
    class Meta:
        model = Location
        fields = ["code"]


class CityFilter(django_filters.FilterSet):
    city = django_filters.CharFilter()

    class Meta:
        model = Location
        fields = ["city"]


class RequiredCityFilter(CityFilter):
    city = django_filters.CharFilter(required=True)


def listing(filterset_class):
    class View(generics.ListAPIView):
        queryset = Location.objects.order_by("code")
        serializer_class = LocationCodes
        filter_backends = [FilterBackend]
        authentication_classes = []
        permission_classes = []
        pagination_class = None

    View.filterset_class = filterset_class
    return View.as_view()


def get(view, query=""):
    response = view(APIRequestFactory().get(f"/locations/{query}"))
    return response.status_code, response.data


@pytest.fixture
def stores():
    LocationFactory(code="lyon", city="Lyon")
    LocationFactory(code="paris", city="Paris")


def test_no_query_parameters_builds_no_filter_form_and_lists_everything(stores, monkeypatch):
    built = []
    real_init = CityFilter.__init__

    def spy(self, *args, **kwargs):
        built.append(kwargs.get("data"))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(CityFilter, "__init__", spy)
    view = listing(CityFilter)
    status, data = get(view)
    assert (status, [row["code"] for row in data]) == (200, ["lyon", "paris"])
    assert built == []
    # With a parameter, django-filter filters as ever, even one it does not know.
    assert [row["code"] for row in get(view, "?city=Paris")[1]] == ["paris"]
    assert [row["code"] for row in get(view, "?other=1")[1]] == ["lyon", "paris"]
    assert len(built) == 2


def test_a_required_filter_still_answers_400_without_parameters(stores):
    status, data = get(listing(RequiredCityFilter))
    assert (status, data["code"]) == (400, "invalid")
    assert "city" in data["errors"]


def test_the_order_list_without_parameters_and_with_them(client, web, store):
    """Through the real API: the page is the same either way it is reached, and an invalid
    filter value is still a 400."""
    from tests.conftest import as_client
    from tests.factories import make_api_client

    _, token = make_api_client(web, name="storefront")
    api = as_client(token)
    assert api.get("/api/v1/orders/").json()["results"] == []
    assert api.get("/api/v1/orders/?status=placed").json()["results"] == []
    refused = api.get("/api/v1/orders/?status=lost")
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid")
