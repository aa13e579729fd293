"""Reading Master.csv from its end, and a real MariaDB ``cdr`` table (FreePBX's layout)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pinc.cdr.rows import epoch, parse_csv, zone
from pinc.cdr.sources import CdrError, CsvSource, MysqlSource
from pinc.config import CdrConfig

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
UTC = zone("UTC")


def test_master_csv_is_read_back_to_the_moment(tmp_path: Path) -> None:
    lines = []
    for path in sorted(FIXTURES.glob("asterisk-*/*.cdr.csv")):
        lines += path.read_text(encoding="utf-8").splitlines()
    master = tmp_path / "Master.csv"
    filler = lines[0]  # an old row, many times: the file is long, the reader stops early
    old = filler.replace("2026-11-24", "2020-01-01")
    master.write_text("\n".join([old] * 20_000 + lines) + "\n" + lines[0][:40],  # cut line
                      encoding="utf-8")
    source = CsvSource(CdrConfig(csv_path=str(master), timezone="UTC"))
    since = epoch("2026-11-24 01:08:30", UTC)
    assert since is not None
    rows = source.rows_since(since)
    wanted = [r for r in parse_csv("\n".join(lines), UTC) if r.end >= since - 3600]
    assert wanted and sorted(rows, key=repr) == sorted(wanted, key=repr)
    assert source.rows_since(epoch("2030-01-01 00:00:00", UTC) or 0) == []
    everything = source.rows_since(0.0)
    assert len(everything) == 20_000 + len(lines)


def test_a_missing_master_csv_says_what_to_check(tmp_path: Path) -> None:
    source = CsvSource(CdrConfig(csv_path=str(tmp_path / "nope.csv")))
    with pytest.raises(CdrError, match=r"cdr\.csv_path"):
        source.rows_since(0.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


MARIADBD = shutil.which("mariadbd") or shutil.which("mysqld") or "/usr/sbin/mariadbd"
FREEPBX_CDR = """
CREATE TABLE cdr (
  calldate datetime NOT NULL DEFAULT '0000-00-00 00:00:00', clid varchar(80) NOT NULL DEFAULT '',
  src varchar(80) NOT NULL DEFAULT '', dst varchar(80) NOT NULL DEFAULT '',
  dcontext varchar(80) NOT NULL DEFAULT '', channel varchar(80) NOT NULL DEFAULT '',
  dstchannel varchar(80) NOT NULL DEFAULT '', lastapp varchar(80) NOT NULL DEFAULT '',
  lastdata varchar(80) NOT NULL DEFAULT '', duration int NOT NULL DEFAULT 0,
  billsec int NOT NULL DEFAULT 0, disposition varchar(45) NOT NULL DEFAULT '',
  amaflags int NOT NULL DEFAULT 0, accountcode varchar(20) NOT NULL DEFAULT '',
  uniqueid varchar(32) NOT NULL DEFAULT '', userfield varchar(255) NOT NULL DEFAULT '',
  did varchar(50) NOT NULL DEFAULT '', recordingfile varchar(255) NOT NULL DEFAULT '',
  cnum varchar(80) NOT NULL DEFAULT '', cnam varchar(80) NOT NULL DEFAULT '',
  outbound_cnum varchar(80) NOT NULL DEFAULT '', outbound_cnam varchar(80) NOT NULL DEFAULT '',
  dst_cnam varchar(80) NOT NULL DEFAULT '', linkedid varchar(32) NOT NULL DEFAULT '',
  peeraccount varchar(80) NOT NULL DEFAULT '', sequence int NOT NULL DEFAULT 0,
  KEY calldate (calldate)
)"""


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A private MariaDB in a temporary directory (CI installs mariadb-server)."""
    if not os.path.exists(MARIADBD):
        if os.environ.get("CI"):
            pytest.fail(f"{MARIADBD} is missing: .ci/run installs mariadb-server")
        pytest.skip("no MariaDB server binary on this machine (apt-get install mariadb-server)")
    base = tmp_path_factory.mktemp("mariadb")
    data, sock, port = base / "data", base / "mysqld.sock", _free_port()
    user = ["--user=root"] if os.geteuid() == 0 else []
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    assert install, "mariadb-install-db is missing"
    subprocess.run([install, f"--datadir={data}", "--auth-root-authentication-method=normal",
                    "--skip-test-db", *user], check=True, capture_output=True)
    server = subprocess.Popen(
        [MARIADBD, "--no-defaults", f"--datadir={data}", f"--socket={sock}", f"--port={port}",
         "--bind-address=127.0.0.1", "--skip-grant-tables=0", "--innodb-buffer-pool-size=16M",
         f"--pid-file={base / 'pid'}", *user],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        import pymysql

        deadline = time.monotonic() + 60
        while True:
            try:
                conn = pymysql.connect(unix_socket=str(sock), user="root")
                break
            except pymysql.MySQLError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE asteriskcdrdb")
            cur.execute("CREATE USER 'pinccdr'@'127.0.0.1' IDENTIFIED BY 'cdr-Pass-1'")
            cur.execute("GRANT SELECT ON asteriskcdrdb.* TO 'pinccdr'@'127.0.0.1'")
            cur.execute("USE asteriskcdrdb")
            cur.execute(FREEPBX_CDR)
        conn.commit()
        conn.close()
        yield port, sock
    finally:
        server.terminate()
        server.wait(30)


def test_freepbx_cdr_table_in_a_real_mariadb(mariadb: tuple[int, Path]) -> None:
    import pymysql

    port, sock = mariadb
    rows = parse_csv((FIXTURES / "asterisk-pjsip" / "pjsip_inbound_answered.cdr.csv")
                     .read_text(encoding="utf-8"), UTC)
    conn = pymysql.connect(unix_socket=str(sock), user="root", database="asteriskcdrdb")
    with conn.cursor() as cur:
        for r in rows:  # FreePBX keeps the start as calldate, and the durations
            cur.execute(
                "INSERT INTO cdr (calldate, src, dst, dcontext, channel, dstchannel, lastapp, "
                "duration, billsec, disposition, uniqueid, recordingfile, linkedid, sequence) "
                "VALUES (FROM_UNIXTIME(%s), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (r.start, r.src, r.dst, r.dcontext, r.channel, r.dstchannel, r.lastapp,
                 round(r.end - r.start), r.billsec, r.disposition, r.uniqueid, r.recording,
                 r.linkedid, r.sequence),
            )
    conn.commit()
    conn.close()
    config = CdrConfig(source="mysql", mysql_port=port, mysql_user="pinccdr",
                       mysql_password="cdr-Pass-1", timezone="")
    got = MysqlSource(config).rows_since(min(r.start for r in rows))
    assert sorted((r.dstchannel, r.disposition, r.billsec, r.linkedid) for r in got) == sorted(
        (r.dstchannel, r.disposition, r.billsec, r.linkedid) for r in rows)
    wrong = MysqlSource(CdrConfig(source="mysql", mysql_port=port, mysql_user="pinccdr",
                                  mysql_password="wrong"))
    with pytest.raises(CdrError, match="cannot connect") as caught:
        wrong.rows_since(0.0)
    assert "wrong" not in str(caught.value)
