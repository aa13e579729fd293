"""The dialplan snippet and docs/agi.md agree with the code."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from pinc.config import AgiConfig, RoutingConfig

ROOT = Path(__file__).resolve().parent.parent.parent
SNIPPET = ROOT / "packaging" / "asterisk" / "extensions-pinc.conf"
DOC = ROOT / "docs" / "agi.md"


def test_snippet_calls_pinc_and_falls_back() -> None:
    text = SNIPPET.read_text(encoding="utf-8")
    defaults = AgiConfig()
    assert f"AGI(agi://{defaults.listen}/responsible," in text
    assert '$["${AGISTATUS}" != "SUCCESS"]?queue' in text
    assert '$["${' + defaults.var_responsible + '}" = ""]?queue' in text
    assert "Queue(" in text
    for name in (defaults.var_responsible, defaults.var_customer):
        assert "${" + name + "}" in text


def test_every_agi_and_routing_key_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for section in (AgiConfig, RoutingConfig):
        for f in fields(section):
            assert re.search(rf"\| `{f.name}` \|", text), f"docs/agi.md lacks {f.name}"


def test_doc_snippet_matches_packaging() -> None:
    doc = DOC.read_text(encoding="utf-8")
    for line in SNIPPET.read_text(encoding="utf-8").splitlines():
        if line.startswith(" same => n") or line.startswith("exten => s,1"):
            assert line in doc, f"docs/agi.md differs from the snippet at {line!r}"
