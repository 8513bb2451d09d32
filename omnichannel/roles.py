"""Staff roles as Django groups, defined once here and kept in sync after every migrate.

A merchandiser edits the catalog and reads channels and locations; a manager reads everything
(dashboards come with analytics). Later apps add their permissions to these lists.
"""

from django.db import transaction

MERCHANDISER = "Merchandiser"
MANAGER = "Manager"

_CRUD = ("add", "change", "delete", "view")

ROLE_PERMISSIONS: dict[str, list[str]] = {
    MERCHANDISER: [
        *(
            f"catalog.{action}_{model}"
            for model in ("category", "product", "variant", "channelprice")
            for action in _CRUD
        ),
        "omnichannel.view_channel",
        "omnichannel.view_location",
        "omnichannel.view_channellocation",
        "inventory.view_stocklevel",
        "inventory.view_stockmovement",
        "inventory.add_stockmovement",
        "inventory.view_channelavailability",
        "inventory.view_transfer",
        "inventory.view_transferline",
        "inventory.add_transfer",
        "inventory.change_transfer",
        "orders.view_order",
        # What an order's page shows inside it: without these the admin hides those tables.
        "orders.view_orderline",
        "orders.view_allocation",
        "orders.view_payment",
    ],
    MANAGER: [
        *(f"catalog.view_{model}" for model in ("category", "product", "variant", "channelprice")),
        "omnichannel.view_channel",
        "omnichannel.view_location",
        "omnichannel.view_channellocation",
        "omnichannel.view_apiclient",
        "inventory.view_stocklevel",
        "inventory.view_stockmovement",
        "inventory.view_channelavailability",
        "inventory.view_transfer",
        "inventory.view_transferline",
        "inventory.view_webhooksubscription",
        "inventory.view_webhookdelivery",
        "inventory.view_webhookattempt",
        "omnichannel.view_workerheartbeat",
        "orders.view_order",
        "orders.view_orderline",
        "orders.view_allocation",
        "orders.view_payment",
        "orders.view_return",
        "orders.view_returnline",
        "customers.view_member",
        "customers.view_memberchannel",
        "customers.view_memberalias",
        "customers.view_memberevent",
        "customers.view_pointsentry",
        "analytics.view_memberscore",
        "analytics.view_cohortretention",
        "analytics.view_nightlyrun",
    ],
}


@transaction.atomic
def roles_ensure() -> None:
    """Create or update the role groups so they hold exactly their listed permissions."""
    from django.contrib.auth.models import Group, Permission

    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            found = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if found is not None:  # an app not migrated yet gets it on its own migrate
                wanted.append(found)
        group.permissions.set(wanted)


def sync_roles_after_migrate(sender, **kwargs) -> None:
    roles_ensure()
