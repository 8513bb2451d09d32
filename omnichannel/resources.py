"""The base for every CSV sheet of the back office: a file is imported whole or not at all."""

from import_export import resources


class AllOrNothingResource(resources.ModelResource):
    """django-import-export keeps the valid rows of a file with invalid ones unless told
    otherwise; a merchandiser's file is one change, so any bad row rolls back the whole file."""

    def import_data(self, dataset, dry_run=False, raise_errors=False, **kwargs):
        kwargs.setdefault("rollback_on_validation_errors", True)
        kwargs.setdefault("use_transactions", True)
        return super().import_data(dataset, dry_run=dry_run, raise_errors=raise_errors, **kwargs)
