#!/usr/bin/env bash
# Installs gate-scanner on Raspberry Pi OS / Debian 12 (bookworm) as one systemd service.
#   sudo deploy/install.sh [--token-file FILE]     install, or upgrade in place
#   sudo deploy/install.sh --kiosk [USER]          also Chromium in kiosk mode on the Pi's
#                                                  screen, in USER's session (deploy/kiosk.sh)
#   sudo deploy/install.sh --uninstall [--purge]   remove it; --purge also deletes the data
# Idempotent: re-run to upgrade. An upgrade keeps the config, the token and the database
# (/var/lib/gate-scanner), and replaces the old gate-sync and gate-upload units.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=/opt/gate-scanner
VENV=$PREFIX/.venv
ETC=/etc/gate-scanner
DATA=/var/lib/gate-scanner
UNIT=gate-scanner.service
OLD_UNITS=(gate-sync.service gate-upload.service)
UNIT_DIR=/etc/systemd/system
# Device groups the daemon reads and drives through: cameras, serial, HID, GPIO.
DEVICE_GROUPS=(video dialout input gpio)

say() { echo "install.sh: $*" >&2; }
usage() { say "usage: install.sh [--token-file FILE] [--kiosk [USER]] | --uninstall [--purge]"; exit 2; }

token_src="" uninstall=0 purge=0 kiosk=0 kiosk_user=""
while [ $# -gt 0 ]; do
    case "$1" in
        --token-file) token_src="${2:?--token-file needs a path}"; shift 2 ;;
        --kiosk)
            kiosk=1; shift
            if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then kiosk_user="$1"; shift; fi ;;
        --uninstall) uninstall=1; shift ;;
        --purge) purge=1; shift ;;
        *) usage ;;
    esac
done
[ "$purge" = 0 ] || [ "$uninstall" = 1 ] || usage
[ "$kiosk" = 0 ] || [ "$uninstall" = 0 ] || usage
[ "$(id -u)" = 0 ] || { say "run as root (sudo)"; exit 1; }

remove_unit() {  # stop, disable and delete a unit if it is installed
    if [ -e "$UNIT_DIR/$1" ]; then
        systemctl disable --now "$1" >/dev/null 2>&1 || true
        rm -f "$UNIT_DIR/$1"
        say "removed $1"
    fi
}

if [ "$uninstall" = 1 ]; then
    for unit in "$UNIT" "${OLD_UNITS[@]}"; do remove_unit "$unit"; done
    systemctl daemon-reload
    rm -rf "$PREFIX" "$ETC"
    if [ "$(readlink /usr/local/bin/gate || true)" = "$VENV/bin/gate" ]; then rm -f /usr/local/bin/gate; fi
    if [ "$purge" = 1 ]; then
        rm -rf "$DATA"
        say "removed the data in $DATA"
    else
        say "kept the data in $DATA (remove it with --uninstall --purge)"
    fi
    if id gate >/dev/null 2>&1; then userdel gate; fi
    say "uninstalled"
    exit 0
fi

apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-dev gcc libzbar0 \
    >/dev/null

id gate >/dev/null 2>&1 || useradd --system --home-dir "$DATA" --no-create-home \
    --shell /usr/sbin/nologin gate
for group in "${DEVICE_GROUPS[@]}"; do
    if getent group "$group" >/dev/null; then usermod -a -G "$group" gate; fi
done

# Older installs made $PREFIX itself the venv; it now lives in $VENV.
if [ -f "$PREFIX/pyvenv.cfg" ]; then
    rm -rf "$PREFIX/bin" "$PREFIX/lib" "$PREFIX/lib64" "$PREFIX/include" "$PREFIX/share" \
        "$PREFIX/pyvenv.cfg"
fi
install -d -m 0755 "$PREFIX"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q --upgrade .
install -m 0644 README.md "$PREFIX/README.md"
ln -sfn "$VENV/bin/gate" /usr/local/bin/gate

install -d -m 0750 -o root -g gate "$ETC"
[ -f "$ETC/gate.toml" ] || install -m 0640 -o root -g gate deploy/gate.example.toml "$ETC/gate.toml"
# systemd hands the token to the service as a credential, so it stays root's alone.
[ -z "$token_src" ] || install -m 0600 -o root -g root "$token_src" "$ETC/token"

for unit in "${OLD_UNITS[@]}"; do remove_unit "$unit"; done
install -m 0644 "systemd/$UNIT" "$UNIT_DIR/$UNIT"
systemctl daemon-reload
systemctl enable "$UNIT" >/dev/null
if [ -f "$ETC/token" ]; then
    systemctl restart "$UNIT"
    say "installed and (re)started; 'journalctl -u $UNIT' shows its log, 'gate status' the store"
else
    say "installed; put the vivenu token in $ETC/token (chmod 600), then: systemctl start $UNIT"
fi
# The kiosk's browser waits for /healthz in its own unit, so it starts after the gate is ready.
if [ "$kiosk" = 1 ]; then
    deploy/kiosk.sh ${kiosk_user:+"$kiosk_user"}
fi
