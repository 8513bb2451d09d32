"""GTINs, the numbers under a barcode (GS1): one rule for the catalog, the sheet and the scan.

A GTIN has 8 (EAN-8), 12 (UPC-A), 13 (EAN-13) or 14 digits (GTIN-14), the last a GS1 mod-10
check digit. Leading zeros do not change the number: UPC-A 012345678905 is EAN-13
0012345678905 and GTIN-14 00012345678905, one article. Scanners send either (a DataBar or
ITF-14 reader pads to 14 digits), so a variant is found, and kept unique, by its number
zero-padded to 14 digits: `gtin14`.
"""

from django.core.exceptions import ValidationError

LENGTHS = (8, 12, 13, 14)


def check_digit(body: str) -> int:
    """The GS1 check digit for `body` (the digits before it): weights 3, 1, 3, ... from the
    right, the digit that makes the sum a multiple of ten."""
    total = sum(int(digit) * (3 if i % 2 == 0 else 1) for i, digit in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def gtin14(value: str | None) -> str | None:
    """The GTIN zero-padded to 14 digits; None when `value` is no GTIN (a length none has,
    a character that is no digit, a wrong check digit)."""
    if not value or len(value) not in LENGTHS or not (value.isascii() and value.isdigit()):
        return None
    if check_digit(value[:-1]) != int(value[-1]):
        return None
    return value.zfill(14)


def as_gtin(value: str | None) -> str | None:
    """A barcode as the catalog reads it: an 11-digit value that is a UPC-A without its
    leading zero (a spreadsheet that took the column for numbers made 012345678905 into
    12345678905, 11 digits, which no GTIN has) is that UPC-A; any other value is as given.
    The catalog sheet, the admin and the model's validation read a barcode through it."""
    if value and len(value) == 11 and gtin14(f"0{value}") is not None:
        return f"0{value}"
    return value


def barcode_key(barcode: str | None) -> str | None:
    """The key (`Variant.gtin14`) of a stored barcode: its GTIN's, also for an 11-digit
    barcode saved before barcodes had to be GTINs that is a UPC-A without its leading zero
    (the label reads 012345678905, the scan sends that). None when it is no GTIN."""
    return gtin14(as_gtin(barcode))


def validate_gtin(value: str) -> None:
    """The model's validator for a barcode: a GTIN, with its check digit right."""
    if gtin14(value) is not None:
        return
    if len(value) not in LENGTHS or not (value.isascii() and value.isdigit()):
        raise ValidationError(
            "A GTIN has 8, 12, 13 or 14 digits (EAN-8, UPC-A, EAN-13, GTIN-14).",
            code="gtin_length",
        )
    raise ValidationError(
        "Not a GTIN: the last digit is not the check digit of the ones before it (a typo?).",
        code="gtin_check_digit",
    )
