from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from analytics.api.views import ClvView, RetentionView, RfmView, SalesView
from analytics.views import dashboard
from catalog.api.views import ProductViewSet, VariantViewSet
from customers.api.views import MemberViewSet
from inventory.api.views import (
    AdjustmentView,
    AvailabilityViewSet,
    MovementViewSet,
    StockViewSet,
    TransferViewSet,
    WebhookViewSet,
)
from orders.api.views import OrderViewSet, PosSyncView, ReturnView

from .api.views import ChannelViewSet, LocationViewSet
from .health import healthz

router = DefaultRouter()
router.register("channels", ChannelViewSet, basename="channel")
router.register("locations", LocationViewSet, basename="location")
router.register("products", ProductViewSet, basename="product")
router.register("variants", VariantViewSet, basename="variant")
router.register("stock/movements", MovementViewSet, basename="stock-movement")
router.register("stock/transfers", TransferViewSet, basename="stock-transfer")
router.register("stock", StockViewSet, basename="stock")
router.register("availability", AvailabilityViewSet, basename="availability")
router.register("webhooks", WebhookViewSet, basename="webhook")
router.register("orders", OrderViewSet, basename="order")
router.register("members", MemberViewSet, basename="member")

admin.site.site_header = "Omnichannel back office"
admin.site.site_title = "Back office"
admin.site.index_title = "Catalog, stores and channels"
# The back office is the admin: "/" leads there, and the admin offers no "View site" link to a
# site that does not exist.
admin.site.site_url = None

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("dashboard/", dashboard, name="dashboard"),
    path("api/v1/stock/adjustments/", AdjustmentView.as_view(), name="stock-adjustments"),
    path("api/v1/returns/", ReturnView.as_view(), name="returns"),
    path("api/v1/pos/sync/", PosSyncView.as_view(), name="pos-sync"),
    path("api/v1/analytics/sales/", SalesView.as_view(), name="analytics-sales"),
    path("api/v1/analytics/rfm/", RfmView.as_view(), name="analytics-rfm"),
    path("api/v1/analytics/clv/", ClvView.as_view(), name="analytics-clv"),
    path("api/v1/analytics/retention/", RetentionView.as_view(), name="analytics-retention"),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]

handler400 = "omnichannel.errors.json_400"
handler404 = "omnichannel.errors.json_404"
handler500 = "omnichannel.errors.json_500"
