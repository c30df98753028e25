"""Read validation: what cannot be a barcode is refused before any lookup."""

from __future__ import annotations

import pytest

from scanner.decide import Reason, check_read, malformed_message, read_problem


@pytest.mark.parametrize("raw", [
    "ABCD1234",                 # exactly the API's minimum of 8
    "A" * 512,                  # exactly the default maximum
    "Ünïcödé-チケット",           # letters of any script
    "VIV 1234 5678",            # an ASCII space inside
    "https://x.example/t?c=ABCD1234",
], ids=["8-chars", "512-chars", "unicode-letters", "ascii-space", "url"])
def test_plausible_reads_pass(raw: str) -> None:
    assert check_read(raw) is None


@pytest.mark.parametrize("raw", [
    "",
    "ABCD123",                  # 7: one short of the minimum
    "A" * 513,
    "ABCD\t1234",
    "ABCD\x001234",
    "ABCD\x7f1234",             # DEL
    "ABCD\x851234",             # C1 next line
    "ABCD\u200b1234",           # zero-width space (format character)
    "\ufeffABCD1234",           # byte-order mark
    "ABCD\u00a01234",           # no-break space
    "ABCD1234\r\n",             # terminator left on by a serial reader
    "ABCD\ue0001234",           # private use
], ids=["empty", "7-chars", "513-chars", "tab", "nul", "del", "c1", "zero-width", "bom",
        "nbsp", "crlf", "private-use"])
def test_implausible_reads_are_malformed(raw: str) -> None:
    assert check_read(raw) is Reason.MALFORMED_READ


def test_max_length_is_configurable() -> None:
    assert [check_read("A" * 20, max_length=20), check_read("A" * 21, max_length=20)] == [
        None, Reason.MALFORMED_READ]


@pytest.mark.parametrize(("raw", "why"), [
    ("", "empty read"),
    ("ABC", "too short (3 characters, at least 8)"),
    ("A" * 600, "too long (600 characters, at most 512)"),
    ("ABCD\x001234", "contains unprintable character U+0000"),
], ids=["empty", "short", "long", "nul"])
def test_read_problem_says_why(raw: str, why: str) -> None:
    assert read_problem(raw) == why


def test_read_problem_is_none_for_a_good_read() -> None:
    assert read_problem("ABCD1234") is None


def test_malformed_message_is_one_line_for_the_kiosk() -> None:
    assert malformed_message("AB\tCD1234") == \
        "Unreadable code: contains unprintable character U+0009"
