#!/usr/bin/env bash
# Pins every Python dependency of the gate, with hashes, for the two machines it runs on:
# a 64-bit Raspberry Pi (aarch64) and an x86_64 box, both Debian bookworm (Python 3.11,
# glibc 2.36). install.sh installs exactly these with `pip install --require-hashes`, and
# bundle.sh downloads exactly these for an offline install.
#   deploy/lock.sh              re-pin after a change to pyproject.toml (keeps the others)
#   deploy/lock.sh --upgrade    move every pin to the newest release the ranges allow
# uv, not pip-compile: it resolves for a platform other than the one it runs on.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-.venv/bin/uv}
[ -x "$UV" ] || UV=$(command -v uv) || { echo "lock: no uv (deploy/bootstrap.sh --test)" >&2; exit 1; }
# Wheels only, so a gate never compiles numpy or OpenCV at install; evdev publishes source
# alone (deploy/bundle.sh builds its wheel where it can).
for arch in aarch64 x86_64; do
    "$UV" pip compile pyproject.toml --quiet --generate-hashes --python-version 3.11 \
        --python-platform "$arch-manylinux_2_36" --only-binary :all: --no-binary evdev \
        --custom-compile-command deploy/lock.sh -o "deploy/requirements-$arch.lock" "$@"
done
