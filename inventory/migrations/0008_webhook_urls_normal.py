import ipaddress
import urllib.parse

from django.db import migrations

DEFAULT_PORTS = {"http": 80, "https": 443}


def normal(url):
    """inventory.webhooks.webhook_url_normal as of this migration; None: a URL it refuses
    (left as it is: its deliveries fail, as they did)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if port == 0 or not parts.hostname or parts.username is not None:
        return None
    if parts.password is not None:
        return None
    try:
        host = f"[{ipaddress.IPv6Address(parts.hostname).compressed}]"
    except ValueError:
        try:
            host = str(ipaddress.IPv4Address(parts.hostname))
        except ValueError:
            try:
                host = parts.hostname.encode("idna").decode("ascii")
            except UnicodeError:
                return None
    scheme = parts.scheme.lower()
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    spelt = urllib.parse.urlunsplit((scheme, host, parts.path or "/", parts.query, ""))
    return spelt if len(spelt) <= 500 else None


def spell_urls_as_registered_now(apps, schema_editor):
    """Registrations now store one spelling per endpoint. Existing URLs take it too, or the
    same spelling registered again would not find its subscription; of two active
    subscriptions of one endpoint (the duplicates this fixes), the oldest stays active."""
    Subscription = apps.get_model("inventory", "WebhookSubscription")
    subscriptions = list(Subscription.objects.order_by("pk"))
    kept = set()
    for sub in subscriptions:  # first the duplicates off, then the new spellings in
        endpoint = (sub.channel_id, normal(sub.url) or sub.url)
        if sub.is_active and endpoint in kept:
            sub.is_active = False
            sub.save(update_fields=["is_active"])
        elif sub.is_active:
            kept.add(endpoint)
    for sub in subscriptions:
        url = normal(sub.url)
        if url is not None and url != sub.url:
            sub.url = url
            sub.save(update_fields=["url"])


class Migration(migrations.Migration):

    dependencies = [
        ("inventory", "0007_webhook_delivery_superseded"),
    ]

    operations = [
        migrations.RunPython(spell_urls_as_registered_now, migrations.RunPython.noop),
    ]
