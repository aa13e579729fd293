"""packaging/: install.sh into a staging tree, the systemd unit's hardening, the snippets."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


def test_install_sh_stages_everything(tmp_path: Path) -> None:
    binary = tmp_path / "pinc-binary"
    binary.write_text("#!/bin/sh\necho pinc 0\n")
    binary.chmod(0o755)
    dest = tmp_path / "root"
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "DESTDIR": str(dest)}
    done = subprocess.run(
        ["sh", str(PACKAGING / "install.sh"), str(binary)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    installed = dest / "usr/local/bin/pinc"
    assert installed.read_text() == binary.read_text()
    assert stat.S_IMODE(installed.stat().st_mode) == 0o755
    config = dest / "etc/pinc/pinc.toml"
    assert config.read_text() == (PACKAGING / "pinc.example.toml").read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o640  # group pinc reads, others nothing
    assert (dest / "var/lib/pinc").is_dir()
    assert "KillMode=control-group" in (dest / "etc/systemd/system/pinc.service").read_text()
    assert (dest / "usr/local/share/doc/pinc/asterisk/manager.conf").exists()
    # a second run keeps the administrator's configuration
    config.write_text("# edited\n")
    again = subprocess.run(
        ["sh", str(PACKAGING / "install.sh"), str(binary)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert again.returncode == 0, again.stderr
    assert config.read_text() == "# edited\n"


def test_install_sh_refuses_a_missing_binary(tmp_path: Path) -> None:
    done = subprocess.run(
        ["sh", str(PACKAGING / "install.sh"), str(tmp_path / "nothing")],
        env={"PATH": "/usr/bin:/bin", "DESTDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0 and "pyinstaller pinc.spec" in done.stderr


def _directives(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_runs_as_its_own_user_and_is_hardened() -> None:
    unit = _directives(PACKAGING / "pinc.service")
    assert unit["User"] == ["pinc"]
    assert unit["KillMode"] == ["control-group"]
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["ReadWritePaths"] == ["/var/lib/pinc"]
    assert any("/var/spool/asterisk/monitor" in p for p in unit["ReadOnlyPaths"])
    assert unit["ExecStart"] == ["/usr/local/bin/pinc run --config /etc/pinc/pinc.toml"]


def test_manager_conf_grants_least_privilege() -> None:
    user = _directives(PACKAGING / "asterisk" / "manager.conf")
    assert set(user["read"][0].split(",")) == {"call", "cdr", "agent", "dialplan"}
    write = set(user["write"][0].split(","))
    assert write == {"originate", "call", "reporting"}
    assert not write & {"system", "command", "config", "all"}
    assert user["permit"] == ["127.0.0.1/255.255.255.255"]


def test_cdr_mapping_matches_the_default_recording_field() -> None:
    from pinc.config import PbxConfig

    text = (PACKAGING / "asterisk" / "cdr_manager.conf").read_text()
    assert "\nenabled = yes\n" in text
    assert f"\nrecordingfile => {PbxConfig().recording_cdr_field}\n" in text
    assert "CDR(recordingfile)" in (PACKAGING / "asterisk" / "mixmonitor.conf").read_text()


def test_spec_bundles_the_data_and_excludes_test_tools() -> None:
    spec = (ROOT / "pinc.spec").read_text()
    for name in ("pytest", "_pytest", "py", "pytest_trio", "hypothesis", "pygments", "tkinter"):
        assert f'"{name}"' in spec
    assert '("pinc/web/static", "pinc/web/static")' in spec
    assert '("pinc/sim/data", "pinc/sim/data")' in spec
