"""The API's one parser: JSON, bounded in depth.

DRF's JSONParser turns only ValueError into a 400: a body nested a few thousand levels deep
makes `json` raise RecursionError, a 500, and one just under the interpreter's limit parses
but then exhausts the stack wherever it is walked (validation, the idempotency fingerprint).
Both are refused here, as 400 `parse_error`. The body's size is bounded before parsing: DRF
reads `request.body`, which enforces DATA_UPLOAD_MAX_MEMORY_SIZE (413, see exceptions.py).
NULs and unpaired surrogates in text are refused by DRF's CharField, field by field.
"""

from rest_framework import exceptions, parsers

# Deeper than any body the API reads (an order's `member` object is 2 levels down).
MAX_DEPTH = 32


def nested_deeper_than(data, limit: int) -> bool:
    """Whether lists and objects nest more than `limit` levels. Iterative: no recursion for a
    deep body to exhaust."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from exc
        if nested_deeper_than(data, MAX_DEPTH):
            raise exceptions.ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.")
        return data
