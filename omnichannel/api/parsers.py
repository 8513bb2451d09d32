"""The API's one parser: JSON, bounded in size and in depth.

DRF's own JSONParser reads the whole body whatever its size (Django's
DATA_UPLOAD_MAX_MEMORY_SIZE only guards `request.body` and forms), and a body nested a few
thousand levels deep makes `json` raise RecursionError, a 500. Here both are the contract's
errors: 413 `request_too_large` and 400 `parse_error`.
"""

import codecs
import json

from django.conf import settings
from rest_framework import exceptions, parsers, status

# Deeper than any body the API reads (an order's `member` object is 2 levels down).
MAX_DEPTH = 32


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"
    default_detail = "The request body is too large."


def _depth_exceeds(value, limit: int) -> bool:
    """Whether containers nest more than `limit` levels (iterative: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children = current.values()
        elif isinstance(current, list):
            children = current
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
        try:
            text = codecs.decode(raw, encoding)
            data = json.loads(text, parse_constant=json_strict_constant)
        except (ValueError, RecursionError) as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
        if _depth_exceeds(data, MAX_DEPTH):
            raise exceptions.ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.")
        return data


def json_strict_constant(value: str):
    """NaN and Infinity are not JSON."""
    raise ValueError(f"{value} is not valid JSON.")
