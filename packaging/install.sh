#!/bin/sh
# Install pinc on a PBX host: the binary, its user, the configuration and the systemd unit.
#
#   sudo packaging/install.sh [BINARY]          # BINARY defaults to dist/pinc
#
# Idempotent: an existing /etc/pinc/pinc.toml is never overwritten. DESTDIR=/some/dir
# installs into a staging tree instead (no user, no systemctl; the tests use it).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
BINARY=${1:-$HERE/../dist/pinc}
DESTDIR=${DESTDIR:-}
BIN=$DESTDIR/usr/local/bin
ETC=$DESTDIR/etc/pinc
STATE=$DESTDIR/var/lib/pinc
UNIT_DIR=$DESTDIR/etc/systemd/system
DOC=$DESTDIR/usr/local/share/doc/pinc

if [ ! -x "$BINARY" ]; then
    echo "install.sh: $BINARY is not an executable; build it with: pyinstaller pinc.spec" >&2
    exit 1
fi
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run it as root (sudo), or set DESTDIR to stage the files" >&2
    exit 1
fi

# 1. The user pinc runs as: no shell, no login, home = its state directory.
if [ -z "$DESTDIR" ]; then
    if ! id pinc >/dev/null 2>&1; then
        useradd --system --user-group --home-dir /var/lib/pinc --no-create-home \
            --shell /usr/sbin/nologin --comment "pinc Asterisk-CRM connector" pinc
    fi
    if getent group asterisk >/dev/null 2>&1; then
        usermod -a -G asterisk pinc   # to read the recordings
    fi
fi
OWNER=""
[ -z "$DESTDIR" ] && OWNER="-o root -g pinc"

# 2. The binary.
install -d "$BIN"
install -m 0755 "$BINARY" "$BIN/pinc.new"
mv -f "$BIN/pinc.new" "$BIN/pinc"

# 3. Configuration (kept if present) and the journal directory.
# shellcheck disable=SC2086
install -d -m 0750 $OWNER "$ETC"
if [ ! -e "$ETC/pinc.toml" ]; then
    install -m 0640 $OWNER "$HERE/pinc.example.toml" "$ETC/pinc.toml"
    echo "wrote $ETC/pinc.toml (an example: edit it)"
else
    echo "kept $ETC/pinc.toml"
fi
if [ -z "$DESTDIR" ]; then
    install -d -m 0750 -o pinc -g pinc "$STATE"
else
    install -d -m 0750 "$STATE"
fi

# 4. The systemd unit and the docs.
install -d "$UNIT_DIR" "$DOC"
if getent group asterisk >/dev/null 2>&1; then
    install -m 0644 "$HERE/pinc.service" "$UNIT_DIR/pinc.service"
else
    grep -v '^SupplementaryGroups=asterisk' "$HERE/pinc.service" >"$UNIT_DIR/pinc.service"
    chmod 0644 "$UNIT_DIR/pinc.service"
fi
install -m 0644 "$HERE/../README.md" "$DOC/README.md" 2>/dev/null || true
install -d "$DOC/asterisk"
cp -r "$HERE/asterisk/." "$DOC/asterisk/"
install -m 0644 "$HERE/vtiger.md" "$DOC/vtiger.md"

if [ -z "$DESTDIR" ]; then
    systemctl daemon-reload 2>/dev/null || true
fi
cat <<NEXT
pinc installed. Next:
  1. Asterisk: add $DOC/asterisk/manager.conf's [pinc] user, cdr_manager.conf and the
     MixMonitor subroutine (see docs/install.md), then reload Asterisk.
  2. Edit /etc/pinc/pinc.toml: ami.secret, web.public_url, crm.url, crm.secret, ...
  3. pinc check --config /etc/pinc/pinc.toml --connect
  4. systemctl enable --now pinc && journalctl -u pinc -f
NEXT
