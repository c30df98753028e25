#!/usr/bin/env bash
# Installs gate-scanner on Raspberry Pi OS / Debian 12 (bookworm) as systemd services.
#   sudo deploy/install.sh [--token-file FILE]
# Idempotent: re-run to upgrade. Keeps an existing config and token.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }

PREFIX=/opt/gate-scanner
ETC=/etc/gate-scanner
token_src=""
[ "${1:-}" = "--token-file" ] && token_src="${2:?--token-file needs a path}"

apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-dev gcc libzbar0 >/dev/null

id gate >/dev/null 2>&1 || useradd --system --home /var/lib/gate-scanner --shell /usr/sbin/nologin \
    --groups dialout,input,gpio,video gate 2>/dev/null || \
    useradd --system --home /var/lib/gate-scanner --shell /usr/sbin/nologin gate

python3 -m venv "$PREFIX"
"$PREFIX/bin/pip" install -q --upgrade pip
"$PREFIX/bin/pip" install -q .
ln -sf "$PREFIX/bin/gate" /usr/local/bin/gate

install -d -m 0750 -o root -g gate "$ETC"
[ -f "$ETC/gate.toml" ] || install -m 0640 -o root -g gate deploy/gate.example.toml "$ETC/gate.toml"
if [ -n "$token_src" ]; then
    install -m 0600 -o gate -g gate "$token_src" "$ETC/token"
fi
[ -f "$ETC/token" ] || echo "install.sh: put the vivenu token in $ETC/token (chown gate, chmod 600)" >&2

install -m 0644 systemd/*.service /etc/systemd/system/
systemctl daemon-reload
systemctl enable --now gate-sync.service gate-upload.service
echo "install.sh: installed; 'gate status' shows the store, 'journalctl -u gate-sync' the sync"
