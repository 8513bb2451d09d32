"""Who is calling: an API client (token) or a staff member (session), and what they may do."""

import ipaddress

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import DjangoModelPermissions
from rest_framework.settings import api_settings

from . import services
from .models import ApiClient

# last_used_at is written at most this often per client, not on every request.
LAST_USED_RESOLUTION_SECONDS = 60


class ApiClientTokenAuthentication(BaseAuthentication):
    keyword = b"token"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Token <key>'.")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("The token has invalid characters.") from exc
        client = services.api_client_authenticate(key=key)
        if client is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked token.")
        services.api_client_touch(client=client, resolution_seconds=LAST_USED_RESOLUTION_SECONDS)
        return (client, client)

    def authenticate_header(self, request) -> str:
        return "Token"


def client_ip_address(request) -> str | None:
    """The caller's IP address, for the anonymous request rate and the staff login lockout
    (django-axes, AXES_CLIENT_IP_CALLABLE): the address the nearest of NUM_PROXIES proxies
    saw, which it appended to X-Forwarded-For, as DRF's throttles read it. 0 proxies (the
    default): the socket's address, the header being anyone's to write. Without the header,
    or when the entry read is no IP address (more proxies counted than there are), the socket's."""
    remote_addr = request.META.get("REMOTE_ADDR")
    num_proxies = api_settings.NUM_PROXIES or 0
    forwarded_for = request.META.get("HTTP_X_FORWARDED_FOR")
    if num_proxies <= 0 or not forwarded_for:
        return remote_addr
    addresses = forwarded_for.split(",")
    address = addresses[-min(num_proxies, len(addresses))].strip()
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return remote_addr


def api_client_of(request) -> ApiClient | None:
    user = getattr(request, "user", None)
    return user if isinstance(user, ApiClient) else None


class ClientOrStaffPermission(DjangoModelPermissions):
    """API clients pass (each view confines them to their channel and location); staff need
    the Django model permission for the operation, `view` included for reads. A POST to an
    action on an existing object (an order's cancel or ship, a transfer's receive) changes
    it: `change`, as the admin's actions ask, not `add`."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request, view) -> bool:
        if api_client_of(request) is not None:
            return True
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if not (user.is_active and user.is_staff):
            return False
        if getattr(view, "_ignore_model_permissions", False):
            return True
        if getattr(view, "queryset", None) is None and not hasattr(view, "get_queryset"):
            return True
        if request.method == "POST" and getattr(view, "detail", False):
            model = self._queryset(view).model
            return user.has_perms(self.get_required_permissions("PATCH", model))
        return super().has_permission(request, view)
