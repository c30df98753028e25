#!/usr/bin/env bash
# An offline bundle: this release of gate-scanner plus every Python package it needs for one
# machine, each checked against deploy/requirements-<arch>.lock, in one file for a USB stick.
#   deploy/bundle.sh [--arch aarch64|x86_64] [--out DIR]
#       default: aarch64 (a 64-bit Raspberry Pi), into dist/
#   then on the gate, with no network:
#       sudo /opt/gate-scanner/current/deploy/install.sh --bundle gate-scanner-*.tar.gz
# Packages published only as source (evdev) are built into wheels here when this machine is
# of the target's kind (Python 3.11, same architecture); otherwise their source goes in and
# the gate builds them at install, which needs gcc and python3-dev there: make the bundle on
# a Pi, or inside deploy/arm64-check.sh's root (GATE_ARM64_BUNDLE_OUT), to avoid that.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON_VERSION=3.11  # Debian bookworm's, so Raspberry Pi OS bookworm's
# Wheel tags a bookworm machine (glibc 2.36) runs; pip does not widen a --platform itself.
MANYLINUX=(manylinux2014 manylinux_2_17 manylinux_2_28 manylinux_2_31 manylinux_2_34
           manylinux_2_36)

say() { echo "bundle: $*" >&2; }
arch=aarch64 out=dist
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) arch="${2:?--arch needs aarch64 or x86_64}"; shift 2 ;;
        --out) out="${2:?--out needs a directory}"; shift 2 ;;
        *) say "usage: bundle.sh [--arch aarch64|x86_64] [--out DIR]"; exit 2 ;;
    esac
done
lock=deploy/requirements-$arch.lock
[ -f "$lock" ] || { say "no $lock (deploy/lock.sh makes the locks)"; exit 2; }
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)
name=gate-scanner-$version-$arch
PY=${PYTHON:-python3}
pip=("$PY" -m pip --disable-pip-version-check --quiet)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
top=$work/$name
mkdir -p "$top/wheels"

# The project's own files, as a clone has them.
if [ -d .git ] || git rev-parse --git-dir >/dev/null 2>&1; then
    git ls-files -z -- pyproject.toml README.md LICENSE scanner hardware deploy systemd |
        tar --null -T - -cf - | tar -xf - -C "$top"
else
    tar --exclude=__pycache__ -cf - pyproject.toml README.md LICENSE scanner hardware deploy \
        systemd | tar -xf - -C "$top"
fi
cp "$lock" "$top/requirements.lock"

say "downloading the packages of $lock for $arch"
# --no-deps: the lock already names every package; with it pip also takes a source archive
# where no wheel fits the target, which --only-binary would refuse outright.
platforms=()
for tag in "${MANYLINUX[@]}"; do platforms+=(--platform "${tag}_$arch"); done
"${pip[@]}" download --no-deps --require-hashes -r "$lock" -d "$top/wheels" "${platforms[@]}" \
    --python-version "$PYTHON_VERSION" --implementation cp --abi "cp${PYTHON_VERSION/./}"
# The project's own wheel is built from a copy: setuptools writes build/ beside its source,
# and two bundles made at once from one checkout would trip over each other's.
mkdir "$work/src"
cp -a pyproject.toml README.md LICENSE scanner hardware "$work/src/"
"${pip[@]}" wheel --no-deps -w "$top/wheels" "$work/src"

sdists=()
here_py=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
for sdist in "$top"/wheels/*.tar.gz "$top"/wheels/*.zip; do
    [ -e "$sdist" ] || continue
    if [ "$(uname -m)" = "$arch" ] && [ "$here_py" = "$PYTHON_VERSION" ]; then
        # Built from the source archive whose hash the lock checked; the wheel's own hash
        # joins that package's hashes in the bundle's lock, so --require-hashes accepts it.
        before=$(ls "$top/wheels")
        "${pip[@]}" wheel --no-deps -w "$top/wheels" "$sdist"
        built=$(comm -13 <(echo "$before") <(ls "$top/wheels") | grep '\.whl$')
        project=$(echo "${built%%-*}" | tr '_' '-')
        hash=$(sha256sum "$top/wheels/$built" | cut -d' ' -f1)
        awk -v p="$project" -v h="$hash" '
            { print }
            tolower($0) ~ "^" p "==" { print "    --hash=sha256:" h " \\" }' \
            "$top/requirements.lock" >"$work/lock" && mv "$work/lock" "$top/requirements.lock"
        rm "$sdist"
        say "built $built from its source"
    else
        sdists+=("$(basename "$sdist")")
    fi
done

{
    echo "arch=$arch"
    echo "version=$version"
    echo "python=$PYTHON_VERSION"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "sdists=${sdists[*]}"
} >"$top/BUNDLE"

mkdir -p "$out"
tar -czf "$out/$name.tar.gz" -C "$work" "$name"
say "wrote $out/$name.tar.gz ($(du -h "$out/$name.tar.gz" | cut -f1))"
if [ ${#sdists[@]} -gt 0 ]; then
    say "built at install on the gate (needs gcc and python3-dev there): ${sdists[*]}"
fi
