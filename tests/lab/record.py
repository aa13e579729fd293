"""(Re-)record the lab fixtures: tests/fixtures/lab/<scenario>.{ami,cdr.csv,truth.json,sip.txt}.

    source $PINC_LAB/ports.env
    python -m tests.lab.record all                 # every scenario, every office variant
    python -m tests.lab.record item:3 park_retrieve # some of them
    python -m tests.lab.record --tries 5 ...       # retries of a run whose checks failed

Per scenario: start the office variant it was written for (tests.lab.offices), run it with
the driver (tests.lab.drive), and keep its files only when every check of the driver passed
(a failed check means the ground truth would not describe what Asterisk did: the run is
retried). Files of a scenario are replaced as a whole; tests/fixtures/lab/index.json is
rewritten from the registry. The offices started here are stopped at the end (--keep: not).
Nothing is edited: the transcript is every byte Asterisk sent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import trio

from tests.lab import offices
from tests.lab.drive import select
from tests.lab.scenario import REGISTRY, Scenario, run_scenario

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lab"
KEPT = (".ami", ".cdr.csv", ".truth.json", ".sip.txt")


def write_index() -> None:
    """index.json: scenario -> item, shape, tech, office, how (from the registry, for the
    scenarios that have fixtures)."""
    index = {}
    for sc in sorted(REGISTRY.values(), key=lambda s: (s.item, s.name)):
        if (FIXTURES / f"{sc.name}.truth.json").exists():
            index[sc.name] = {"item": sc.item, "shape": sc.shape, "tech": sc.tech,
                              "office": sc.office, "description": sc.how}
    (FIXTURES / "index.json").write_text(json.dumps(index, indent=1, ensure_ascii=False) + "\n",
                                         encoding="utf-8")


async def record(selected: list[Scenario], tries: int) -> tuple[list[str], dict[str, int]]:
    failed: list[str] = []
    attempts: dict[str, int] = {}
    work = Path(os.environ["PINC_LAB"]) / "record-tmp"
    for sc in sorted(selected, key=lambda s: (s.office, s.item, s.name)):
        office = offices.start(sc.office)
        ok = False
        for attempt in range(1, tries + 1):
            attempts[sc.name] = attempt
            shutil.rmtree(work, ignore_errors=True)
            summary = await run_scenario(sc, office, work)
            bad = [c for c in summary["checks"] if not c["ok"]]
            print(f"{sc.name:<34} try {attempt}: {'PASS' if not bad else 'FAIL'} "
                  f"{summary['seconds']:>5.1f}s " + "; ".join(c["check"] for c in bad)[:200],
                  flush=True)
            if summary["passed"]:
                ok = True
                break
            await trio.sleep(3)  # let retransmissions of the failed run die out
        if not ok:
            failed.append(sc.name)
            continue
        for old in FIXTURES.glob(f"{sc.name}.*"):
            old.unlink()
        for suffix in KEPT:
            src = work / f"{sc.name}{suffix}"
            if src.exists():
                shutil.copyfile(src, FIXTURES / src.name)
        await trio.sleep(1)
    return failed, attempts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.lab.record", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*")
    ap.add_argument("--tries", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="leave the offices running")
    args = ap.parse_args(argv)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    selected = select(args.scenarios)
    used = sorted({s.office for s in selected})
    t0 = time.monotonic()
    try:
        failed, _attempts = trio.run(record, selected, args.tries)
    finally:
        write_index()
        if not args.keep:
            for name in used:
                offices.stop(name)
    print(f"recorded {len(selected) - len(failed)} of {len(selected)} scenarios in "
          f"{time.monotonic() - t0:.0f} s" + (f"; failed: {' '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
