"""Decoders over the shared barcode samples (../shared/barcode-samples beside the repo)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from scanner.bench.decode import (
    Expected,
    default_samples,
    direct_decode,
    load_grey,
    pipeline_decode,
    sample_folders,
    samples,
    score_folder,
)
from scanner.errors import ConfigError
from scanner.read.decode import PyzbarDecoder, ZxingDecoder, make_decoder

SAMPLES = default_samples()
FOLDERS = sample_folders(SAMPLES) if SAMPLES.is_dir() else []
needs_samples = pytest.mark.skipif(not FOLDERS, reason=f"barcode samples absent at {SAMPLES}")


@needs_samples
@pytest.mark.parametrize("folder", [f for f in FOLDERS if not f.name.startswith("false")],
                         ids=lambda f: f.name)
def test_pipeline_decodes_at_least_what_zxing_cpp_does(folder: Path) -> None:
    scores = score_folder(folder, {"pipeline": pipeline_decode("zxing")[1],
                                   "direct": direct_decode()[1]})
    assert scores["pipeline"].correct >= scores["direct"].correct > 0


@needs_samples
@pytest.mark.parametrize("folder", [f for f in FOLDERS if f.name.startswith("false")],
                         ids=lambda f: f.name)
def test_no_reads_on_images_without_barcodes(folder: Path) -> None:
    score = score_folder(folder, {"pipeline": pipeline_decode("zxing")[1]})["pipeline"]
    assert score.images > 0 and score.false_positives == 0


@needs_samples
def test_pyzbar_reads_qr_folders_and_contains_its_failures() -> None:
    decoder = PyzbarDecoder()
    total = {"correct": 0, "images": 0}
    for folder in (SAMPLES / f"qrcode-{n}" for n in range(1, 8)):
        score = score_folder(folder, {"pyzbar": lambda g: [
            (d.text, d.data) for d in decoder.decode(g, full=True)]})["pyzbar"]
        total["correct"] += score.correct
        total["images"] += score.images
    # README: pyzbar 0.1.9 reads 95 of qrcode-1..6; qrcode-7 makes pyzbar raise.
    assert total["correct"] >= 90 and decoder.errors >= 1


@needs_samples
def test_pyzbar_raising_on_qrcode_7_yields_no_result() -> None:
    decoder = PyzbarDecoder()
    image = load_grey(SAMPLES / "qrcode-7" / "01-01.png")
    before = decoder.errors
    assert decoder.decode(image, full=True) == [] and decoder.errors == before + 1


@needs_samples
def test_rotated_code128_needs_the_full_pass() -> None:
    decoder = ZxingDecoder()
    rotated = np.ascontiguousarray(np.rot90(load_grey(SAMPLES / "code128-1" / "1.png")))
    assert [d.symbology for d in decoder.decode(rotated, full=True)] == ["Code128"]
    assert decoder.decode(rotated, full=False) == []


def test_zxing_decoder_contains_exceptions() -> None:
    decoder = ZxingDecoder()
    assert decoder.decode("not an image", full=True) == [] and decoder.errors == 1


def test_decoded_result_carries_text_bytes_symbology_and_time() -> None:
    import zxingcpp

    symbol = zxingcpp.create_barcode("VT-000042", zxingcpp.BarcodeFormat.QRCode)
    image = np.asarray(zxingcpp.write_barcode_to_image(symbol, scale=4))
    (found,) = ZxingDecoder().decode(image, full=False)
    assert (found.text, found.data, found.symbology) == ("VT-000042", b"VT-000042", "QRCode")
    assert found.decode_ms > 0


def test_auto_falls_back_to_pyzbar_without_zxing_cpp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zxingcpp", None)  # makes `import zxingcpp` fail
    decoder = make_decoder("auto")
    assert decoder.name == "pyzbar" and decoder.formats == ("QRCode", "Code128")


def test_unknown_format_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"reader\.formats"):
        make_decoder("zxing", ("QRCode", "Morse"))


def test_unknown_decoder_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"reader\.decoder"):
        make_decoder("tesseract")


def test_structured_append_piece_matches_a_part_of_the_message() -> None:
    expected = Expected("HELLO WORLD", piece=True)
    assert expected.matches("LO WO", b"") and not expected.matches("WORLDS", b"")


def test_bin_expectation_compares_bytes_not_text() -> None:
    assert Expected(b"\x00\x01").matches(None, b"\x00\x01")
    assert not Expected(b"\x00\x01").matches("\x00\x01", b"")


@needs_samples
def test_structured_append_images_share_the_group_expectation() -> None:
    found = dict(samples(SAMPLES / "qrcode-7"))
    assert {e.piece for e in found.values() if e} == {True} and len(found) == 4


@needs_samples
def test_bench_decode_reports_both_decoders_per_folder_as_json() -> None:
    import json

    from click.testing import CliRunner

    from scanner.bench.decode import command

    result = CliRunner().invoke(command, ["--samples", str(SAMPLES / "code128-3"), "--json"])
    doc = json.loads(result.stdout)
    (folder,) = doc["folders"]
    assert folder["pipeline"]["correct"] == folder["direct"]["correct"] == 2
    assert doc["goal_met"] is True
