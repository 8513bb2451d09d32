"""Domain errors raised by services, and the JSON answers for errors outside the API views.

`omnichannel.api.exceptions` turns them (and DRF's own) into the contract's body.
"""

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from rest_framework import status


class DomainError(Exception):
    """A business rule said no. Services raise these; the API maps them to status and code."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "error"
    default_detail = "The request cannot be carried out."
    # For code "invalid": the input field the rule is about, where the API lists the sentence
    # in `errors` (None: non_field_errors).
    field: str | None = None

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.default_detail
        self.extra = extra
        super().__init__(self.detail)


class ChannelForbidden(DomainError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "channel_forbidden"
    default_detail = "This API client may not act in that channel."


class LocationForbidden(DomainError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "location_forbidden"
    default_detail = "This API client may not act at that location."


class UnknownChannel(DomainError):
    code = "unknown_channel"
    default_detail = "No channel has that code."


class UnknownLocation(DomainError):
    code = "unknown_location"
    default_detail = "No location has that code."


def json_404(request, exception=None) -> JsonResponse:
    return JsonResponse({"code": "not_found", "detail": "Not found."}, status=404)


def json_500(request) -> JsonResponse:
    return JsonResponse(
        {"code": "server_error", "detail": "Something went wrong on our side; it is logged."},
        status=500,
    )


# A value the checks let through did not fit its column (PostgreSQL's DataError): nothing
# written, the statement's transaction rolled back. The API answers it 400 `out_of_range`;
# the admin shows it on the form.
OUT_OF_RANGE_DETAIL = "A value is too large to be recorded."


def too_large_body() -> dict[str, Any]:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return {
        "code": "request_too_large",
        "detail": f"The request body is larger than {limit} bytes.",
        "limit": limit,
    }


def json_400(request, exception=None) -> JsonResponse:
    if isinstance(exception, RequestDataTooBig):  # outside the API (the admin's forms)
        return JsonResponse(too_large_body(), status=413)
    return JsonResponse({"code": "bad_request", "detail": "Bad request."}, status=400)
