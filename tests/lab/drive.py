"""Drive lab scenarios against a running office and record them.

    python -m tests.lab.drive --list
    python -m tests.lab.drive --office labpjsip [--out DIR] SCENARIO... | all | item:N

The office is found through ``$PINC_LAB/asterisk/run-<office>/office.json`` (start it with
``python -m tests.lab.offices start labpjsip``, or the kit's start.sh). Without ``--office``
each scenario runs on the office it was written for. Files go to ``--out`` (default
``run-<office>/transcripts``): ``<scenario>.ami`` (every byte Asterisk sent), ``.ami.client``,
``.cdr.csv``, ``.sip.txt``, ``.truth.json`` and ``.summary.json`` (the driver's checks).
Exit status 0 only when every scenario passed its checks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import trio

from tests.lab import scenarios  # noqa: F401  (registers every scenario)
from tests.lab.scenario import REGISTRY, Scenario, run_scenario


def lab_dir() -> Path:
    value = os.environ.get("PINC_LAB", "").strip()
    if not value:
        raise SystemExit("PINC_LAB is not set (source your lab's ports.env)")
    return Path(value)


def load_office(name: str) -> dict[str, Any]:
    path = lab_dir() / "asterisk" / f"run-{name}" / "office.json"
    try:
        office: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SystemExit(f"no office {name}: {path} ({exc}); start it first") from exc
    return office


def select(names: list[str]) -> list[Scenario]:
    """Scenario names, ``all``, or ``item:N`` (every scenario of #13's item N)."""
    if not names or names == ["all"]:
        return list(REGISTRY.values())
    out: list[Scenario] = []
    for name in names:
        if name.startswith("item:"):
            out += [s for s in REGISTRY.values() if str(s.item) == name[5:]]
        elif name in REGISTRY:
            out.append(REGISTRY[name])
        else:
            raise SystemExit(f"unknown scenario {name} (see --list)")
    return out


async def drive(selected: list[Scenario], office_name: str | None, out: Path | None,
                pause: float = 1.0) -> bool:
    ok = True
    for sc in selected:
        office = load_office(office_name or sc.office)
        folder = out or Path(office["run_dir"]) / "transcripts"
        summary = await run_scenario(sc, office, folder)
        ok = ok and summary["passed"]
        print(f"{sc.name:<34} {'PASS' if summary['passed'] else 'FAIL'}  "
              f"events={summary['events']:<5} {summary['seconds']:>5.1f}s", flush=True)
        for c in summary["checks"]:
            if not c["ok"]:
                print(f"    failed: {c['check']}  {c['detail'][:300]}", flush=True)
        await trio.sleep(pause)
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.lab.drive", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*")
    ap.add_argument("--office", help="run every scenario on this office (default: its own)")
    ap.add_argument("--out", type=Path, help="where to write (default run-<office>/transcripts)")
    ap.add_argument("--list", action="store_true", help="list the scenarios")
    args = ap.parse_args(argv)
    if args.list:
        for sc in REGISTRY.values():
            print(f"{sc.name:<34} item {sc.item:<2} {sc.office:<12} {sc.how[:90]}")
        return 0
    return 0 if trio.run(drive, select(args.scenarios), args.office, args.out) else 1


if __name__ == "__main__":
    sys.exit(main())
