"""The act stage: a journaled decision drives the turnstile, then is fanned out.

decide -> journal (durable) -> act (relay first) -> listeners (kiosk, metrics, peers).
"""

from scanner.act.fanout import Fanout, Listener
from scanner.act.pins import DEFAULT_PASSAGE_TIMEOUT, OutputsSettings, output_pins
from scanner.act.stage import (
    Acted,
    ActJournal,
    ActStage,
    Alarm,
    FireAlarm,
    Passage,
    signal_for,
)

__all__ = ["DEFAULT_PASSAGE_TIMEOUT", "ActJournal", "ActStage", "Acted", "Alarm", "Fanout",
           "FireAlarm", "Listener", "OutputsSettings", "Passage", "output_pins", "signal_for"]
