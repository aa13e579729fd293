"""Compare pinc's calls with the ground truth, field by field, and print what differs.

    python -m tests.lab.compare                        # replay every lab fixture
    python -m tests.lab.compare item:4 park_retrieve   # some of them (names, item:N)
    python -m tests.lab.compare --calls calls.jsonl tests/fixtures/lab/X.truth.json
                                                       # a live journal (pinc calls --json)

Replay mode runs each fixture's transcript through pinc's tracker (``replay_calls``, what
``pinc replay`` prints) with the configuration of the office it was recorded on
(`replay_config`). Calls are paired in the order they started. The fields: direction, from,
to, status, answered_by, legs (ext and result, in order), transfers (kind, from, to),
recording (true/false, or the exact relative file), talk and duration within their bracket,
and the notes pinc must show: ``voicemail`` (the call's ``voicemail`` field) and ``stale``
(``end_reason == "stale"``). The other notes describe the call and are not compared.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from pinc.calls.replay import replay_calls
from pinc.config import Config, PbxConfig, load_config
from tests.lab.truth import load

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lab"
Diff = tuple[str, str, Any, Any]  # (call, field, truth, got)


def replay_config(truth: dict[str, Any]) -> Config:
    """pinc's configuration for the office a fixture was recorded on: its phones, contexts
    and recordings folder (and its time zone, once pinc's [pbx] has a key for it)."""
    pbx: dict[str, Any] = {
        "extension_pattern": r"^\d{3}$",
        "trunk_contexts": ["from-trunk"],
        "internal_contexts": ["from-internal"],
        "recordings_dir": truth["recordings_dir"],
    }
    if "timezone" in {f.name for f in fields(PbxConfig)}:
        pbx["timezone"] = truth["timezone"]
    return load_config(None, env={}, overrides={"pbx": pbx})


def _legs(call: dict[str, Any]) -> list[str]:
    return [f"{x['ext']}:{x['result']}" for x in call["legs"]]


def _transfers(call: dict[str, Any]) -> list[str]:
    return [f"{t['kind']}:{t['from']}>{t['to']}" for t in call["transfers"]]


def compare_call(want: dict[str, Any], got: dict[str, Any], label: str) -> list[Diff]:
    diffs: list[Diff] = []
    for key in ("direction", "from", "to", "status", "answered_by"):
        if got.get(key) != want[key]:
            diffs.append((label, key, want[key], got.get(key)))
    if _legs(got) != _legs(want):
        diffs.append((label, "legs", _legs(want), _legs(got)))
    if _transfers(got) != _transfers(want):
        diffs.append((label, "transfers", _transfers(want), _transfers(got)))
    rec, got_rec = want["recording"], got.get("recording")
    if (isinstance(rec, str) and got_rec != rec) or (isinstance(rec, bool)
                                                     and bool(got_rec) is not rec):
        diffs.append((label, "recording", rec, got_rec))
    for key in ("talk", "duration"):
        lo, hi = want[f"{key}_min"], want[f"{key}_max"]
        value = got.get(key)
        if not isinstance(value, int) or not lo <= value <= hi:
            diffs.append((label, key, f"{lo}..{hi}", value))
    notes = want.get("notes", {})
    if "voicemail" in notes and bool(got.get("voicemail")) is not notes["voicemail"]:
        diffs.append((label, "voicemail", notes["voicemail"], got.get("voicemail")))
    if "stale" in notes and (got.get("end_reason") == "stale") is not notes["stale"]:
        diffs.append((label, "stale", notes["stale"], got.get("end_reason")))
    return diffs


def compare(truth: dict[str, Any], calls: list[dict[str, Any]]) -> list[Diff]:
    """Every difference between the truth's calls and ``calls`` (in start order)."""
    want = truth["calls"]
    diffs: list[Diff] = []
    if len(calls) != len(want):
        diffs.append(("-", "calls", len(want), len(calls)))
    for n, (w, g) in enumerate(zip(want, calls, strict=False)):
        diffs += compare_call(w, g, f"{n + 1}")
    return diffs


def replay(truth_path: Path) -> list[dict[str, Any]]:
    truth = load(truth_path)
    transcript = truth_path.with_name(truth_path.name.replace(".truth.json", ".ami"))
    return replay_calls(replay_config(truth), [transcript.read_bytes()])


def table(rows: list[tuple[str, Diff]]) -> str:
    out = [f"{'scenario':<32} {'call':<4} {'field':<11} {'truth':<34} got"]
    for name, (call, key, want, got) in rows:
        out.append(f"{name:<32} {call:<4} {key:<11} {json.dumps(want, ensure_ascii=False):<34} "
                   f"{json.dumps(got, ensure_ascii=False)}")
    return "\n".join(out)


def _paths(names: list[str]) -> list[Path]:
    if not names:
        return sorted(FIXTURES.glob("*.truth.json"))
    index = json.loads((FIXTURES / "index.json").read_text(encoding="utf-8"))
    out: list[Path] = []
    for name in names:
        if name.endswith(".json"):
            out.append(Path(name))
        elif name.startswith("item:"):
            out += [FIXTURES / f"{n}.truth.json" for n, e in index.items()
                    if str(e["item"]) == name[5:]]
        else:
            out.append(FIXTURES / f"{name}.truth.json")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.lab.compare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("truths", nargs="*", help="scenario names, item:N, or truth files")
    ap.add_argument("--calls", type=Path, help="JSON lines of calls (pinc calls --json)")
    args = ap.parse_args(argv)
    rows: list[tuple[str, Diff]] = []
    paths = _paths(args.truths)
    matching = 0
    for path in paths:
        truth = load(path)
        if args.calls:
            lines = args.calls.read_text(encoding="utf-8").splitlines()
            calls = [json.loads(x) for x in lines if x.strip()]
        else:
            calls = replay(path)
        diffs = compare(truth, calls)
        matching += not diffs
        rows += [(truth["scenario"], d) for d in diffs]
    if rows:
        print(table(rows))
    print(f"{matching} of {len(paths)} scenarios match their ground truth")
    return 0 if matching == len(paths) else 1


if __name__ == "__main__":
    sys.exit(main())
