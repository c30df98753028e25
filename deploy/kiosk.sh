#!/usr/bin/env bash
# Chromium in kiosk mode on the Pi's own screen, showing the gate's local page once the gate
# is ready. Called by `deploy/install.sh --kiosk`; safe to run again.
#   deploy/kiosk.sh [USER]   the desktop user whose session shows the page (default: $SUDO_USER)
set -euo pipefail
cd "$(dirname "$0")/.."
user="${1:-${SUDO_USER:-$(id -un)}}"
home=$(getent passwd "$user" | cut -d: -f6)
[ -n "$home" ] || { echo "kiosk: no such user: $user" >&2; exit 2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian's own Chromium and curl (the readiness probe); no browser download, no CDN.
missing=()
for pkg in chromium curl; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

unit_dir="$home/.config/systemd/user"
as_root install -d -o "$user" -m 0755 "$unit_dir"
as_root install -o "$user" -m 0644 deploy/gate-kiosk.service "$unit_dir/gate-kiosk.service"
# Started with the graphical session; lingering keeps the user manager up across logins.
as_root loginctl enable-linger "$user" || true
as_root -u "$user" XDG_RUNTIME_DIR="/run/user/$(id -u "$user")" \
    systemctl --user daemon-reload 2>/dev/null || true
as_root -u "$user" XDG_RUNTIME_DIR="/run/user/$(id -u "$user")" \
    systemctl --user enable gate-kiosk.service 2>/dev/null \
    || echo "kiosk: enable it from $user's session: systemctl --user enable --now gate-kiosk" >&2
echo "kiosk: Chromium will show http://127.0.0.1:8080/ in $user's graphical session"
