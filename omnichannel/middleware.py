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


class ReleaseRequestCyclesMiddleware:
    """Cut the reference cycles every request leaves behind, so reference counting frees what
    it built as soon as it is answered instead of Python's cyclic collector, later, in the
    middle of other requests. Measured under load on the order list: the collector ran every
    ~20 requests, 5-9 ms each time, to free some 600 lists and dicts per page.

    The cycles: a DRF viewset keeps its handlers on itself (`view.get = view.list`, bound
    methods); a DRF request and its view name each other (`parser_context`, and the
    response's `renderer_context`); contrib.messages' storage and the request's `auser`
    (from AuthenticationMiddleware) each hold the request. By the time the response reaches
    this middleware it is rendered and the messages' cookie written, so nothing reads them
    again."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        context = getattr(response, "renderer_context", None)
        if context and getattr(response, "is_rendered", False):
            response.renderer_context = None
            view, drf_request = context.get("view"), context.get("request")
            if drf_request is not None:
                drf_request.parser_context = None
            if view is not None:
                for name, value in list(vars(view).items()):
                    if getattr(value, "__self__", None) is view:
                        delattr(view, name)
        request.__dict__.pop("_messages", None)
        request.__dict__.pop("auser", None)
        return response
