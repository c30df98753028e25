#!/usr/bin/env bash
# A Raspberry Pi without the Pi: builds a Debian bookworm arm64 root (what Raspberry Pi OS
# 64-bit is made of), runs deploy/install.sh inside it under qemu-user emulation, and checks
# what a technician would: lgpio imports in the installed venv, `gate --version` answers, the
# unit passes systemd-analyze verify, `gate config check` fails in one line for want of a
# Pi's token and devices, and `gate demo` passes.
#   sudo deploy/arm64-check.sh
# The bare root (debootstrap plus the Debian packages install.sh wants) is cached as a
# tarball in $GATE_ARM64_CACHE (default /var/cache/gate-scanner-arm64), keyed by the recipe
# below, and pip's cache beside it, so a rerun takes minutes, not the first run's half hour.
# Needs root: debootstrap, chroot and mounts; no systemd (binfmt is registered by hand).
# GATE_ARM64_BUNDLE_OUT=DIR also writes an offline aarch64 bundle (deploy/bundle.sh) there,
# its evdev built into a wheel in the root.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD

CACHE=${GATE_ARM64_CACHE:-/var/cache/gate-scanner-arm64}
SUITE=bookworm
# What the root holds before install.sh runs: Raspberry Pi OS Lite's share of it (systemd,
# Python 3.11, CA certificates, curl), plus install.sh's own packages so the check does not
# pay for them under emulation every time (install.sh still verifies they are there).
INCLUDE=systemd,python3,python3-venv,python3-dev,gcc,libzbar0,ca-certificates,curl
RECIPE="debootstrap --arch=arm64 --variant=minbase --include=$INCLUDE $SUITE"

say() { echo "arm64-check: $*" >&2; }
step_started=$SECONDS
step() { say "$* (+$((SECONDS - step_started)) s)"; }
[ "$(id -u)" = 0 ] || { say "run as root (debootstrap, chroot, mounts)"; exit 1; }

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ "$(uname -m)" != aarch64 ] && [ ! -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ]; then
    need+=(qemu-user-static)
