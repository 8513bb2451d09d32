from django.apps import AppConfig


class OrdersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "orders"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from omnichannel.models import ChannelLocation, Location

        from .routing import forget_on_save

        # Ship orders route from the feeds this process keeps (orders.routing).
        for signal in (post_save, post_delete):
            for model in (ChannelLocation, Location):
                uid = f"orders.routing-forget-{signal is post_save}-{model.__name__}"
                signal.connect(forget_on_save, sender=model, dispatch_uid=uid)
