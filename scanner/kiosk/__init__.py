"""The steward's kiosk: a page pushed each decision over Server-Sent Events, plus
/api/status, /healthz and /metrics. Fed by the act stage's fan-out; knows no Gate."""

from scanner.kiosk.parts import KioskParts, Probes, Reachability, WebOptions, WebSettings
from scanner.kiosk.server import KioskServer

__all__ = ["KioskParts", "KioskServer", "Probes", "Reachability", "WebOptions", "WebSettings"]
