"""Everything a user can set, call or receive is documented, and the README links the docs.

Like datasette's test_docs.py: adding a config key, a route or a websocket message type
without documenting it fails here.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from pinc.calls.model import CHANGE_KINDS
from pinc.config import SECTIONS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_config_key_is_documented(section: str) -> None:
    text = read("configuration.md")
    assert f"[{section}]" in text, f"docs/configuration.md has no [{section}] section"
    missing = [
        f.name for f in fields(SECTIONS[section]) if not re.search(rf"`{f.name}`", text)
    ]
    assert not missing, f"docs/configuration.md does not document {section}.{missing}"


def test_every_route_is_documented() -> None:
    from pinc.web.app import create_app

    app = create_app(None)  # type: ignore[arg-type]
    text = read("api.md")
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith("/static"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        if f"`{path}`" not in text and f" {path}" not in text:
            missing.append(path)
    assert not missing, f"docs/api.md does not document {missing}"


def test_every_websocket_message_type_is_documented() -> None:
    text = read("api.md")
    missing = [kind for kind in CHANGE_KINDS if f"`{kind}`" not in text]
    assert not missing, f"docs/api.md does not document websocket messages {missing}"


def test_readme_links_every_doc() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if f"docs/{p.name}" not in readme]
    assert not missing, f"README.md does not link {missing}"


def test_changelog_names_this_version() -> None:
    from pinc import __version__

    assert __version__ in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
