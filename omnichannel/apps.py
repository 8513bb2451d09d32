from django.apps import AppConfig


class OmnichannelConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "omnichannel"
    verbose_name = "Channels and locations"

    def ready(self) -> None:
        # Registers the token scheme with drf-spectacular.
        from django.db.models.signals import post_migrate

        from .api import schema  # noqa: F401
        from .roles import sync_roles_after_migrate

        post_migrate.connect(sync_roles_after_migrate, dispatch_uid="omnichannel.roles")
