"""Standard input as a source: one code per line, bytes kept for hygiene, bounded lines."""

from __future__ import annotations

import io

from hardware.stdin_reader import StdinReader


def reads(data: bytes, max_length: int = 512) -> list[tuple[bytes | str, bool]]:
    return [(r.data, r.truncated)
            for r in StdinReader(io.BytesIO(data), max_length=max_length)]


def test_each_line_is_a_read_and_eof_ends() -> None:
    assert reads(b"VT-1\nVT-2\r\nVT-3") == [(b"VT-1", False), (b"VT-2", False),
                                             (b"VT-3", False)]


def test_invalid_utf8_is_passed_on_as_bytes() -> None:
    assert reads(b"\xff\xfe\n") == [(b"\xff\xfe", False)]


def test_overlong_line_is_cut_and_the_rest_skipped() -> None:
    assert reads(b"A" * 5000 + b"\nVT-OK\n", max_length=10) == [(b"A" * 10, True),
                                                                 (b"VT-OK", False)]


def test_source_name_is_stdin() -> None:
    assert next(iter(StdinReader(io.BytesIO(b"x\n")))).source == "stdin"
