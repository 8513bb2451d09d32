from django.apps import AppConfig


class OmnichannelConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "omnichannel"
    verbose_name = "Channels and locations"

    def ready(self) -> None:
        # Registers the token scheme with drf-spectacular.
        from .api import schema  # noqa: F401