fi
if [ ${#need[@]} -gt 0 ]; then
    step "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# binfmt by hand: no systemd-binfmt here. The F flag opens the interpreter now, so the root
# runs arm64 programs without a copy of qemu inside it.
if [ "$(uname -m)" != aarch64 ]; then
    mountpoint -q /proc/sys/fs/binfmt_misc ||
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
    fi
fi

# The Debian mirror this host uses (deb822 or one-line sources), else Debian's own.
mirror=${GATE_ARM64_MIRROR:-$(
    { sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null
      sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\)[[:space:]]\+'"$SUITE"'[[:space:]].*/\2/p' \
          /etc/apt/sources.list 2>/dev/null; } | grep -m1 '/debian/\?$' || true)}
mirror=${mirror:-http://deb.debian.org/debian}

key=$(printf '%s\n' "$RECIPE" | sha256sum | cut -c1-16)
tarball=$CACHE/root-$key.tar
work=$(mktemp -d /var/tmp/gate-arm64.XXXXXX)
root=$work/root
cleanup() {
    for mnt in root/.cache/pip dev/pts dev sys proc; do
        mountpoint -q "$root/$mnt" 2>/dev/null && umount -l "$root/$mnt"
    done
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

install -d -m 0755 "$CACHE" "$CACHE/pip"
if [ -f "$tarball" ]; then
    step "unpacking the cached root $tarball"
    install -d "$root"
    tar -xpf "$tarball" -C "$root"
else
    step "building the arm64 root from $mirror (takes a while under emulation)"
    # shellcheck disable=SC2086  # RECIPE is words on purpose
    debootstrap ${RECIPE#debootstrap } "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
        { tail -n 30 "$work/debootstrap.log" >&2; say "debootstrap failed"; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb
    tar -cpf "$tarball.part" -C "$root" . && mv "$tarball.part" "$tarball"
    # Older roots of another recipe are of no more use.
    find "$CACHE" -maxdepth 1 -name 'root-*.tar' ! -name "root-$key.tar" -delete
    step "cached the root as $tarball"
fi

# The host's way out: its CA bundle (a proxy's CA may be in it), resolver, apt mirror and pip
# configuration, so the root reaches the same registries the host does.
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
echo "deb $mirror $SUITE main" > "$root/etc/apt/sources.list"
[ ! -f /etc/pip.conf ] || cp /etc/pip.conf "$root/etc/pip.conf"
install -d "$root/root/.config"
[ ! -d "${XDG_CONFIG_HOME:-$HOME/.config}/pip" ] ||
    cp -r "${XDG_CONFIG_HOME:-$HOME/.config}/pip" "$root/root/.config/"
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
install -d "$root/root/.cache/pip"
mount --bind "$CACHE/pip" "$root/root/.cache/pip"
in_root() { chroot "$root" /usr/bin/env HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin "$@"; }

# The project as a clone has it (tracked and new files, not .venv or .git).
install -d "$root/root/gate-scanner"
git ls-files -z --cached --others --exclude-standard |
    xargs -0 -I{} sh -c '[ -e "{}" ] && printf "%s\0" "{}"' |
    tar --null -T - -cf - | tar -xf - -C "$root/root/gate-scanner"

[ "$(in_root uname -m)" = aarch64 ] || { say "the root does not run as aarch64"; exit 1; }
step "running deploy/install.sh in the arm64 root"
# PIP_COMPILE=0 (pip's --no-compile; PIP_NO_COMPILE=1 would mean the opposite): byte-compiling
# every installed module is minutes of emulated CPU that tell nothing about the install; the
# checks below compile only what they import. A real install.sh run compiles everything.
in_root env PIP_COMPILE=0 /root/gate-scanner/deploy/install.sh
step "installed"

failures=0
check() {  # check NAME COMMAND...: run it in the root, say ok or FAIL with its output
    local name=$1 out
    shift
    if out=$(in_root "$@" 2>&1); then
        step "ok   $name${out:+: $(tail -n 1 <<<"$out")}"
    else
        failures=$((failures + 1))
        # All of it (bounded): the demo's first failed step is far above its last line.
        step "FAIL $name"; printf '%s\n' "$out" | tail -n 200 >&2
    fi
}
check "lgpio imports in the installed venv" \
    /opt/gate-scanner/current/.venv/bin/python -c 'import lgpio, platform; print(platform.machine(), "lgpio", lgpio.LGPIO_PY_VERSION)'
check "gate --version" gate --version
if in_root sh -c 'command -v systemd-analyze' >/dev/null; then
    check "systemd-analyze verify the installed unit" \
        systemd-analyze verify --man=no /etc/systemd/system/gate-scanner.service
else
    check "the installed unit parses" sh -c \
        'grep -q "^ExecStart=/opt/gate-scanner/current/.venv/bin/gate run$" /etc/systemd/system/gate-scanner.service'
fi
check "the unit is enabled" test -L /etc/systemd/system/multi-user.target.wants/gate-scanner.service
# No token, no serial handheld, no camera here: the check must say so in one line.
check "gate config check fails in one line" sh -c '
    out=$(GATE_CONFIG=/etc/gate-scanner/gate.toml gate config check 2>&1 >/dev/null); code=$?
    echo "$out"
    [ "$code" -ne 0 ] && [ "$(printf "%s\n" "$out" | wc -l)" -eq 1 ] && ! echo "$out" | grep -q Traceback'
check "gate demo under emulation" sh -c 'cd /tmp && gate demo --tickets 200'

# An offline bundle for the Pi whose evdev is a wheel, made where the target's kind runs.
if [ -n "${GATE_ARM64_BUNDLE_OUT:-}" ]; then
    step "making the aarch64 bundle"
    # Debian's python3 has no pip of its own; the installed release's venv does.
    in_root env PYTHON=/opt/gate-scanner/current/.venv/bin/python \
        /root/gate-scanner/deploy/bundle.sh --arch aarch64 --out /root/dist
    install -d "$GATE_ARM64_BUNDLE_OUT"
    cp "$root"/root/dist/gate-scanner-*-aarch64.tar.gz "$GATE_ARM64_BUNDLE_OUT/"
    step "wrote $(ls "$GATE_ARM64_BUNDLE_OUT"/gate-scanner-*-aarch64.tar.gz)"
fi

step "$failures check(s) failed"
[ "$failures" = 0 ]
