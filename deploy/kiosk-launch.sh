#!/bin/sh
# The steward's screen: Chromium in kiosk mode on the gate's local page. Started by the
# desktop's autostart (labwc or wayfire, written by deploy/kiosk.sh); waits until /healthz
# answers 200, or says "syncing" (the first sync is all that waits: the page shows its
# progress), so the page never opens on a gate that is starting or broken, and starts the
# browser again whenever it exits or crashes.
#   GATE_KIOSK_URL       the page (default http://127.0.0.1:8080/)
#   GATE_KIOSK_BROWSER   the browser (default: Pi OS's chromium-browser, else chromium)
URL=${GATE_KIOSK_URL:-http://127.0.0.1:8080/}
BROWSER=${GATE_KIOSK_BROWSER:-$(command -v chromium-browser || command -v chromium)}
[ -n "$BROWSER" ] || { echo "gate-kiosk: no chromium-browser or chromium" >&2; exit 1; }

# One screen, one browser: a second autostart (both compositors configured) leaves at once.
lock=${XDG_RUNTIME_DIR:-/tmp}/gate-kiosk.lock
if command -v flock >/dev/null; then
    exec 9>"$lock"
    flock -n 9 || exit 0
fi

page_worth_showing() {
    health=$(curl -sS --max-time 2 -w ' %{http_code}' "${URL}healthz" 2>/dev/null) || return 1
    case $health in
        *' 200') return 0 ;;
        *'"state":"syncing"'*' 503') return 0 ;;
    esac
    return 1
}

while :; do
    until page_worth_showing; do sleep 1; done
    "$BROWSER" --kiosk --noerrdialogs --disable-infobars --no-first-run --disable-sync \
        --disable-background-networking --disable-component-update \
        --disable-session-crashed-bubble --autoplay-policy=no-user-gesture-required \
        --check-for-update-interval=31536000 --app="$URL" || true
    echo "gate-kiosk: $BROWSER exited; starting it again" >&2
    sleep "${GATE_KIOSK_RESTART_DELAY:-2}"
done
