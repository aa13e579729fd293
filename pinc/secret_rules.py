"""Secrets pinc refuses to start with (``pinc run`` exits 2, ``pinc check`` too)."""

from __future__ import annotations

import re

from pinc.config import Config

# a PHP 7/8 numeric string: vtiger compares secrets with ==, so "0e1" == "0e999" there
_PHP_NUMERIC = re.compile(
    r"[ \t\n\r\v\f]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?[ \t\n\r\v\f]*"
)
MIN_CRM_SECRET = 12
MIN_TOKEN = 16


def weak_secrets(config: Config) -> list[str]:
    """What pinc refuses to start with, each as a message saying what to do."""
    how = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"
    problems = []
    secret = config.crm.secret
    if secret and _PHP_NUMERIC.fullmatch(secret):
        problems.append(
            "crm.secret looks like a number to PHP: vtiger compares it with ==, which takes "
            "two such strings of the same value (\"1e2\" and \"100.0\") as equal, so other "
            f"values would pass for it. Set a new secret with letters in vtiger and in pinc "
            f"({how})"
        )
    elif secret and len(secret) < MIN_CRM_SECRET:
        problems.append(
            f"crm.secret is shorter than {MIN_CRM_SECRET} characters: set a longer one in "
            f"vtiger and in pinc ({how})"
        )
    if config.web.token and len(config.web.token) < MIN_TOKEN:
        problems.append(
            f"web.token is shorter than {MIN_TOKEN} characters: set a longer one ({how}), "
            "or leave it empty to have one generated at each start"
        )
    return problems
