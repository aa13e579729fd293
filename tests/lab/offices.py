"""The project's lab offices, started and stopped with the kit's start.sh / stop.sh.

    python -m tests.lab.offices start [labpjsip|labnots|labmsk|labmsk_nots]
    python -m tests.lab.offices stop  [NAME...]      (default: all four)
    python -m tests.lab.offices status

Four variants of one dialplan (tests/lab/office): ``labpjsip`` (UTC, ``timestampevents =
yes``), ``labnots`` (UTC, no Timestamp headers: tests/lab/office-nots), ``labmsk`` and
``labmsk_nots`` (the same with ``TZ=Europe/Moscow`` in Asterisk's environment: a PBX whose
clock is not UTC). They share one set of ports, so one runs at a time (start.sh stops the
other office of the same lab that holds the port). Ports come from the environment
(``source $PINC_LAB/ports.env``: LAB_AMI_PORT, LAB_SIP_PORT, LAB_AGI_PORT, LAB_SIPP_OFFSET);
the kit is ``$PINC_LAB_KIT``, by default ``../shared/lab`` beside the repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.lab.scenario import OFFICE_VARIANTS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def kit() -> Path:
    return Path(os.environ.get("PINC_LAB_KIT") or ROOT.parent / "shared" / "lab")


def _ports() -> list[str]:
    out = []
    for flag, var in (("--ami-port", "LAB_AMI_PORT"), ("--sip-port", "LAB_SIP_PORT"),
                      ("--agi-port", "LAB_AGI_PORT"), ("--sipp-offset", "LAB_SIPP_OFFSET")):
        if os.environ.get(var):
            out += [flag, os.environ[var]]
    return out


def office_json(name: str) -> dict[str, Any] | None:
    lab = os.environ.get("PINC_LAB", "")
    path = Path(lab) / "asterisk" / f"run-{name}" / "office.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


def running_tz(office: dict[str, Any]) -> str | None:
    """The TZ of the office's Asterisk process, None when it does not run."""
    try:
        env = Path(f"/proc/{office['pid']}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"TZ="):
            return item[3:].decode()
    return "UTC"


def _template_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def start(name: str) -> dict[str, Any]:
    """Start office variant ``name``; restart it when it runs with another clock or from
    templates that changed since (start.sh alone keeps a running office as it is)."""
    folder, tz = OFFICE_VARIANTS[name]
    current = office_json(name)
    stamp = _template_hash(HERE / folder)
    args = [os.fspath(kit() / "asterisk" / "start.sh"), "--office", os.fspath(HERE / folder),
            "--name", name, *_ports()]
    if current is not None and running_tz(current) is not None:
        seen = Path(current["run_dir"]) / "template.sha256"
        old = seen.read_text().strip() if seen.exists() else ""
        if running_tz(current) != tz or old != stamp:
            args.append("--restart")
    subprocess.run(args, check=True, env={**os.environ, "TZ": tz}, stdout=subprocess.DEVNULL)
    office = office_json(name)
    if office is None:
        raise RuntimeError(f"office {name} did not write its office.json")
    (Path(office["run_dir"]) / "template.sha256").write_text(stamp + "\n")
    return office


def stop(name: str) -> None:
    folder, _tz = OFFICE_VARIANTS[name]
    subprocess.run([os.fspath(kit() / "asterisk" / "stop.sh"), "--office",
                    os.fspath(HERE / folder), "--name", name], check=True,
                   stdout=subprocess.DEVNULL)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("start", "stop", "status"):
        print(__doc__)
        return 2
    names = argv[1:] or (["labpjsip"] if argv[0] == "start" else list(OFFICE_VARIANTS))
    for name in names:
        if name not in OFFICE_VARIANTS:
            raise SystemExit(f"unknown office {name}: {', '.join(OFFICE_VARIANTS)}")
        if argv[0] == "start":
            office = start(name)
            print(f"{name}: pid {office['pid']}, AMI {office['ami']['port']}, "
                  f"SIP {office['sip_port']}, TZ {running_tz(office)}")
        elif argv[0] == "stop":
            stop(name)
        else:
            found = office_json(name)
            tz = running_tz(found) if found else None
            print(f"{name}: {'running, TZ ' + tz if tz else 'stopped'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
