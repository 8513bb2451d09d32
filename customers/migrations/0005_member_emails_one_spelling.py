import re
import unicodedata
from encodings import idna as idna2003

import idna
from django.db import migrations

MAX_LENGTH = 254


# omnichannel.domains as of this migration: the rule stays what it was when it ran.
# The dots a domain may be typed with (full stop, ideographic, full-width, half-width).
_DOTS = re.compile("[.\u3002\uff0e\uff61]")


def domain_a_labels(domain: str) -> str:
    """(A copy.) The domain in ASCII, lower-case, label by label:
    - as IDNA 2008 spells it after the UTS 46 mapping browsers use (the `idna` package):
      "exámple.com" composed or decomposed, in full-width letters or upper-case, and
      "xn--exmple-qta.com" are one domain. Not Python's codec alone, which is IDNA 2003 and
      spelt "straße.de" as "strasse.de", another domain;
    - a label IDNA 2008 refuses and resolvers take is kept: an ASCII one as typed ("ab--cd",
      "my_hooks"), a Unicode one as IDNA 2003 spelt it (emoji names registered before 2010:
      "i❤.ws" is "xn--i-7iq.ws", typed either way);
    - an A-label must be one: "xn--zz", or one not in its own spelling, is refused.
    UnicodeError: no spelling (an empty or too long label, a character no IDNA takes)."""
    try:
        mapped = idna.uts46_remap(domain, std3_rules=False, transitional=False)
    except idna.IDNAError:
        mapped = unicodedata.normalize("NFKC", domain).lower()
    labels = _DOTS.split(mapped)
    if labels[-1] == "" and len(labels) > 1:  # a root dot ("example.com.") is kept
        return ".".join(_label(label) for label in labels[:-1]) + "."
    return ".".join(_label(label) for label in labels)


def _label(label: str) -> str:
    if not 0 < len(label) < 64:
        raise UnicodeError("a label is empty or longer than 63 characters")
    try:
        return idna.alabel(label).decode("ascii")
    except idna.IDNAError:
        pass
    if not label.isascii():
        return idna2003.ToASCII(label).decode("ascii")
    if label.startswith("xn--"):
        try:
            typed = label[4:].encode("ascii").decode("punycode")
        except UnicodeError as exc:
            raise UnicodeError(f"{label} is no A-label") from exc
        if idna2003.ToASCII(typed).decode("ascii") != label:
            raise UnicodeError(f"{label} is not in its own spelling")
    return label



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
        else:
            domain = domain_a_labels(domain)
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
