#!/usr/bin/env bash
# Installs what the project needs, idempotently: Debian packages when missing, then a venv
# with the project and its dev extras. Re-installs Python packages only when pyproject changes.
#   deploy/bootstrap.sh          what the gate and the demo need
#   deploy/bootstrap.sh --test   that, plus what only the tests need
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(python3-venv python3-dev gcc libzbar0)
# A PostgreSQL server, started throwaway by tests/test_postgres.py to prove the store on a
# second dialect; a gate (the demo too) never needs a database server.
# Chromium: the kiosk tests drive Debian's own build headless through Playwright.
# mosquitto: started throwaway by tests/kits/mesh.py on a free loopback port.
# fonts-liberation: the kiosk's narrow result font (Liberation Sans Narrow, as
# deploy/kiosk.sh installs on a Pi), which the layout tests measure; chromium only
# recommends it.
TEST_DEBS=(postgresql chromium mosquitto fonts-liberation)
if [ "${1:-}" = "--test" ]; then
    DEBS+=("${TEST_DEBS[@]}")
fi
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv" >&2
    "$PY" -m venv .venv
fi
stamp=.venv/.gate-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "bootstrap: installing Python packages (log: .venv/pip.log)" >&2
    # pip's build chatter goes to a log; on failure its tail says why.
    if ! { .venv/bin/python -m pip install --upgrade pip &&
           .venv/bin/python -m pip install -e '.[dev]'; } >.venv/pip.log 2>&1; then
        tail -n 25 .venv/pip.log >&2
        echo "bootstrap: pip install failed; full log in .venv/pip.log" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi
