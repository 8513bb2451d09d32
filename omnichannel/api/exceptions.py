"""The one place that turns any API error into the contract's JSON body.

Body: {"code": "<machine_code>", "detail": "<human sentence>", ...extra}. Validation errors are
400 with code "invalid" and `errors: {field: [messages]}`. A database that cannot be reached, or
a connection lost mid-request, is 503 `service_unavailable` with `retryable: true` and
`Retry-After`: PostgreSQL rolled the transaction back, so a retry (with the same
Idempotency-Key) is safe, and it is not the client's fault. A value that does not fit its
column (DataError) is 400 `out_of_range`, the transaction rolled back likewise.
"""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import DataError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..errors import OUT_OF_RANGE_DETAIL, DomainError, too_large_body

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2


def _field_errors(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return detail
    if isinstance(detail, list):
        return {"non_field_errors": detail}
    return {"non_field_errors": [detail]}


def _service_unavailable(exc: Exception, context: dict[str, Any]) -> Response:
    """The database is down, the connection dropped, or PostgreSQL cancelled the statement
    (deadlock, lock or statement timeout): OperationalError and InterfaceError in Django's
    terms. The transaction is gone with it; the client should try again shortly."""
    request = context.get("request")
    log.warning(
        "database unavailable during %s %s: %s",
        getattr(request, "method", "?"),
        getattr(request, "path", "?"),
        exc,
        exc_info=exc,
    )
    response = Response(
        {
            "code": "service_unavailable",
            "detail": "The database did not answer. Retry in a moment with the same "
            "Idempotency-Key: the request is carried out once.",
            "retryable": True,
        },
        status=503,
    )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _out_of_range(exc: Exception, context: dict[str, Any]) -> Response:
    """A value the checks let through did not fit its column (a count or a points balance
    past the integer range, a text longer once normalised): PostgreSQL refused the statement
    and the transaction is rolled back, so nothing was written. The client's data, not a
    fault of ours; a last line behind the checks that name the field."""
    request = context.get("request")
    log.warning(
        "value out of range during %s %s: %s",
        getattr(request, "method", "?"),
        getattr(request, "path", "?"),
        exc,
    )
    return Response(
        {"code": "out_of_range", "detail": OUT_OF_RANGE_DETAIL},
        status=status.HTTP_400_BAD_REQUEST,
    )


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, OperationalError | InterfaceError):
        return _service_unavailable(exc, context)
    if isinstance(exc, DataError):
        return _out_of_range(exc, context)
    if isinstance(exc, DomainError):
        body = {"code": exc.code, "detail": exc.detail, **exc.extra}
        if exc.code == "invalid" and "errors" not in body:
            # The contract's shape for every `invalid`: the rule's sentence under its field.
            body["errors"] = {exc.field or "non_field_errors": [exc.detail]}
        return Response(body, status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):  # DRF reads request.body, which checks the size
        return Response(too_large_body(), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)  # keeps WWW-Authenticate, Retry-After, ...
    if response is None:
        return None  # a bug, not bad input: let it surface as a 500
    if isinstance(exc, exceptions.ValidationError):
        response.data = {
            "code": "invalid",
            "detail": "The request has invalid fields.",
            "errors": _field_errors(exc.detail),
        }
        return response
    assert isinstance(exc, exceptions.APIException)
    detail = exc.detail
    code = getattr(detail, "code", None) or exc.default_code
    if code in ("error", None):
        code = exc.default_code
    response.data = {"code": str(code), "detail": str(detail)}
    return response
