"""OpenAPI: the token scheme, and the contract's error bodies on every operation."""

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
        "code": serializers.CharField(),
        "detail": serializers.CharField(),
    },
)
ValidationErrorSerializer = inline_serializer(
    name="ValidationError",
    fields={
        "code": serializers.CharField(),
        "detail": serializers.CharField(),
        "errors": serializers.DictField(child=serializers.ListField()),
    },
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

    def get_response_serializers(self):
        declared = super().get_response_serializers()
        if isinstance(declared, dict):
            return declared
        responses = {
            "200" if self.method in ("GET", "PUT", "PATCH") else "201": declared,
            "400": OpenApiResponse(ValidationErrorSerializer, description="Invalid input."),
            "401": OpenApiResponse(ErrorSerializer, description="No or invalid credentials."),
            "403": OpenApiResponse(ErrorSerializer, description="Outside the caller's scope."),
            "503": OpenApiResponse(
                ServiceUnavailableSerializer,
                description="The database did not answer (`service_unavailable`, "
                "`retryable: true`, `Retry-After`); retry with the same Idempotency-Key.",
            ),
        }
        if self.method == "DELETE":
            responses.pop("200", None)
            responses["204"] = None
        if "{" in self.path or self.method == "GET":  # a list answers 404 for a bad page
            responses["404"] = OpenApiResponse(ErrorSerializer, description="Not found.")
        return responses
