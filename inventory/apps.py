from django.apps import AppConfig


class InventoryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "inventory"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from omnichannel.models import ChannelLocation, Location

        from . import checks  # noqa: F401  (registers them)
        from .availability import feeds_changed

        # Which locations feed a channel, their safety stock and pickup flag all shape what
        # the channel publishes: the change's transaction writes the outbox rows that get it
        # recomputed.
        for model in (ChannelLocation, Location):
            post_save.connect(feeds_changed, sender=model, dispatch_uid=f"avail-{model}")
        post_delete.connect(feeds_changed, sender=ChannelLocation, dispatch_uid="avail-del")
