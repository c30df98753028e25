#!/usr/bin/env bash
# The steward's screen on the Pi's own display, the way Raspberry Pi OS starts programs: an
# entry in the desktop user's labwc autostart and wayfire [autostart] (bookworm's two
# compositors; its graphical-session.target never starts, so a user unit would not either).
# The entry runs deploy/kiosk-launch.sh of the current release. Called by
# `deploy/install.sh --kiosk`; safe to run again.
#   deploy/kiosk.sh [USER]            the desktop user (default: $SUDO_USER)
#   deploy/kiosk.sh --remove [USER]   take the entries out again
set -euo pipefail
R=${GATE_INSTALL_ROOT:-}   # set by install.sh --root; empty on a real install
LAUNCHER=/opt/gate-scanner/current/deploy/kiosk-launch.sh
MARK="# gate-scanner kiosk"
KEY=gate_kiosk

remove=0
if [ "${1:-}" = --remove ]; then remove=1; shift; fi
user="${1:-${SUDO_USER:-$(id -un)}}"
if [ -z "$R" ]; then entry=$(getent passwd "$user" || true)
else entry=$(grep "^$user:" "$R/etc/passwd" || true); fi
IFS=: read -r _ _ uid gid _ home _ <<<"$entry"
[ -n "${home:-}" ] || { echo "kiosk: no such user: $user" >&2; exit 2; }
home=$R$home
labwc=$home/.config/labwc/autostart
wayfire=$home/.config/wayfire.ini

if [ "$remove" = 1 ]; then
    [ ! -f "$labwc" ] || sed -i "\|$MARK\$|d" "$labwc"
    [ ! -f "$wayfire" ] || sed -i "/^$KEY[[:space:]]*=/d" "$wayfire"
    echo "kiosk: removed the autostart entries of $user"
    exit 0
fi

if [ -z "$R" ] && ! command -v chromium-browser >/dev/null && ! command -v chromium >/dev/null
then  # Pi OS ships chromium-browser; plain Debian calls it chromium
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-browser >/dev/null 2>&1 ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
# Liberation Sans Narrow: in a wider face the longest result words (Dutch, German) fall
# under 15 % of a portrait 480x800 screen's height.
if [ -z "$R" ] && ! fc-list 2>/dev/null | grep -q "Liberation Sans Narrow"; then
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-liberation >/dev/null 2>&1 ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-liberation >/dev/null; }; } ||
        echo "kiosk: fonts-liberation not installed: long result words get smaller on a portrait screen" >&2
fi

owned_dir() { install -d -o "$uid" -g "$gid" -m 0755 "$1"; }
owned_dir "$home/.config"
owned_dir "$home/.config/labwc"

# labwc runs the user's autostart instead of the system's: a new one starts as a copy of
# the system's, so the desktop keeps its panel and display setup.
if [ ! -f "$labwc" ]; then
    if [ -f "$R/etc/xdg/labwc/autostart" ]; then cp "$R/etc/xdg/labwc/autostart" "$labwc"
    else : >"$labwc"; fi
fi
sed -i "\|$MARK\$|d" "$labwc"
echo "$LAUNCHER & $MARK" >>"$labwc"
chown "$uid:$gid" "$labwc"

# wayfire: one key in [autostart], the section made if the file has none.
touch "$wayfire"
sed -i "/^$KEY[[:space:]]*=/d" "$wayfire"
if grep -q '^\[autostart\]' "$wayfire"; then
    sed -i "/^\[autostart\]/a $KEY = $LAUNCHER" "$wayfire"
else
    { if [ -s "$wayfire" ]; then echo; fi; printf '[autostart]\n%s = %s\n' "$KEY" "$LAUNCHER"; } \
        >>"$wayfire"
fi
chown "$uid:$gid" "$wayfire"
echo "kiosk: $user's desktop (labwc or wayfire) shows the gate's page at login, once /healthz answers"
