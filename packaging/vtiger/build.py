#!/usr/bin/env python3
"""Build pinc's vtiger module into the zip vtiger's Module Manager imports.

    python3 packaging/vtiger/build.py [--out DIR] [--version V]   -> DIR/pinc-vtiger-<V>.zip

Stdlib only. The zip holds what vtlib's importer extracts (manifest.xml first, then
``modules/Pinc``, ``settings/``, ``languages/``, ``layouts/``) with ``@VERSION@`` and
``@EXPORTTIME@`` filled in. It is reproducible: entries sorted, fixed times (from
``SOURCE_DATE_EPOCH`` when set), fixed modes. docs/vtiger-module.md describes the module.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import zipfile
from pathlib import Path
from xml.etree import ElementTree

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MODULE = "Pinc"
# What goes into the zip, relative to this folder; everything else here (build.py) stays out.
INCLUDE = ("manifest.xml", f"modules/{MODULE}", "settings", "languages", "layouts")
TEMPLATED = ("manifest.xml", f"modules/{MODULE}/{MODULE}.php")
DEFAULT_EPOCH = 315532800  # 1980-01-01, the earliest time a zip entry can hold


def pinc_version() -> str:
    text = (ROOT / "pinc" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.M)
    if not match:
        raise SystemExit("build.py: no __version__ in pinc/__init__.py")
    return match.group(1)


def sources() -> list[Path]:
    """Every file of the module, relative to this folder, manifest.xml first."""
    found: list[Path] = []
    for item in INCLUDE:
        path = HERE / item
        if path.is_file():
            found.append(Path(item))
        elif path.is_dir():
            found.extend(
                p.relative_to(HERE)
                for p in sorted(path.rglob("*"))
                if p.is_file() and not p.name.startswith(".") and p.suffix != ".pyc"
            )
        else:
            raise SystemExit(f"build.py: {item} is missing")
    return found


def directories(files: list[Path]) -> list[str]:
    dirs: set[str] = set()
    for f in files:
        for parent in f.parents:
            if str(parent) != ".":
                dirs.add(parent.as_posix() + "/")
    return sorted(dirs)


def render(rel: Path, data: bytes, version: str, exported: str) -> bytes:
    if rel.as_posix() not in TEMPLATED:
        return data
    text = data.decode("utf-8").replace("@VERSION@", version).replace("@EXPORTTIME@", exported)
    if re.search(r"@[A-Z_]+@", text):
        raise SystemExit(f"build.py: an unknown @PLACEHOLDER@ is left in {rel}")
    return text.encode("utf-8")


def build(out_dir: Path, version: str) -> Path:
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)*([a-z0-9.+-]*)", version):
        raise SystemExit(f"build.py: {version!r} is not a version")
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))
    stamp = time.gmtime(max(epoch, DEFAULT_EPOCH))
    exported = time.strftime("%Y-%m-%d %H:%M:%S", stamp)
    files = sources()
    manifest = render(Path("manifest.xml"), (HERE / "manifest.xml").read_bytes(), version, exported)
    root = ElementTree.fromstring(manifest)  # a broken manifest must fail here, not in vtiger
    if root.findtext("name") != MODULE or root.findtext("version") != version:
        raise SystemExit("build.py: manifest.xml names another module or version")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"pinc-vtiger-{version}.zip"
    partial = target.with_suffix(".zip.part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
        entries: list[tuple[str, bytes | None]] = [("manifest.xml", manifest)]
        entries += [(d, None) for d in directories(files)]
        entries += [
            (f.as_posix(), render(f, (HERE / f).read_bytes(), version, exported))
            for f in files
            if f.as_posix() != "manifest.xml"
        ]
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=stamp[:6])
            if data is None:
                info.external_attr = (0o40755 << 16) | 0x10
                zf.writestr(info, b"")
            else:
                info.external_attr = 0o100644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="folder for the zip")
    parser.add_argument("--version", default=None, help="default: pinc's __version__")
    args = parser.parse_args(argv)
    print(build(args.out, args.version or pinc_version()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
