"""The lab tier: the real Asterisk, vtiger and SalesPlatform of ``../shared/lab``.

Everything is found through ``$PINC_LAB``, never from constants: an office through the
``office.json`` its ``start.sh`` wrote (``$PINC_LAB/asterisk/run-<name>/office.json``), a CRM
through its ``lab.env``. Each finder returns None when its part of the lab is not up, so
the tests skip cleanly (CI has no lab: ``PINC_LAB`` is unset there).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def lab_dir() -> Path | None:
    value = os.environ.get("PINC_LAB", "").strip()
    return Path(value) if value else None


def _port_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _url_answers(url: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True  # it answered
    except OSError:
        return False


@dataclass(frozen=True)
class Office:
    """A running lab office, as its ``office.json`` describes it."""

    name: str
    run_dir: Path
    ami_host: str
    ami_port: int
    ami_user: str
    ami_secret: str
    agi_port: int
    uses_sip: bool
    sip_port: int
    cdr_csv: Path
    recordings: Path
    raw: Mapping[str, Any] = field(repr=False)


def find_office(name: str) -> Office | None:
    """The office ``name`` if its office.json exists and its AMI port answers."""
    lab = lab_dir()
    if lab is None:
        return None
    path = lab / "asterisk" / f"run-{name}" / "office.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ami = raw.get("ami") or {}
    office = Office(
        name=str(raw.get("name") or name),
        run_dir=Path(raw["run_dir"]),
        ami_host=str(ami.get("host") or "127.0.0.1"),
        ami_port=int(ami["port"]),
        ami_user=str(ami.get("user") or "pinc"),
        ami_secret=str(ami.get("secret") or ""),
        agi_port=int(raw.get("agi_port") or 4573),
        uses_sip=bool(raw.get("uses_sip")),
        sip_port=int(raw.get("sip_port") or 0),
        cdr_csv=Path(raw.get("cdr_csv") or ""),
        recordings=Path(raw.get("recordings") or ""),
        raw=raw,
    )
    # offices of one lab share ports: a stopped office's port may answer for another one
    if raw.get("pid") is not None and not pid_alive(raw["pid"]):
        return None
    return office if _port_answers(office.ami_host, office.ami_port) else None


def pid_alive(pid: object) -> bool:
    try:
        os.kill(int(str(pid)), 0)
    except (ValueError, OSError):
        return False
    return True


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY='value'`` lines of a lab.env (sh syntax, as the kit writes it)."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", line)
        if not m:
            continue
        try:
            parts = shlex.split(m.group(2))
        except ValueError:
            continue
        out[m.group(1)] = parts[0] if parts else ""
    return out


@dataclass(frozen=True)
class Crm:
    """A running lab CRM (vtiger 8.2 or SalesPlatform 7.2), from its lab.env."""

    kind: str  # "vtiger" or "salesplatform"
    url: str
    secret: str
    admin_user: str
    admin_access_key: str
    default_timezone: str
    env: Mapping[str, str] = field(repr=False)

    def mysql(self) -> list[str]:
        """The command line of the CRM's MariaDB client (``MYSQL`` in lab.env)."""
        return shlex.split(self.env["MYSQL"])

    def sql(self, query: str) -> list[dict[str, str]]:
        """Rows of a query on the CRM's database (tab-separated output of the client)."""
        out = subprocess.run(
            [*self.mysql(), "--batch", "--raw", "-e", query],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.splitlines()
        if not out:
            return []
        head = out[0].split("\t")
        return [dict(zip(head, row.split("\t"), strict=False)) for row in out[1:]]


def _find_crm(kind: str, sub: str, prefix: str) -> Crm | None:
    lab = lab_dir()
    if lab is None:
        return None
    path = lab / sub / "lab.env"
    try:
        env = read_env_file(path)
    except OSError:
        return None
    url = env.get(f"{prefix}_URL", "")
    if not url or not _url_answers(url + "/index.php"):
        return None
    return Crm(
        kind=kind,
        url=url,
        secret=env.get(f"{prefix}_SECRET", ""),
        admin_user=env.get(f"{prefix}_ADMIN_USER", "admin"),
        admin_access_key=env.get(f"{prefix}_ADMIN_ACCESSKEY", ""),
        default_timezone=env.get(f"{prefix}_DEFAULT_TIMEZONE", "UTC"),
        env=env,
    )


def find_vtiger() -> Crm | None:
    return _find_crm("vtiger", "vtiger", "VTIGER")


def find_salesplatform() -> Crm | None:
    return _find_crm("salesplatform", "salesplatform", "SP")


# --- pinc run against the lab ---------------------------------------------------------


def toml_of(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """A pinc configuration file from ``{section: {key: value}}``."""
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {json.dumps(value, ensure_ascii=False)}")
        lines.append("")
    return "\n".join(lines)


def office_config(
    office: Office, tmp: Path, **sections: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """pinc's configuration for ``office``: AMI, PBX and a journal in ``tmp``; the keyword
    sections are merged over it (``web={...}``, ``crm={...}``, ...)."""
    local = not office.uses_sip
    config: dict[str, dict[str, Any]] = {
        "ami": {
            "host": office.ami_host,
            "port": office.ami_port,
            "username": office.ami_user,
            "secret": office.ami_secret,
            "reconnect_min": 0.2,
            "reconnect_max": 2.0,
        },
        "pbx": {
            "extension_pattern": r"^\d{3}$",
            "trunk_contexts": ["from-trunk"],
            "internal_contexts": ["from-internal"],
            "recordings_dir": str(office.recordings),
            "originate_channel": "Local/{ext}@phones" if local else "PJSIP/{ext}",
            "originate_context": "from-internal",
        },
        "journal": {"path": str(tmp / "pinc.db")},
        "web": {"listen": "127.0.0.1:0"},
        "agi": {"listen": "127.0.0.1:0"},
        "log": {"level": "info"},
    }
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    return config


class PincRun:
    """``pinc run`` in a subprocess with its log in a file; the ports from its ready line."""

    def __init__(self, config: Mapping[str, Mapping[str, Any]], workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "pinc.toml"
        self.config_path.write_text(toml_of(config), encoding="utf-8")
        self.log_path = workdir / "pinc.log"
        self.journal = Path(str(config["journal"]["path"]))
        self.process: subprocess.Popen[bytes] | None = None
        self.web_port = 0
        self.agi_port = 0

    def start(self, timeout: float = 30.0) -> PincRun:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pinc", "run", "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"pinc ready: .* AGI port (\w+), web port (\w+)", self.log())
            if m:
                self.agi_port = int(m.group(1)) if m.group(1).isdigit() else 0
                self.web_port = int(m.group(2)) if m.group(2).isdigit() else 0
                return self
            if self.process.poll() is not None:
                raise AssertionError(f"pinc run exited at start:\n{self.log()}")
            time.sleep(0.1)
        self.stop()  # not left running behind a failed test
        raise AssertionError(f"pinc run not ready in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def calls(self, *args: str) -> list[dict[str, Any]]:
        """``pinc calls --json`` on this run's journal (the contract shape)."""
        out = subprocess.run(
            [sys.executable, "-m", "pinc", "calls", "--config", str(self.config_path), "--json",
             *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]


@contextmanager
def pinc_run(config: Mapping[str, Mapping[str, Any]], workdir: Path) -> Iterator[PincRun]:
    run = PincRun(config, workdir).start()
    try:
        yield run
    finally:
        code = run.stop()
        assert code == 0, f"pinc run exited {code}:\n{run.log()[-4000:]}"
