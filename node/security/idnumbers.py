"""Identity document numbers: validation, normalisation and masking.

Resident ID numbers follow GB 11643-1999: 17 digits, then a check character "10X98765432"[sum mod 11] with
weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2. A lowercase x is accepted and normalised; 15-digit first-generation
numbers are upgraded (century 19 inserted, check character computed). The birth date must be a real date
between 1900-01-01 and today. The same check applies to the residence permits of Hong Kong, Macau and Taiwan
residents (which begin 81/82/83) and to the 2023 foreigner permanent-residence card (which begins 9).

Only ASCII is accepted: full-width digits, letters and spaces (what Chinese input methods type, U+FF01-U+FF5E,
and the ideographic space U+3000) are folded to ASCII first; anything else outside ASCII (Arabic-Indic or
Devanagari digits, mathematical or circled digits, a dotless i that upper-cases to I...) is refused, and the
patterns use `[0-9]` with re.ASCII, never a Unicode-wide digit class. So one person has one spelling, one blind
index and one account. This is the single parser of ID numbers: account opening, registration, sign-in, search
and bulk import all call `normalise_id_number`.
"""

from __future__ import annotations

import datetime as dt
import re

from node.errors import InvalidIdNumber

__all__ = ["ID_TYPES", "gb11643_check_char", "mask_id_number", "normalise_id_number"]

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"

ID_TYPES = {
    "resident_id": "居民身份证",
    "hmt_residence_permit": "港澳台居民居住证",
    "hk_macau_permit": "港澳居民来往内地通行证",
    "taiwan_permit": "台湾居民来往大陆通行证",
    "foreign_permanent_residence": "外国人永久居留身份证",
    "passport": "护照",
}

_PATTERNS = {
    "hk_macau_permit": re.compile(r"[HM][0-9]{8}(?:[0-9]{2})?", re.ASCII),
    "taiwan_permit": re.compile(r"[0-9]{8}(?:[0-9]{2})?", re.ASCII),
    "passport": re.compile(r"[A-Z0-9]{5,20}", re.ASCII),
    "foreign_permanent_old": re.compile(r"[A-Z]{3}[0-9]{12}", re.ASCII),
}
_EIGHTEEN = re.compile(r"[0-9]{17}[0-9X]", re.ASCII)
_FIFTEEN = re.compile(r"[0-9]{15}", re.ASCII)
# Full-width forms of ASCII (U+FF01..U+FF5E) to ASCII, and the ideographic space to a space.
_FOLD = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def gb11643_check_char(first17: str) -> str:
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def _checked_18(number: str, *, today: dt.date | None = None) -> str:
    if not _EIGHTEEN.fullmatch(number):
        raise InvalidIdNumber("an ID number of this type has 17 digits and a digit or X")
    if gb11643_check_char(number[:17]) != number[17]:
        raise InvalidIdNumber("the ID number's check character is wrong (GB 11643-1999)")
    try:
        born = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidIdNumber("the ID number's birth date is not a real date") from None
    if not dt.date(1900, 1, 1) <= born <= (today or dt.date.today()):
        raise InvalidIdNumber("the ID number's birth date is not plausible")
    return number


def normalise_id_number(id_type: str, number: str, *, today: dt.date | None = None) -> str:
    """Return the canonical form of an ID number, or raise InvalidIdNumber (whose message never repeats
    the number itself, so it can be logged and reported safely)."""
    if id_type not in ID_TYPES:
        raise InvalidIdNumber(f"unknown ID type; known types: {', '.join(ID_TYPES)}", code="invalid_id_type")
    value = (number or "").translate(_FOLD).strip().replace(" ", "")
    if not value:
        raise InvalidIdNumber("the ID number is empty")
    if not value.isascii():  # checked before upper(): 'ı'.upper() == 'I', 'ſ'.upper() == 'S'
        raise InvalidIdNumber("an ID number has only the digits 0-9 and Latin letters")
    value = value.upper()
    if id_type == "resident_id":
        if _FIFTEEN.fullmatch(value):
            first17 = value[:6] + "19" + value[6:]
            value = first17 + gb11643_check_char(first17)
        if len(value) != 18:
            raise InvalidIdNumber("a resident ID number has 18 characters (or 15 digits, first generation)")
        return _checked_18(value, today=today)
    if id_type == "hmt_residence_permit":
        if not value.startswith(("81", "82", "83")):
            raise InvalidIdNumber("a Hong Kong, Macau or Taiwan residence permit number begins 81, 82 or 83")
        return _checked_18(value, today=today)
    if id_type == "foreign_permanent_residence":
        if len(value) == 18:
            if not value.startswith("9"):
                raise InvalidIdNumber("an 18-character permanent-residence card number begins with 9")
            return _checked_18(value, today=today)
        if _PATTERNS["foreign_permanent_old"].fullmatch(value):
            return value
        raise InvalidIdNumber("a permanent-residence card number has 15 (3 letters, 12 digits) or 18 characters")
    if not _PATTERNS[id_type].fullmatch(value):
        raise InvalidIdNumber(f"the number does not have the format of a {ID_TYPES[id_type]}")
    return value


def mask_id_number(number: str) -> str:
    """`310101********123X` for 18 characters; shorter numbers keep two characters at each end."""
    if len(number) >= 15:
        return number[:6] + "*" * (len(number) - 10) + number[-4:]
    if len(number) > 4:
        return number[:2] + "*" * (len(number) - 4) + number[-2:]
    return "*" * len(number)
