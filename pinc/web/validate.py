"""Validation of everything a request can put into an AMI action.

Every value that reaches an Originate, a transfer or a channel variable passes
through here first. The rules are deliberately narrower than Asterisk's: an
extension or a number is a short run of safe characters, so no request can add a
header line (CR/LF), a second channel (``&``), a dialplan argument (``,``), a
context (``@``) or a technology prefix (``/``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pinc.config import PbxConfig

# The hard floor under any configured extension_pattern.
_SAFE_EXT = re.compile(r"[A-Za-z0-9_-]{1,32}", re.ASCII)
_NUMBER = re.compile(r"\+?[0-9]{2,20}", re.ASCII)
# vtiger strips "-()" and spaces from what it sends; other clients may not.
_NUMBER_SEPARATORS = re.compile(r"[ ()-]")
_CONTEXT = re.compile(r"[A-Za-z0-9_-]{1,80}", re.ASCII)
_CALL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
_VAR_NAME = re.compile(r"[a-z][A-Za-z0-9_]{0,31}", re.ASCII)
_VAR_VALUE = re.compile(r"[\w .:@+-]{0,128}")

# /makecall parameters that are not channel variables.
MAKECALL_PARAMS = frozenset({"event", "secret", "from", "to", "context", "record"})


class InvalidInput(ValueError):
    """A request value that must not reach AMI; the message says which and why."""


def extension(value: str | None, pbx: PbxConfig, *, what: str = "from") -> str:
    """An employee extension per ``pbx.extension_pattern``, or InvalidInput."""
    if not value:
        raise InvalidInput(f"{what}: an employee extension is required")
    # fullmatch, not the pattern's own ^...$: "$" also matches before a trailing newline.
    if not _SAFE_EXT.fullmatch(value) or not re.fullmatch(pbx.extension_pattern, value):
        raise InvalidInput(f"{what}: not an employee extension")
    return value


def phone_number(value: str | None, *, what: str = "to") -> str:
    """A phone number (``+`` and the separators `` ()-`` allowed) as digits only."""
    if not value:
        raise InvalidInput(f"{what}: a phone number is required")
    raw = value.strip(" ")
    if value.startswith(" ") and raw[:1].isdigit():
        # An unencoded "+" in a query string arrives as a space.
        raw = "+" + raw
    compact = _NUMBER_SEPARATORS.sub("", raw)
    if not _NUMBER.fullmatch(compact):
        raise InvalidInput(f"{what}: not a phone number")
    return compact.lstrip("+")


def destination(value: str | None, pbx: PbxConfig, *, what: str = "to") -> str:
    """An extension or a phone number (transfer targets, click-to-call ``to``)."""
    if value and _SAFE_EXT.fullmatch(value) and re.fullmatch(pbx.extension_pattern, value):
        return value
    return phone_number(value, what=what)


def context(value: str | None, default: str) -> str:
    if not value:
        return default
    if not _CONTEXT.fullmatch(value):
        raise InvalidInput("context: not a dialplan context name")
    return value


def call_id(value: str | None) -> str:
    if not value or not _CALL_ID.fullmatch(value):
        raise InvalidInput("id: not a call id")
    return value


def record_id(value: str | None) -> str | None:
    """The CRM record id (vtiger crmid, digits; ``12x34`` webservice form allowed)."""
    if not value:
        return None
    if not re.fullmatch(r"[0-9]{1,12}(x[0-9]{1,12})?", value, re.ASCII):
        raise InvalidInput("record: not a CRM record id")
    return value


@dataclass(frozen=True)
class Variables:
    accepted: list[tuple[str, str]]
    refused: list[str]  # names only: values may be personal data


def channel_variables(params: Iterable[tuple[str, str]] | Mapping[str, str]) -> Variables:
    """Extra request parameters that may become channel variables.

    Names start with a lower-case letter: Asterisk's own variables and functions
    (``TRANSFER_CONTEXT``, ``CALLERID(num)``, inherited ``__X``) are upper case or
    prefixed, so a request cannot steer the dialplan through them.
    """
    items = params.items() if isinstance(params, Mapping) else params
    accepted: list[tuple[str, str]] = []
    refused: list[str] = []
    for name, value in items:
        if name in MAKECALL_PARAMS:
            continue
        if _VAR_NAME.fullmatch(name) and _VAR_VALUE.fullmatch(value) and "\n" not in value:
            accepted.append((name, value))
        else:
            refused.append(name if _VAR_NAME.fullmatch(name) else repr(name[:32]))
    return Variables(accepted, refused)
