"""Domain names in the one spelling they are stored and compared in: members' email domains
and webhook hosts."""

import re
import unicodedata
from encodings import idna as idna2003

import idna

# The dots a domain may be typed with (full stop, ideographic, full-width, half-width).
_DOTS = re.compile("[.\u3002\uff0e\uff61]")


def domain_a_labels(domain: str) -> str:
    """The domain in ASCII, lower-case, label by label:
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
