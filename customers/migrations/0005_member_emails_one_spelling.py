import unicodedata

import idna
from django.db import migrations

MAX_LENGTH = 254


def normal(email):
    """customers.services.normalize_email's spelling as of this migration: trimmed and
    lower-cased, the mailbox in NFC, the domain in IDNA A-labels. None: an email it refuses
    (left as it is)."""
    mailbox, at, domain = email.strip().rpartition("@")
    if not at:
        return None
    try:
        if domain.startswith("[") and domain.endswith("]"):
            domain = domain.lower()  # an address literal
        else:  # IDNA 2008 after the UTS 46 mapping
            domain = idna.encode(domain, uts46=True, transitional=False).decode("ascii")
    except UnicodeError:
        return None
    spelt = unicodedata.normalize("NFC", mailbox.lower()) + "@" + domain
    return spelt if len(spelt) <= MAX_LENGTH else None


def spell_emails_as_found_now(apps, schema_editor):
    """Members are now found by one spelling of an email. Stored ones take it too, or the
    person typing theirs the same way again would not find their member. Members' own emails
    first, then the emails kept from merges, each in id order: a row whose new spelling
    another already holds (two members of one person, made before this spelling) is left
    as it is, for staff to merge."""
    Member = apps.get_model("customers", "Member")
    MemberAlias = apps.get_model("customers", "MemberAlias")
    rows = [
        (Member, pk, email)
        for pk, email in Member.objects.exclude(email=None).order_by("pk").values_list("pk", "email")
    ] + [
        (MemberAlias, pk, value)
        for pk, value in MemberAlias.objects.filter(kind="email")
        .order_by("pk")
        .values_list("pk", "value")
    ]
    held = {email for _, _, email in rows}
    for model, pk, email in rows:
        spelt = normal(email) if email else None
        if spelt is None or spelt == email or spelt in held:
            continue
        field = "email" if model is Member else "value"
        model.objects.filter(pk=pk).update(**{field: spelt})
        held.discard(email)
        held.add(spelt)


class Migration(migrations.Migration):

    dependencies = [
        ("customers", "0004_member_alias"),
    ]

    operations = [
        migrations.RunPython(spell_emails_as_found_now, migrations.RunPython.noop),
    ]
