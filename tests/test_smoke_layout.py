from django.apps import apps


def test_every_domain_app_is_installed():
    installed = {config.name for config in apps.get_app_configs()}
    assert {"omnichannel", "catalog", "inventory", "orders", "customers", "analytics"} <= installed
