"""Read hygiene: normalisation, reason codes, AIM/ECI stripping, deduplication window."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.reads import RawRead
from scanner.errors import ReadError
from scanner.read.hygiene import (
    CONTROL_CHARS,
    EMPTY,
    NOT_UTF8,
    REASONS,
    TOO_LONG,
    Hygiene,
    Payload,
    Rejected,
    normalize,
)

SECOND = 1_000_000_000


def raw(data: bytes | str, at_s: float = 0.0, **kw: object) -> RawRead:
    return RawRead(data, "test", int(at_s * SECOND), **kw)  # type: ignore[arg-type]


def reason_of(data: bytes | str, **kw: object) -> str:
    with pytest.raises(ReadError) as caught:
        normalize(data, **kw)  # type: ignore[arg-type]
    return caught.value.reason


def test_surrounding_whitespace_is_stripped() -> None:
    assert normalize(b"  \tVT-123456\r\n") == ("VT-123456", None)


def test_inner_spaces_are_kept() -> None:
    assert normalize("AB CD")[0] == "AB CD"


@pytest.mark.parametrize("data", [b"", b"   \r\n", b"]Q1", b"]Q2\\000026  "])
def test_nothing_left_is_empty(data: bytes) -> None:
    assert reason_of(data) == EMPTY


def test_invalid_utf8_is_not_utf8() -> None:
    assert reason_of(b"VT-\xff\xfe12") == NOT_UTF8


def test_replacement_character_from_unmapped_key_is_not_utf8() -> None:
    assert reason_of("VT-\ufffd12") == NOT_UTF8


@pytest.mark.parametrize("data", ["VT\x00123", "VT\x1d123", "VT\x7f1", "A\u200bB", "A\u00a0B"])
def test_non_printable_characters_are_control_chars(data: str) -> None:
    assert reason_of(data) == CONTROL_CHARS


def test_longer_than_max_length_is_too_long() -> None:
    assert reason_of("A" * 9, max_length=8) == TOO_LONG


def test_exactly_max_length_passes() -> None:
    assert normalize("A" * 8, max_length=8)[0] == "A" * 8


def test_truncated_by_the_device_is_too_long() -> None:
    assert reason_of(b"AAAA", truncated=True) == TOO_LONG


def test_unicode_text_passes() -> None:
    assert normalize("Grüße-€-票".encode())[0] == "Grüße-€-票"


@pytest.mark.parametrize(("data", "symbology"), [
    ("]Q1VT-123", "QRCode"), ("]C0VT-123", "Code128"), ("]d2VT-123", "DataMatrix"),
    ("]z0VT-123", "Aztec"), ("]L2VT-123", "PDF417")])
def test_aim_identifier_is_stripped_and_names_the_symbology(data: str, symbology: str) -> None:
    assert normalize(data) == ("VT-123", symbology)


def test_eci_designator_after_aim_is_stripped() -> None:
    # What zxing-cpp returns in TextMode.ECI for a UTF-8 QR code.
    assert normalize("]Q2\\000026VT-123") == ("VT-123", "QRCode")


def test_eci_protocol_doubled_backslash_is_undone() -> None:
    assert normalize("]Q2\\000026A\\\\B")[0] == "A\\B"


def test_backslash_without_eci_is_kept() -> None:
    assert normalize("A\\\\B")[0] == "A\\\\B"


def test_same_code_within_window_is_one_read() -> None:
    hygiene = Hygiene(window=2.0)
    assert isinstance(hygiene.check(raw("VT-1", 0.0)), Payload)
    assert hygiene.check(raw("VT-1", 1.5)) is None


def test_different_code_passes_at_once() -> None:
    hygiene = Hygiene(window=2.0)
    hygiene.check(raw("VT-1", 0.0))
    payload = hygiene.check(raw("VT-2", 0.01))
    assert isinstance(payload, Payload) and payload.text == "VT-2"


def test_same_code_after_window_is_a_new_read() -> None:
    hygiene = Hygiene(window=2.0)
    hygiene.check(raw("VT-1", 0.0))
    assert isinstance(hygiene.check(raw("VT-1", 2.5)), Payload)


def test_window_slides_while_the_code_stays_in_view() -> None:
    hygiene = Hygiene(window=2.0)
    results = [hygiene.check(raw("VT-1", t / 10)) for t in range(0, 50)]  # 5 s, every 0.1 s
    assert sum(isinstance(r, Payload) for r in results) == 1


def test_dedup_compares_normalised_text() -> None:
    hygiene = Hygiene(window=2.0)
    hygiene.check(raw(b"VT-1\r", 0.0))
    assert hygiene.check(raw("]Q1VT-1", 0.1)) is None


def test_repeated_garbage_is_reported_once_per_window() -> None:
    hygiene = Hygiene(window=2.0)
    results = [hygiene.check(raw(b"\xff", t / 10)) for t in range(10)]
    assert [type(r) for r in results].count(Rejected) == 1


def test_payload_carries_source_symbology_and_times() -> None:
    payload = Hygiene().check(RawRead("VT-1", "cam", 123, "QRCode", 4.5), now_ns=456)
    assert payload == Payload("VT-1", "cam", "QRCode", 123, 4.5, 456)


def test_rejected_line_names_reason_and_source() -> None:
    rejected = Hygiene().check(raw(b"\xff"))
    assert isinstance(rejected, Rejected)
    assert rejected.line().split()[:3] == ["REJECTED", "NOT_UTF8", "test"]
    assert "\n" not in rejected.line()


@given(st.one_of(st.binary(max_size=600), st.text(max_size=600)))
def test_anything_gives_clean_text_or_a_known_reason(data: bytes | str) -> None:
    try:
        text, _ = normalize(data, max_length=512)
    except ReadError as exc:
        assert exc.reason in REASONS
    else:
        assert text and text == text.strip() and len(text) <= 512 and text.isprintable()
