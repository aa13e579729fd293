"""The one-file binary: size, start to first /ping, idle RSS, build time.

    python bench/binary.py                      # build dist/pinc with PyInstaller, then measure
    python bench/binary.py --binary dist/pinc   # measure an existing binary

Build from an environment without test tools (`pip install . pyinstaller`), as .ci/run
does. Targets (DESIGN.md): under 30 MB, under 1 s from start to a successful /ping
(one-file extraction included), under 60 MB RSS idle.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SIZE_MB = 30.0
TARGET_PING_S = 1.0
TARGET_RSS_MB = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(workdir: Path) -> tuple[Path, float]:
    """Run PyInstaller on pinc.spec; returns (binary, seconds)."""
    dist = workdir / "dist"
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--clean",
            "--log-level",
            "WARN",
            "--distpath",
            str(dist),
            "--workpath",
            str(workdir / "build"),
            str(ROOT / "pinc.spec"),
        ],
        cwd=ROOT,
        check=True,
    )
    return dist / "pinc", time.perf_counter() - started


def write_config(directory: Path, port: int) -> Path:
    """A `pinc run` configuration: AMI on a closed port (pinc keeps retrying), no CRM."""
    closed = free_port()
    path = directory / "pinc.toml"
    path.write_text(
        f"""[ami]
port = {closed}
secret = "bench"
[journal]
path = "{directory / "pinc.db"}"
[web]
listen = "127.0.0.1:{port}"
token = "bench-token-0123456789"  # pinc refuses tokens under 16 characters
[agi]
listen = "127.0.0.1:0"
[log]
level = "warning"
""",
        encoding="utf-8",
    )
    return path


def ping_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=0.5) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def rss_kb(pid: int) -> int:
    """VmRSS of a process and its descendants (the one-file bootloader plus Python)."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def start(binary: Path, config: Path, tmp: Path) -> subprocess.Popen[bytes]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), "TMPDIR": str(tmp)}
    return subprocess.Popen(
        [str(binary), "run", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def time_to_ping(binary: Path, tmp: Path) -> tuple[float, int, int]:
    """Seconds from exec to the first 200 on /ping; idle RSS (kB) 3 s later; exit code."""
    port = free_port()
    run_dir = Path(tempfile.mkdtemp(dir=tmp))
    config = write_config(run_dir, port)
    started = time.perf_counter()
    proc = start(binary, config, run_dir)
    try:
        while not ping_ok(port):
            if proc.poll() is not None:
                raise SystemExit(f"pinc exited with {proc.returncode} before /ping answered")
            if time.perf_counter() - started > 30:
                raise SystemExit("no /ping answer within 30 s")
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        time.sleep(3)
        rss = rss_kb(proc.pid)
    finally:
        code = stop(proc)
    return elapsed, rss, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", type=Path, help="measure this binary instead of building")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pinc-bench-") as tmpname:
        tmp = Path(tmpname)
        build_s = None
        if args.binary:
            binary = args.binary
        else:
            binary, build_s = build(tmp)
        copy = tmp / "pinc"  # run a copy outside the repository, like an installed binary
        if copy != binary:
            shutil.copy2(binary, copy)
        size_mb = copy.stat().st_size / 1e6
        results = [time_to_ping(copy, tmp) for _ in range(args.runs)]
    pings = [r[0] for r in results]
    rss_mb = statistics.median(r[1] for r in results) / 1024
    codes = sorted({r[2] for r in results})
    ping = statistics.median(pings)
    print(
        f"binary size:        {size_mb:7.2f} MB   (target < {TARGET_SIZE_MB:g} MB, "
        f"{size_mb / TARGET_SIZE_MB:.2f}x of target)"
    )
    print(
        f"start to /ping:     {ping:7.3f} s    median of {len(pings)} "
        f"(min {min(pings):.3f}, max {max(pings):.3f}; target < {TARGET_PING_S:g} s, "
        f"{ping / TARGET_PING_S:.2f}x)"
    )
    print(
        f"idle RSS:           {rss_mb:7.1f} MB   (target < {TARGET_RSS_MB:g} MB, "
        f"{rss_mb / TARGET_RSS_MB:.2f}x)"
    )
    if build_s is not None:
        print(f"build time:         {build_s:7.1f} s    (clean PyInstaller build)")
    print(f"exit codes on SIGTERM: {codes}")
    ok = size_mb < TARGET_SIZE_MB and ping < TARGET_PING_S and rss_mb < TARGET_RSS_MB
    print("all targets met" if ok and codes == [0] else "TARGET MISSED")


if __name__ == "__main__":
    main()
