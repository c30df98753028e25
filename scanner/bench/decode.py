"""``gate bench decode``: decode rates over folders of sample images.

Each image is decoded twice: through the gate's own decoder on its *full* pass (every
configured format, rotation and inversion on, as on every Nth camera frame) and by zxing-cpp
called directly with its defaults (all formats). Both get the same grey image (as the camera
path does), and both are judged by ``TextMode.Plain`` text: that is how the samples' .txt
files are written (zxing-cpp's own blackbox runner compares plain text; the default HRI mode
would print GS1 codes as "(01)..." and never match).

Scoring, per image: *correct* when a read matches the expectation (``N.txt`` text, or
``N.bin`` bytes), *misread* when there were reads but none matched, *missed* when nothing
was read. In ``falsepositives-*`` folders (no expectation) any read is a false positive.
Structured append (``qrcode-7``, ``pdf417-4``): images ``NN-MM`` share the expectation
``NN.txt|bin`` of the whole message; each image holds pieces, so an image is correct when
it yields reads and every read is a contiguous piece of the message (bytes for .bin).
Merging the pieces is not scored: the gate never sees a ticket split across symbols.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_PART = re.compile(r"(.+)-\d+")

# A decode function: grey image in, (text or None, bytes) per read out.
Reads = list[tuple[str | None, bytes]]
DecodeFn = Callable[[Any], Reads]


def default_samples() -> Path:
    """../shared/barcode-samples beside the repository root (as on CI and dev machines)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "barcode-samples"


@dataclass(frozen=True)
class Expected:
    content: str | bytes
    piece: bool = False       # a structured-append part: reads must be pieces of content

    def matches(self, text: str | None, data: bytes) -> bool:
        if isinstance(self.content, bytes):
            return bool(data) and (data in self.content if self.piece else data == self.content)
        if text is None or not text:
            return False
        return text in self.content if self.piece else text == self.content


def _expectation(folder: Path, stem: str) -> Expected | None:
    for name, piece in ((stem, False), *(((m.group(1), True),) if (m := _PART.fullmatch(stem))
                                         else ())):
        if (txt := folder / f"{name}.txt").exists():
            return Expected(txt.read_bytes().decode("utf-8"), piece)
        if (binary := folder / f"{name}.bin").exists():
            return Expected(binary.read_bytes(), piece)
    return None


def samples(folder: Path) -> Iterator[tuple[Path, Expected | None]]:
    """Images of one folder with their expectations (None: no barcode should be found)."""
    for image in sorted(folder.iterdir()):
        if image.suffix.lower() in IMAGE_SUFFIXES:
            yield image, _expectation(folder, image.stem)


def sample_folders(root: Path) -> list[Path]:
    """The folders of ``root`` holding images, or ``root`` itself if it holds images."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and next(samples(p), None))
    return folders or [root]


@dataclass
class Score:
    images: int = 0
    correct: int = 0
    misread: int = 0
    missed: int = 0
    false_positives: int = 0
    unreadable: int = 0       # files OpenCV cannot load (e.g. 1x1 webp); not decoded
    ms: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def ms_per_image(self) -> float:
        decoded = self.images - self.unreadable
        return self.ms / decoded if decoded else 0.0

    def add(self, name: str, expected: Expected | None, reads: Reads) -> None:
        self.images += 1
        if expected is None:
            self.false_positives += bool(reads)
            if reads:
                self.failures.append(name)
            return
        hits = [expected.matches(text, data) for text, data in reads]
        if not reads:
            self.missed += 1
            self.failures.append(name)
        elif all(hits) if expected.piece else any(hits):
            self.correct += 1
        else:
            self.misread += 1
            self.failures.append(name)


def load_grey(path: Path) -> Any:
    import cv2

    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)


def pipeline_decode(backend: str = "auto") -> tuple[str, DecodeFn]:
    """The gate's decoder on its full pass (reader.formats defaults)."""
    from scanner.read.decode import make_decoder

    decoder = make_decoder(backend)

    def decode(grey: Any) -> Reads:
        return [(d.text, d.data) for d in decoder.decode(grey, full=True)]

    return f"pipeline ({decoder.name}, full pass)", decode


def direct_decode() -> tuple[str, DecodeFn]:
    """zxing-cpp with every default except the text mode the expectations are written in."""
    import zxingcpp

    def decode(grey: Any) -> Reads:
        return [(b.text, b.bytes) for b in
                zxingcpp.read_barcodes(grey, text_mode=zxingcpp.TextMode.Plain)]

    return "zxing-cpp direct (defaults)", decode


def score_folder(folder: Path, decoders: dict[str, DecodeFn]) -> dict[str, Score]:
    scores = {label: Score() for label in decoders}
    for image, expected in samples(folder):
        grey = load_grey(image)
        for label, decode in decoders.items():
            score = scores[label]
            if grey is None:
                score.images += 1
                score.unreadable += 1
                continue
            started = time.perf_counter()
            reads = decode(grey)
            score.ms += (time.perf_counter() - started) * 1000.0
            score.add(image.name, expected, reads)
    return scores


def _row(folder: str, score: Score) -> str:
    return (f"{folder:<18} {score.images:>4} {score.correct:>5} {score.misread:>5} "
            f"{score.missed:>5} {score.false_positives:>4} {score.ms_per_image:>8.2f}")


@click.command()
@click.option("--samples", "samples_dir", type=click.Path(exists=True, file_okay=False,
              path_type=Path), default=None,
              help="Folder of sample folders (default ../shared/barcode-samples).")
@click.option("--decoder", default="auto", show_default=True,
              help="Pipeline decoder backend: auto, zxing or pyzbar.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def command(samples_dir: Path | None, decoder: str, as_json: bool) -> None:
    """Decode rates per folder: the pipeline's decoder beside zxing-cpp called directly."""
    root = samples_dir or default_samples()
    if not root.is_dir():
        raise click.ClickException(f"no samples at {root}; pass --samples DIR")
    pipe_label, pipe = pipeline_decode(decoder)
    direct_label, direct = direct_decode()
    rows = []
    for folder in sample_folders(root):
        scores = score_folder(folder, {"pipeline": pipe, "direct": direct})
        rows.append((folder.name, scores["pipeline"], scores["direct"]))
    goal = all(p.correct >= d.correct and (p.false_positives == 0
                                            or not name.startswith("falsepositives"))
               for name, p, d in rows)
    if as_json:
        click.echo(json.dumps({
            "samples": str(root), "pipeline": pipe_label, "direct": direct_label,
            "goal_met": goal,
            "folders": [{"folder": name,
                         "pipeline": asdict(p) | {"ms_per_image": round(p.ms_per_image, 3)},
                         "direct": asdict(d) | {"ms_per_image": round(d.ms_per_image, 3)}}
                        for name, p, d in rows]}, indent=2))
        return
    header = f"{'folder':<18} {'imgs':>4} {'ok':>5} {'mis':>5} {'miss':>5} {'fp':>4} {'ms/img':>8}"
    for label, pick in ((pipe_label, 1), (direct_label, 2)):
        click.echo(f"\n{label}\n{header}")
        total = Score()
        for row in rows:
            score: Score = row[pick]  # type: ignore[assignment]
            click.echo(_row(str(row[0]), score))
            for key in ("images", "correct", "misread", "missed", "false_positives",
                        "unreadable", "ms"):
                setattr(total, key, getattr(total, key) + getattr(score, key))
        click.echo(_row("TOTAL", total))
    click.echo(f"\ngoal (pipeline ok >= direct on every folder, 0 false positives): "
               f"{'met' if goal else 'NOT met'}")
