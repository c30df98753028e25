#!/usr/bin/env bash
# Installs gate-scanner on Raspberry Pi OS / Debian 12 (bookworm) as one systemd service.
#   sudo deploy/install.sh [--token-file FILE]     install a new release from this tree
#   sudo deploy/install.sh --bundle FILE|DIR       ... from an offline bundle (deploy/bundle.sh),
#                                                  with no network at all
#   sudo deploy/install.sh --rollback              back to the release before the current one
#   sudo deploy/install.sh --kiosk [USER]          also the steward's screen: Chromium in kiosk
#                                                  mode in USER's desktop (deploy/kiosk.sh)
#   sudo deploy/install.sh --uninstall [--purge]   remove it; --purge also deletes the data
#   --root DIR   act on DIR as if it were / (tests, staging): files and links only, no
#                packages, no users, nothing started; the venv is built at DIR's paths
# Each install is a release of its own, /opt/gate-scanner/releases/<version>-<UTC time>, and
# /opt/gate-scanner/current points at the one the unit runs; the config, the token and the
# databases (/var/lib/gate-scanner) are shared by all releases and never touched here.
# Python packages come from the lock for this machine (deploy/requirements-<arch>.lock) with
# `pip install --require-hashes`. Where systemd is not running (a chroot building an image)
# the unit is installed and enabled, not started.
set -euo pipefail
umask 022  # the gate user and the desktop user read what is installed here
SRC=$(cd "$(dirname "$0")/.." && pwd)

ROOT=/
PREFIX=/opt/gate-scanner
ETC=/etc/gate-scanner
DATA=/var/lib/gate-scanner
UNIT=gate-scanner.service
OLD_UNITS=(gate-sync.service gate-upload.service)
UNIT_DIR=/etc/systemd/system
KEEP_RELEASES=3  # besides the current and the previous one
# Device groups the daemon reads and drives through: cameras, serial, HID, GPIO.
DEVICE_GROUPS=(video dialout input gpio)
# What a venv and the sdist builds (evdev) need; libzbar0 is pyzbar's decoder fallback.
DEBS=(python3-venv python3-dev gcc libzbar0)

say() { echo "install.sh: $*" >&2; }
die() { say "$*"; exit 1; }
usage() {
    say "usage: install.sh [--root DIR] [--token-file FILE] [--bundle FILE|DIR] [--kiosk [USER]]"
    say "       install.sh [--root DIR] --rollback | --uninstall [--purge]"
    exit 2
}

token_src="" bundle="" action=install purge=0 kiosk=0 kiosk_user=""
while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
        --token-file) token_src="${2:?--token-file needs a path}"; shift 2 ;;
        --bundle) bundle="${2:?--bundle needs a file or directory}"; shift 2 ;;
        --kiosk)
            kiosk=1; shift
            if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then kiosk_user="$1"; shift; fi ;;
        --rollback) action=rollback; shift ;;
        --uninstall) action=uninstall; shift ;;
        --purge) purge=1; shift ;;
        *) usage ;;
    esac
done
[ "$purge" = 0 ] || [ "$action" = uninstall ] || usage
[ "$action" = install ] || [ -z "$bundle$token_src" ] || usage
[ "$kiosk" = 0 ] || [ "$action" != uninstall ] || usage
[ "$(id -u)" = 0 ] || die "run as root (sudo)"
ROOT=$(cd "$ROOT" && pwd) || die "no such directory: $ROOT"
R=${ROOT%/}  # prefix for every path below: empty on a real install
export GATE_INSTALL_ROOT=$R  # for deploy/kiosk.sh

# sd_booted(): systemd runs this machine. Not in a chroot building an image, not under --root.
booted() { [ -z "$R" ] && [ -d /run/systemd/system ]; }
gate_user() { [ -z "$R" ] && id gate >/dev/null 2>&1; }

enable_unit() {  # the WantedBy link, which is all `systemctl enable` makes for this unit
    local target
    target=$(sed -n 's/^WantedBy=//p' "$R$UNIT_DIR/$UNIT")
    install -d "$R$UNIT_DIR/$target.wants"
    ln -sfn "$UNIT_DIR/$UNIT" "$R$UNIT_DIR/$target.wants/$UNIT"
}

