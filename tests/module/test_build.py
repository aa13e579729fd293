"""packaging/vtiger/build.py: the zip vtiger's Module Manager imports."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from xml.etree import ElementTree

from pinc import __version__
from tests.module.conftest import MODULE_SRC

BUILD = MODULE_SRC / "build.py"
# What vtlib's importer extracts (Vtiger_PackageImport::initImport); nothing else may ship.
EXTRACTED = ("modules/Pinc/", "settings/", "languages/", "layouts/")


def build(out: Path, *args: str) -> Path:
    done = subprocess.run([sys.executable, str(BUILD), "--out", str(out), *args],
                          capture_output=True, text=True, timeout=60, check=True)
    return Path(done.stdout.strip())


def test_the_zip_is_what_module_manager_imports(tmp_path: Path) -> None:
    path = build(tmp_path)
    assert path == tmp_path / f"pinc-vtiger-{__version__}.zip"
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert names[0] == "manifest.xml"
        manifest = ElementTree.fromstring(zf.read("manifest.xml"))
        pinc_php = zf.read("modules/Pinc/Pinc.php").decode()
        for name in names:
            assert "@VERSION@" not in zf.read(name).decode("utf-8", "replace"), name
    assert manifest.findtext("name") == "Pinc"
    assert manifest.findtext("type") == "extension"  # no entity module: no tables of calls
    assert manifest.findtext("version") == __version__
    assert manifest.findtext("dependencies/vtiger_version") == "7.0.0"
    assert f"const VERSION = '{__version__}';" in pinc_php
    stray = [n for n in names if not (
        n == "manifest.xml" or n.startswith(EXTRACTED)
        or (n.endswith("/") and any(e.startswith(n) for e in EXTRACTED)))]
    assert stray == []
    for needed in ("modules/Pinc/resources/pinc.js", "modules/Pinc/actions/Transfer.php",
                   "modules/Pinc/uninstall.php", "settings/views/Status.php",
                   "modules/Pinc/views/Card.php", "layouts/v7/modules/Pinc/Card.tpl",
                   "layouts/v7/modules/Settings/Pinc/Status.tpl",
                   "languages/ru_ru/Settings/Pinc.php"):
        assert needed in names
    assert not [n for n in names if n.endswith((".py", ".pyc", ".md"))]


def test_the_build_is_reproducible(tmp_path: Path) -> None:
    first = build(tmp_path / "a").read_bytes()
    second = build(tmp_path / "b").read_bytes()
    assert first == second


def test_a_version_can_be_given(tmp_path: Path) -> None:
    path = build(tmp_path, "--version", "9.9.9")
    with zipfile.ZipFile(path) as zf:
        assert ElementTree.fromstring(zf.read("manifest.xml")).findtext("version") == "9.9.9"
