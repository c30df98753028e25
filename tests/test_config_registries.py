"""The names the configuration declares are the keys of the registries that interpret them.

The configuration sits below every adapter and cannot read their registries, so a source,
decoder, layout or pin factory added to one without its name in ``scanner.config.names``
(or the reverse) would be refused by ``gate config check`` or fail only at start.
"""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from hardware.gpio import PIN_FACTORIES
from hardware.keymaps import LAYOUTS
from hardware.serial_reader import TERMINATORS, parse_terminator
from scanner import config
from scanner.config.rules import terminator_problem
from scanner.decide.barcode import DEFAULT_MAX_READ_LENGTH
from scanner.decide.model import Direction
from scanner.read.decode import AUTO_ORDER, DECODERS, KNOWN_FORMATS
from scanner.read.registry import SOURCES


def test_each_registry_has_exactly_the_declared_names() -> None:
    assert (tuple(SOURCES), {"auto", *DECODERS}, KNOWN_FORMATS, tuple(LAYOUTS),
            tuple(PIN_FACTORIES), tuple(TERMINATORS), tuple(d.value for d in Direction)) == (
        config.SOURCE_NAMES, set(config.DECODER_NAMES), config.BARCODE_FORMATS,
        config.LAYOUT_NAMES, config.PIN_FACTORIES, config.TERMINATOR_NAMES, config.DIRECTIONS)


def test_auto_tries_only_declared_decoders() -> None:
    assert set(AUTO_ORDER) <= set(config.DECODER_NAMES) - {"auto"}


def test_each_device_key_names_a_source_and_a_reader_field() -> None:
    fields = {f.name for f in dataclasses.fields(config.ReaderConfig)}
    assert set(config.DEVICE_KEY) <= set(config.SOURCE_NAMES)
    assert set(config.DEVICE_KEY.values()) <= fields


def test_the_read_length_bound_is_the_decision_s() -> None:
    assert config.DEFAULT_MAX_READ_LENGTH == DEFAULT_MAX_READ_LENGTH
    assert config.ReaderConfig().max_length == DEFAULT_MAX_READ_LENGTH


@given(st.one_of(st.sampled_from(["", "cr", "Crlf", "LF", "\r\n", "\x03", "é", "€", "\x00"]),
                 st.text(max_size=4)))
def test_the_terminator_rule_accepts_what_the_serial_reader_parses(value: str) -> None:
    try:
        parse_terminator(value)
    except ValueError:
        parsed = False
    else:
        parsed = True
    assert (terminator_problem(value) is None) == parsed, value


def test_every_page_language_has_its_catalogue_and_no_catalogue_is_undeclared() -> None:
    from importlib import resources

    shipped = {entry.name for entry in
               resources.files("scanner.kiosk").joinpath("locale").iterdir()
               if entry.joinpath("LC_MESSAGES", "kiosk.po").is_file()}
    assert shipped == set(config.PAGE_LANGUAGES)