remove_unit() {  # stop, disable and delete a unit if it is installed
    if [ -e "$R$UNIT_DIR/$1" ]; then
        if booted; then systemctl disable --now "$1" >/dev/null 2>&1 || true; fi
        rm -f "$R$UNIT_DIR/$1" "$R$UNIT_DIR"/*.wants/"$1"
        say "removed $1"
    fi
}

# The unit of the current release, enabled; (re)started where systemd runs and a token is set.
activate() {
    local release=$1
    for unit in "${OLD_UNITS[@]}"; do remove_unit "$unit"; done
    install -d "$R$UNIT_DIR"
    install -m 0644 "$release/systemd/$UNIT" "$R$UNIT_DIR/$UNIT"
    install -d "$R/usr/local/bin"
    ln -sfn "$PREFIX/current/.venv/bin/gate" "$R/usr/local/bin/gate"
    if ! booted; then
        enable_unit
        say "systemd is not running here: $UNIT is installed and enabled, NOT started;" \
            "it starts at the next boot"
        return
    fi
    systemctl daemon-reload
    systemctl enable "$UNIT" >/dev/null
    if [ -f "$ETC/token" ]; then
        systemctl restart "$UNIT"
        say "$UNIT (re)started; 'journalctl -u $UNIT' shows its log, 'gate status' the store"
    else
        say "put the vivenu token in $ETC/token (chmod 600), then: systemctl start $UNIT"
    fi
}

point() {  # point LINK TARGET: replace a symlink in one rename, never leaving it missing
    ln -sfn "$2" "$1.new"
    mv -T "$1.new" "$1"
}

if [ "$action" = uninstall ]; then
    for unit in "$UNIT" "${OLD_UNITS[@]}"; do remove_unit "$unit"; done
    if booted; then systemctl daemon-reload; fi
    if [ "$(readlink "$R/usr/local/bin/gate" || true)" = "$PREFIX/current/.venv/bin/gate" ] ||
       [ "$(readlink "$R/usr/local/bin/gate" || true)" = "$PREFIX/.venv/bin/gate" ]; then
        rm -f "$R/usr/local/bin/gate"
    fi
    rm -rf "${R:?}$PREFIX" "${R:?}$ETC"
    if [ "$purge" = 1 ]; then
        rm -rf "${R:?}$DATA"
        say "removed the data in $DATA"
    else
        say "kept the data in $DATA (remove it with --uninstall --purge)"
    fi
    if gate_user; then userdel gate; fi
    say "uninstalled (a kiosk autostart entry stays: deploy/kiosk.sh --remove USER)"
    exit 0
fi

if [ "$action" = rollback ]; then
    previous=$(readlink "$R$PREFIX/previous" 2>/dev/null) ||
        die "no previous release to roll back to (ls $PREFIX/releases)"
    [ -e "$R$PREFIX/$previous/.complete" ] || die "the previous release $previous is incomplete"
    current=$(readlink "$R$PREFIX/current")
    point "$R$PREFIX/current" "$previous"
    point "$R$PREFIX/previous" "$current"
    say "rolled back: current is $(basename "$previous") (was $(basename "$current"));" \
        "the data in $DATA is as it was"
    activate "$R$PREFIX/$previous"
    if [ "$kiosk" = 1 ]; then "$R$PREFIX/$previous/deploy/kiosk.sh" ${kiosk_user:+"$kiosk_user"}; fi
    exit 0
fi

# --- install a new release ---------------------------------------------------------------
arch=$(uname -m)
work=$(mktemp -d)
release=""
cleanup() {
    rm -rf "$work"
    # A release that did not finish is removed; current still points at the last good one.
    if [ -n "$release" ] && [ ! -e "$release/.complete" ]; then rm -rf "$release"; fi
}
trap cleanup EXIT

wheels="" lock="$SRC/deploy/requirements-$arch.lock"
if [ -n "$bundle" ]; then
    if [ -d "$bundle" ]; then
        SRC=$(cd "$bundle" && pwd)
    else
        tar -xzf "$bundle" -C "$work" || die "cannot unpack the bundle $bundle"
        SRC=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n 1)
    fi
    [ -f "$SRC/BUNDLE" ] || die "$bundle is not a gate-scanner bundle (no BUNDLE file)"
    bundle_arch=$(sed -n 's/^arch=//p' "$SRC/BUNDLE")
    [ "$bundle_arch" = "$arch" ] ||
        die "the bundle is for $bundle_arch, this machine is $arch: deploy/bundle.sh --arch $arch"
    wheels=$SRC/wheels lock=$SRC/requirements.lock
fi
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$SRC/pyproject.toml")
[ -n "$version" ] || die "no version in $SRC/pyproject.toml"

missing=()
for pkg in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$pkg")
done
if [ -n "$R" ]; then
    :  # staging: the packages are the host's business
elif [ ${#missing[@]} -gt 0 ] && [ -z "$bundle" ]; then
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
elif [ ${#missing[@]} -gt 0 ]; then
    # Offline: only what this bundle really needs is fatal.
    python3 -c 'import ensurepip, venv' 2>/dev/null ||
        die "no python3-venv and no network: install python3-venv's .deb first"
    if compgen -G "$wheels/*.tar.gz" >/dev/null && ! command -v gcc >/dev/null; then
        die "the bundle builds $(cd "$wheels" && ls ./*.tar.gz | tr '\n' ' ')at install," \
            "which needs gcc and python3-dev (or a bundle made on a $arch machine)"
    fi
    say "missing Debian packages (offline, going on without them): ${missing[*]}"
fi

if [ -z "$R" ]; then
    id gate >/dev/null 2>&1 || useradd --system --home-dir "$DATA" --no-create-home \
        --shell /usr/sbin/nologin gate
    for group in "${DEVICE_GROUPS[@]}"; do
        if getent group "$group" >/dev/null; then usermod -a -G "$group" gate; fi
    done
fi

# Older installs made $PREFIX/.venv (or $PREFIX itself) the venv; releases replace it.
rm -rf "$R$PREFIX/.venv" "$R$PREFIX/bin" "$R$PREFIX/lib" "$R$PREFIX/lib64" \
    "$R$PREFIX/include" "$R$PREFIX/share" "$R$PREFIX/pyvenv.cfg"

id="$version-$(date -u +%Y%m%dT%H%M%SZ)"
while [ -e "$R$PREFIX/releases/$id" ]; do id="$id+"; done
release=$R$PREFIX/releases/$id
install -d -m 0755 "$R$PREFIX/releases" "$release"
say "installing release $id into $PREFIX/releases"
# Pi camera modules are read through picamera2, which Pi OS ships as python3-picamera2 with
# libcamera's bindings: where the system has it, the venv sees the system's packages too
# (its own come first, so the locked versions win).
if python3 -c 'import picamera2' 2>/dev/null; then
    python3 -m venv --system-site-packages "$release/.venv"
else
    python3 -m venv "$release/.venv"
fi
pip=("$release/.venv/bin/python" -m pip --disable-pip-version-check --quiet)
if [ -n "$wheels" ]; then
    # --no-index: pip asks no server, whatever pip.conf or PIP_INDEX_URL say.
    "${pip[@]}" install --no-index --find-links "$wheels" --require-hashes -r "$lock"
    "${pip[@]}" install --no-index --no-deps "$wheels"/gate_scanner-*.whl
elif [ -f "$lock" ]; then
    "${pip[@]}" install --require-hashes -r "$lock"
    "${pip[@]}" install --no-deps "$SRC"
else
    say "WARNING: no lock for $arch; installing the newest releases pyproject.toml allows"
    "${pip[@]}" install "$SRC"
fi
# What the release is made of, kept beside it: the kiosk launcher, this script, the unit.
cp -r "$SRC/deploy" "$SRC/systemd" "$release/"
install -m 0644 "$SRC/README.md" "$release/README.md"
touch "$release/.complete"

old=$(readlink "$R$PREFIX/current" 2>/dev/null || true)
if [ -n "$old" ]; then point "$R$PREFIX/previous" "$old"; fi
# Relative links: the same tree works staged under --root and in an image.
point "$R$PREFIX/current" "releases/$id"
ln -sfn current/README.md "$R$PREFIX/README.md"

# Old releases go, except the current, the previous and the newest few.
keep=$(readlink "$R$PREFIX/previous" 2>/dev/null || true)
find "$R$PREFIX/releases" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' | sort -rn |
    tail -n +$((KEEP_RELEASES + 1)) | cut -d' ' -f2- | while read -r dir; do
        [ "$dir" = "$release" ] || [ "$dir" = "$R$PREFIX/$keep" ] || rm -rf "$dir"
    done

install -d -m 0750 "$R$ETC"
[ -f "$R$ETC/gate.toml" ] || install -m 0640 "$SRC/deploy/gate.example.toml" "$R$ETC/gate.toml"
if gate_user; then chgrp gate "$ETC" "$ETC/gate.toml"; fi
# systemd hands the token to the service as a credential, so it stays root's alone.
[ -z "$token_src" ] || install -m 0600 -o root -g root "$token_src" "$R$ETC/token"

activate "$release"
say "installed release $id ($PREFIX/current); roll back with: install.sh --rollback"
if [ "$kiosk" = 1 ]; then "$release/deploy/kiosk.sh" ${kiosk_user:+"$kiosk_user"}; fi
