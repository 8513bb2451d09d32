"""Shared check for member privacy tests."""

import json

from django.apps import apps


def assert_no_trace_anywhere(*traces: str) -> None:
    """No row of any table, the project's, the change history's, the admin log's, Django's
    own, holds any of `traces` (compared lower-cased)."""
    wanted = [trace.lower() for trace in traces]
    for model in apps.get_models():
        for row in model._base_manager.values():
            text = json.dumps(row, default=str, ensure_ascii=False).lower()
            for trace in wanted:
                assert trace not in text, (model._meta.label, row)
