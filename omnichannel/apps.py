from django.apps import AppConfig


class OmnichannelConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "omnichannel"
    verbose_name = "Channels and locations"

    def ready(self) -> None:
        # Registers the token scheme with drf-spectacular.
        from django.db.models.signals import post_delete, post_migrate, post_save

        from .api import schema  # noqa: F401
        from .models import ApiClient, Channel, Location
        from .roles import sync_roles_after_migrate

        post_migrate.connect(sync_roles_after_migrate, dispatch_uid="omnichannel.roles")

        # An edited API client, channel or location is looked up afresh by this process's
        # next request (the token look-up cache, omnichannel.services).
        for name, signal in (("save", post_save), ("delete", post_delete)):
            uid = f"omnichannel.forget-api-clients-{name}"
            signal.connect(_forget_client, sender=ApiClient, dispatch_uid=f"{uid}-client")
            signal.connect(_forget_all, sender=Channel, dispatch_uid=f"{uid}-channel")
            signal.connect(_forget_all, sender=Location, dispatch_uid=f"{uid}-location")


def _forget_client(sender, instance, **kwargs) -> None:
    from .services import api_client_forget

    api_client_forget(key_hash=instance.key_hash, client_id=instance.pk)


def _forget_all(sender, **kwargs) -> None:
    from .services import api_client_forget

    api_client_forget()
