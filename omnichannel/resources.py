"""The base for every CSV sheet of the back office: a file is imported whole or not at all,
and a row id given twice in one file is an error, never "last row wins"."""

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from import_export import exceptions, resources
from import_export.results import Error, Result


def _spoken(words, last: str) -> str:
    """["sku", "location", "counted"], "and": "sku, location and counted"."""
    return f"{', '.join(words[:-1])} {last} {words[-1]}" if words[1:] else words[0]


class SheetRefused(Error):
    """A file refused as a whole: the import page shows the sentence, with no traceback
    under it (the page prints one under each file error, here "ValueError: " and the
    sentence again)."""

    traceback = ""


class AllOrNothingResource(resources.ModelResource):
    """django-import-export keeps the valid rows of a file with invalid ones unless told
    otherwise; a merchandiser's file is one change, so any bad row rolls back the whole file.
    Two rows with the same id (`import_id_fields`) are two answers to one question: the
    second is an error naming the first."""

    sheet_name = "sheet"
    # The columns a file must have; by default the row id's (`import_id_fields`).
    required_columns: tuple[str, ...] = ()
    # Row id columns whose values are one in upper and lower case (a SKU): two rows giving
    # `NEW-1` and `new-1` give one id twice.
    ids_in_any_case: tuple[str, ...] = ()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._rows_by_id: dict[tuple[str, ...], tuple[int, tuple[str, ...]]] = {}

    def import_data_inner(self, dataset, dry_run, raise_errors, *args, **kwargs):
        """A file without one of its columns is refused before any row is read. The library
        read it row by row: without a count every row was skipped ("Import finished", nothing
        counted); without a row id each row showed its note on `import_id_fields`, with a
        traceback, or failed on the database."""
        required = self.required_columns or tuple(
            self.fields[name].column_name for name in self.get_import_id_fields()
        )
        missing = [column for column in required if column not in (dataset.headers or [])]
        if not missing:
            return super().import_data_inner(dataset, dry_run, raise_errors, *args, **kwargs)
        must = f"the columns {_spoken(required, 'and')}" if required[1:] else "it"
        refusal = ValueError(
            f"The {self.sheet_name} has no {_spoken(missing, 'or')} column: its first line "
            f"must name {must}."
        )
        if raise_errors:
            raise exceptions.ImportError(refusal)
        result = self.get_result_class()()
        result.diff_headers = self.get_diff_headers()
        result.total_rows = len(dataset)
        result.append_base_error(SheetRefused(refusal))
        return result

    def import_data(self, dataset, dry_run=False, raise_errors=False, **kwargs):
        kwargs.setdefault("rollback_on_validation_errors", True)
        kwargs.setdefault("use_transactions", True)
        return super().import_data(dataset, dry_run=dry_run, raise_errors=raise_errors, **kwargs)

    def after_import(self, dataset, result, **kwargs):
        """Not ModelResource.after_import, whose one step (django-import-export 4.4.3) resets
        the model's id sequence to max(id) after an import that created rows, as loaddata
        does for rows with explicit ids. Read inside this transaction, max(id) misses a row
        another transaction has added and not committed yet: the sequence was set back
        below it, and the next row added took its id again (IntegrityError, a 500). No sheet
        carries an id (catalog: sku; prices: sku, channel; cycle count: sku, location), so
        the sequence hands out every id itself and never needs resetting."""
        resources.Resource.after_import(self, dataset, result, **kwargs)

    def before_import_row(self, row, **kwargs):
        columns = [self.fields[name].column_name for name in self.get_import_id_fields()]
        cells = tuple(str(row.get(column) or "").strip() for column in columns)
        if not all(cells):
            return  # the missing id is reported on its own column
        key = tuple(
            cell.upper() if column in self.ids_in_any_case else cell
            for column, cell in zip(columns, cells, strict=True)
        )
        first, spelt = self._rows_by_id.setdefault(key, (kwargs["row_number"], cells))
        if first != kwargs["row_number"]:
            shown = ", ".join(f"{c} {v}" for c, v in zip(columns, cells, strict=True))
            also = "" if spelt == cells else f" (as {', '.join(spelt)})"
            raise ValidationError(
                {columns[0]: f"{shown} is already on row {first} of this file{also}."}
            )


def describe_errors(result: Result, limit: int = 5) -> str:
    """The first few problems of an import, one line each: "row 3: barcode: ..."."""
    lines = [f"file: {error.error}" for error in result.base_errors]
    for number, errors in result.row_errors():
        lines += [f"row {number}: {error.error}" for error in errors]
    for invalid in result.invalid_rows:
        for column, messages in invalid.error_dict.items():
            where = "" if column == NON_FIELD_ERRORS else f"{column}: "
            lines += [f"row {invalid.number}: {where}{message}" for message in messages]
    more = f" (and {len(lines) - limit} more)" if len(lines) > limit else ""
    return "; ".join(lines[:limit]) + more
