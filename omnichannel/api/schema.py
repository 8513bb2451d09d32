"""OpenAPI: the token scheme, and the contract's error bodies on every operation.

Every operation documents the errors it can answer with, whatever its view declares for
success: 400 (validation, a NUL in the URL, a domain rule), 401, 403, 406 (an Accept header
that JSON does not satisfy); 404 where a path names an
object or a paginated list can be asked for a page that does not exist; 413 and 415 on writes
(bodies are JSON, and bounded); 422 where an `Idempotency-Key` is honoured. A view adds 409
(`CONFLICT`) where a business rule can refuse, and 404 where its body names an object that
may not exist (`returns/`: the order). `tests/test_api_schema_fuzz.py` holds the
schema to what the API really answers.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers


class ApiClientTokenScheme(OpenApiAuthenticationExtension):
    target_class = "omnichannel.auth.ApiClientTokenAuthentication"
    name = "TokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>`, as printed by `manage.py create_api_client`.",
        }


ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "code": serializers.CharField(help_text="Machine-readable, e.g. `insufficient_stock`."),
        "detail": serializers.CharField(help_text="A human sentence."),
        "errors": serializers.DictField(
            required=False,
            help_text="Validation errors (code `invalid`): `{field: [messages]}`, nested as the "
            "input is.",
        ),
    },
)


def error(description: str) -> OpenApiResponse:
    """An error answer: the contract's body (`code`, `detail`, and the error's own fields)."""
    return OpenApiResponse(ErrorSerializer, description=description)


CONFLICT = error(
    "A business rule refused: e.g. `insufficient_stock` (with `sku`, `location`, `available`), "
    "`invalid_transition`, `negative_stock`, `member_conflict`."
)

ServiceUnavailableSerializer = inline_serializer(
    name="ServiceUnavailable",
    fields={
        "code": serializers.CharField(),
        "detail": serializers.CharField(),
        "retryable": serializers.BooleanField(),
    },
)


class AutoSchema(SpectacularAutoSchema):
    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        # Also on operations that declare their own responses: every throttled view may refuse.
        if operation is not None and self.view.get_throttles():
            error = self.resolve_serializer(ErrorSerializer, "response")
            operation["responses"]["429"] = {
                "description": "Over the caller's request rate.",
                "headers": {
                    "Retry-After": {
                        "schema": {"type": "integer"},
                        "description": "Seconds until the caller's count starts again.",
                    }
                },
                "content": {"application/json": {"schema": error.ref}},
            }
        return operation

    def _handler(self):
        action = getattr(self.view, "action", None) or self.method.lower()
        return getattr(self.view, action, None)

    def _idempotent(self) -> bool:
        return getattr(self._handler(), "idempotent", False)

    def _may_send_body(self) -> bool:
        """A body is parsed where the view reads one, and on any POST under session auth
        (the CSRF check reads the form): so 413 and 415 on every write."""
        return self.method in ("POST", "PUT", "PATCH")

    def _error_responses(self) -> dict[str, OpenApiResponse]:
        responses = {
            "400": error("Invalid input: code `invalid` with `errors`, or a domain code."),
            "401": error("No or invalid credentials."),
            "403": error("Outside the caller's scope, or not permitted."),
            "406": error("`not_acceptable`: the Accept header asks for other than JSON."),
            "503": OpenApiResponse(
                ServiceUnavailableSerializer,
                description="The database did not answer (`service_unavailable`, "
                "`retryable: true`, `Retry-After`); retry with the same Idempotency-Key.",
            ),
        }
        if "{" in self.path:
            responses["404"] = error("Not found.")
        elif self._is_list_view() and getattr(self.view, "pagination_class", None):
            responses["404"] = error("No such page.")
        if self._may_send_body():
            responses["413"] = error("`request_too_large`: the body is larger than accepted.")
            responses["415"] = error("`unsupported_media_type`: the body is not JSON.")
        if self._idempotent():
            responses["422"] = error(
                "`idempotency_key_reused`: this Idempotency-Key came with another body."
            )
        return responses

    def _get_response_bodies(self, direction="response"):
        """What the view declares (success, and 409 where it can refuse), plus every error the
        API answers on this operation. Works under `@extend_schema(responses=...)` too, which
        replaces `get_response_serializers`."""
        responses = super()._get_response_bodies(direction)
        for code, response in self._error_responses().items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code, direction=direction)
        return dict(sorted(responses.items()))
