"""schemathesis against pinc's own OpenAPI document: no input makes any route answer 500.

A real Hypercorn with the real journal serves the API; schemathesis (its CLI, in a
subprocess) sends generated requests to every operation and checks that no answer is
a server error. Two passes: the document as served (so wrong and missing secrets and
tokens are tried too), and a copy whose ``secret`` and ``token`` parameters admit only
the right values, so the generated data reaches each route's own validation.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.web.harness import SECRET, TOKEN, start_env

pytest.importorskip("schemathesis")

EXAMPLES = os.environ.get("PINC_SCHEMATHESIS_EXAMPLES", "20")
SPEC = Path(__file__).resolve().parents[2] / "pinc" / "web" / "openapi.json"


def authorised_copy(path: Path) -> Path:
    spec: dict[str, Any] = json.loads(SPEC.read_text(encoding="utf-8"))
    right = {"secret": SECRET, "token": TOKEN}
    for operations in spec["paths"].values():
        for operation in operations.values():
            for param in operation.get("parameters", []):
                if isinstance(param, dict) and param.get("name") in right:
                    param["required"] = True
                    param["schema"] = {"type": "string", "enum": [right[param["name"]]]}
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


async def schemathesis(location: str, base: str) -> tuple[int, str]:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    command = [
        cli, "run", location, "--url", base,
        "--checks", "not_a_server_error",
        "--max-examples", EXAMPLES,
        "--seed", "1",
        "--header", f"Authorization: Bearer {TOKEN}",
        "--request-timeout", "10",
    ]
    with trio.fail_after(240):
        done = await trio.run_process(command, capture_stdout=True, capture_stderr=True,
                                      check=False)
    return done.returncode, done.stdout.decode(errors="replace") + done.stderr.decode(
        errors="replace")


@pytest.mark.parametrize("authorised", [False, True], ids=["as-served", "authorised"])
async def test_no_route_answers_500(
    nursery: trio.Nursery, tmp_path: Path, authorised: bool
) -> None:
    env = await start_env(nursery, tmp_path)
    base = f"http://127.0.0.1:{env.port}"
    location = (
        str(authorised_copy(tmp_path / "openapi.json")) if authorised
        else f"{base}/api/openapi.json"
    )
    code, output = await schemathesis(location, base)
    assert code == 0, output[-6000:]
    passed = re.search(r"(\d+) generated, (\d+) passed", output)
    assert passed is not None, output[-3000:]
    assert passed.group(1) == passed.group(2) and int(passed.group(1)) > 100
    if authorised:  # the secret got through: vtiger's routes were exercised for real
        assert "403 Forbidden" not in output, output[-3000:]
