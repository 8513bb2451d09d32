from django.core.management.base import BaseCommand, CommandError

from omnichannel.errors import DomainError
from omnichannel.services import api_client_create


class Command(BaseCommand):
    help = "Create an API client for a channel (and a POS location); prints its token last."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--channel", required=True, help="channel code, e.g. web or pos")
        parser.add_argument("--location", help="location code, for a POS terminal")

    def handle(self, *args, name, channel, location=None, **options):
        try:
            client, key = api_client_create(name=name, channel_code=channel, location_code=location)
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc
        self.stdout.write(
            f"Created API client #{client.pk} '{client.name}' for channel {channel}"
            + (f" at {location}" if location else "")
            + ". The token is shown only now; store it safely:"
        )
        self.stdout.write(key)
