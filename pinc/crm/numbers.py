"""Phone numbers and extensions: the one place for digits, national forms and matching.

Everything that turns what Asterisk or a person typed into the form a CRM stores or
matches lives here: routing's canonical form, the form callbacks carry, the suffix a
webservice ``LIKE`` looks for, an employee extension without its channel syntax.
(Validating request input before it reaches AMI is ``pinc.web.validate``'s job.)
"""

from __future__ import annotations

import re
from typing import Final

from pinc.config import RoutingConfig

MAX_DIGITS: Final = 20  # longer is not a phone number (E.164 has at most 15)
_NOT_DIGIT = re.compile(r"[^0-9]")
_NOT_EXT = re.compile(r"[^0-9A-Za-z]")


def digits(raw: object) -> str:
    """ASCII digits only: caller ids reach vtiger's string-built SQL and its JSON decoding."""
    return _NOT_DIGIT.sub("", str(raw or ""))


def extension(raw: object) -> str:
    """An employee extension as vtiger stores ``phone_crm_extension``: no channel syntax."""
    return _NOT_EXT.sub("", str(raw or ""))


def is_extension(value: object, pattern: str | re.Pattern[str]) -> bool:
    """``value`` is an employee extension per ``pbx.extension_pattern`` (a full match)."""
    text = str(value or "")
    if not text:
        return False
    compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
    return compiled.fullmatch(text) is not None


def normalize_number(raw: str, routing: RoutingConfig) -> str:
    """One canonical form per phone number: digits, country code first.

    With country_code "7", trunk_prefix "8" and national_length 10, "8 916 123-45-67",
    "+7 (916) 123-45-67", "79161234567" and "9161234567" are all "79161234567".
    Short numbers (extensions) and foreign numbers keep their digits. Anything without
    digits (``unknown``, ``anonymous``) or absurdly long is "".
    """
    text = raw.strip()
    found = digits(text)
    if not found or len(found) > MAX_DIGITS:
        return ""
    if text.startswith("+"):
        return found
    cc, trunk, length = routing.country_code, routing.trunk_prefix, routing.national_length
    if length:
        if len(found) == length:
            return cc + found
        if trunk and len(found) == len(trunk) + length and found.startswith(trunk):
            return cc + found[len(trunk) :]
    return found


def number_variants(canonical: str, routing: RoutingConfig) -> list[str]:
    """The forms a normalised number may have been stored in (the journal keeps numbers
    as the PBX gave them): 79161234567 -> 79161234567, 89161234567, 9161234567."""
    out = [canonical]
    cc, trunk, length = routing.country_code, routing.trunk_prefix, routing.national_length
    if length and cc and len(canonical) == len(cc) + length and canonical.startswith(cc):
        national = canonical[len(cc) :]
        if trunk:
            out.append(trunk + national)
        out.append(national)
    return out


def national(raw: object, routing: RoutingConfig) -> str:
    """The national significant number (country code or trunk prefix dropped), when the
    digits have one of the configured shapes; otherwise the digits as they are."""
    d = digits(raw)
    cc, prefix, n = routing.country_code, routing.trunk_prefix, routing.national_length
    if cc and len(d) == len(cc) + n and d.startswith(cc):
        return d[len(cc) :]
    if prefix and len(d) == len(prefix) + n and d.startswith(prefix):
        return d[len(prefix) :]
    return d


def crm_number(raw: object, number_format: str, routing: RoutingConfig) -> str:
    """A customer number in the form the CRM's lookup matches (``crm.number_format``).

    ``digits`` is the canonical form: a national number dialled with the trunk prefix or
    without the country code ("8 916 ...", "916 ...") gets the country code, because
    vtiger matches the tail of what it stores (``+7 916 ...``) and "8916..." is no tail of
    it: the call would link no contact.
    """
    d = digits(raw)
    if number_format == "national":
        return national(d, routing)
    if number_format == "plus":
        nat = national(d, routing)
        return "+" + routing.country_code + nat if len(nat) == routing.national_length else d
    return normalize_number(str(raw or ""), routing) or d


def lookup_key(raw: object, routing: RoutingConfig) -> str:
    """What a CRM search matches on: the last ``national_length`` digits (vtiger stores
    numbers as typed, ``+7 (916) 123-45-67``, ``8 916 ...``; the tail is common to all)."""
    d = digits(raw)
    n = routing.national_length
    return d[-n:] if n and len(d) >= n else d


def same_number(stored: object, key: str) -> bool:
    """A stored CRM phone value matches a lookup key: its digits end with the key (a
    short key, such as an extension, must be equal)."""
    d = digits(stored)
    return bool(d) and (d.endswith(key) if len(key) >= 7 else d == key)
