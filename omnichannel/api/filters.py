"""Filter building blocks shared by the apps' APIs."""

import django_filters
from django import forms
from django.core.validators import ProhibitNullCharactersValidator


class MultipleValueField(forms.Field):
    """A query parameter given repeatedly (`?sku=A&sku=B`) or comma-separated (`?sku=A,B`)."""

    widget = forms.SelectMultiple  # reads QueryDict.getlist

    def to_python(self, value):
        if not value:
            return []
        if isinstance(value, str):
            value = [value]
        items = [part.strip() for item in value for part in str(item).split(",")]
        return [item for item in items if item]

    def validate(self, value):
        super().validate(value)
        if len(value) > 200:
            raise forms.ValidationError("At most 200 values.")
        for item in value:
            ProhibitNullCharactersValidator()(item)
            if len(item) > 100:
                raise forms.ValidationError("A value is longer than 100 characters.")


class MultipleValueFilter(django_filters.Filter):
    field_class = MultipleValueField

    def filter(self, qs, value):
        if not value:
            return qs
        return qs.filter(**{f"{self.field_name}__{self.lookup_expr}": value}).distinct()
