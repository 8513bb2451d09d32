from urllib.parse import unquote_to_bytes

from django.http import JsonResponse


class RejectNulCharactersMiddleware:
    """A NUL character in a URL is never valid input, and PostgreSQL cannot even compare text
    with one (the driver raises). Refuse it at the door, for every route, with the error body."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raw_query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or b"\x00" in unquote_to_bytes(raw_query):
            return JsonResponse(
                {
                    "code": "invalid",
                    "detail": "The URL contains a NUL character.",
                    "errors": {"non_field_errors": ["NUL characters are not allowed."]},
                },
                status=400,
            )
        return self.get_response(request)
