"""Licence plates and other text in a picture: found (PP-OCR, `veil.text.ocr`), kept apart by
kind, and read back from an output to check that none is readable any more.

A face hidden, a person is still named by the plate of the car beside them, a name badge, the
street sign behind them. Plates are text with a shape: a box 1.8 to 7.5 times as long as tall
that reads as 2-10 Latin letters and digits. No plate-detector wheel ships permissively licensed
weights, so plates are found as text and told apart by that shape and reading; a strict plate
pattern loses vanity and split plates, and colour rules lose dirty and small ones (measured by
benchmarks/plates.py; docs/benchmarks.md, "Plates and text").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from ..faces import clip_areas
from ..pixels import Pixels
from ..result import TextRecord
from .ocr import Quads, Reading, Recognizer, TextDetector, bgr, crop, sides

Kind = Literal["plate", "text"]

#: A plate's box, long side over short (EU, UK and US plates read 3.0-4.3; two-line and
#: motorcycle plates lower, a long EU plate cut by its band higher).
PLATE_ASPECT = (1.8, 7.5)
#: Each text box grows by this share of its text height on every side: the strokes the
#: detector's box leaves out (for plates, 0.1 lost big ones and 0.3 gained nothing; plates now
#: grow to their panel and take `PLATE_MARGIN`).
MARGIN = 0.2
#: The recognizer reads at most this many candidate boxes of one picture (~10 ms each); any
#: beyond are taken, unread, for what was asked for: a shop street of 500 words must not take
#: a minute, and an unread box is obscured, never left.
MAX_READS = 64
#: Small pictures are enlarged until their short side is this long: plates 10-14 px tall are
#: found 88% of the time at their own size, and nearly always twice as large.
MIN_SHORT_SIDE = 736


class Sides(NamedTuple):
    """The detector's input size: pictures with a longer side than ``most`` are shrunk to it
    (None: never), and those with a shorter short side than ``short`` are enlarged to it, or
    to ``grainy`` when they are grainy (`GRAIN`)."""

    most: int | None
    short: int
    grainy: int


#: The sizes by preset. A 12 MP photo at full size takes 4 s, 2x the face-only run, hence the
#: caps. Enlarging is cheap for a small picture and never happens to a large one. The int8
#: detector, on the 108 dev plates at half size (plates 8-15 px, pictures about 290x220),
#: finds 56 unenlarged, 91 at 288 px, 95 at 320, 103 at 352 and 105 at 384; the dev photos
#: (short sides 260-441 px) it finds all at 384 px as at 480. Grain is what enlarging more
#: helps: on the dark view of benchmarks/plates.py (a sixteenth of the light, brightened;
#: `grain` 12-16) 97 at 384 px, 103 at 480; with noise but more light (`grain` 5-9) 106 at
#: 384 and 107 at 480; Gaussian noise alone (`grain` 2-9) moved a plate one way or the other.
#: So balanced takes 384 px, and 480 for grainy pictures; fast 320 and 384 (speed first: at
#: 288 the smallest plates come and go with half a step of the int8 copy's input, 91-96 at
#: half size); thorough 736 with the fp32 detector. The check of an output enlarges to 736,
#: as an attacker would.
PRESET_SIDES: dict[str, Sides] = {
    "fast": Sides(1920, 320, 384),
    "balanced": Sides(2560, 384, 480),
    "thorough": Sides(None, MIN_SHORT_SIDE, MIN_SHORT_SIDE),
}

#: A picture is grainy when its `grain` is above this: clean dev photos measure 0.7-3.1
#: (median 1.2), crowd photos up to 7.7 (90% under 3.6), the dark view 12-16.
GRAIN = 4.0

_LAPLACE = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def grain(image: npt.NDArray[np.uint8]) -> float:
    """The picture's noise, as the standard deviation of its grey levels (Immerkaer's
    estimate: the mean size of a second difference that flat regions give to noise alone).
    Edges and fine texture add to it, so a detailed clean picture may read a little grainy."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    if min(grey.shape) < 3:
        return 0.0
    residual = cv2.filter2D(grey, -1, _LAPLACE)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(residual).mean() / 6)


#: Whether the preset searches with the int8 copy of the detector (`ocr.TextDetector`): fast
#: and balanced do, in under half the time (27 against 60 ms a dev photo at balanced's sizes,
#: one core), for a plate or two fewer: all 108 dev plates either way, 105 at half size either
#: way, 104 on the 3200x2400 mosaics against 106. Thorough keeps fp32, the careful one.
PRESET_INT8: dict[str, bool] = {"fast": True, "balanced": True, "thorough": False}

#: Other text must score this much on the detector (plates, told apart by their reading, take
#: `ocr.BOX_THRESHOLD`): a 0.34 box over a masked face, read "KO", took 67% of a photo.
TEXT_MIN_SCORE = 0.5
#: Text taller than this share of the picture's short side must score `TEXT_MIN_SCORE` too,
#: plates included: on a crowd photo a 0.34 box over 96% of it read as "336024", while the
#: dev plates that large (up to 0.21 of the short side) score 0.69-0.92. And it must read as
#: a word (`legible`: four characters of a plate, three of other text): boxes over whole
#: crowd photos scored 0.62-0.73 and read as "ha", "al", "a".
LARGE_TEXT = 0.15
#: A reading the recognizer is less sure of than this is taken for no reading: plates read at
#: 0.9-1.0, while veil's own grain fill reads as a digit or three at 0.3-0.4.
MIN_CONFIDENCE = 0.5

#: How far a plate's panel may reach beyond its characters, in text heights (`plate_panel`):
#: a US plate is about twice as tall as its characters.
PANEL_REACH = 0.8
#: A plate's panel grows by this share of its text height on every side: its border.
PLATE_MARGIN = 0.1
#: A row (column) is the plate's while this share of it is the characters' background colour.
PANEL_SHARE = 0.7

_SEPARATORS = re.compile(r"[\s\-\u00b7.:|=]")


def hulls(quads: Quads) -> npt.NDArray[np.float32]:
    """The axis-aligned box (x1, y1, x2, y2) around each quad."""
    return (
        np.concatenate([quads.min(axis=1), quads.max(axis=1)], axis=1)
        .astype(np.float32)
        .reshape(-1, 4)
    )


def plate_like(reading: Reading) -> bool:
    """Could ``reading`` be a plate: 2-10 Latin letters and digits once spaces, dashes and dots
    are dropped, in nearly all of the reading (no other script), at most 2 lower-case."""
    if reading.confidence < MIN_CONFIDENCE:
        return False
    raw = _SEPARATORS.sub("", reading.text)
    latin = re.sub(r"[^A-Z0-9]", "", reading.text.upper())
    if not 2 <= len(latin) <= 10 or len(latin) < 0.75 * len(raw):
        return False
    return sum(c.islower() for c in raw) <= 2


def legible(reading: Reading, kind: Kind) -> bool:
    """A reading of an obscured area that still names something: four letters or digits of a
    plate (enough to narrow one down), or a word of three of any text."""
    letters = [c for c in reading.text if c.isalnum()]
    enough = len(letters) >= (4 if kind == "plate" else 3)
    return enough and reading.confidence >= MIN_CONFIDENCE


def readable(reading: Reading) -> bool:
    """Text the recognizer can read at all: what ``--text`` obscures. A box it reads nothing
    in is the texture of a wall, foliage or veil's own grain fill, not writing."""
    return reading.confidence >= MIN_CONFIDENCE and any(c.isalnum() for c in reading.text)


@dataclass(frozen=True)
class Marks:
    """Plates and text found in one picture: ``quads`` as the detector drew them, ``kinds``
    what each was taken for, ``scores`` the detector's mean score over each, ``extents`` the
    axis-aligned box each takes up (x1, y1, x2, y2): a plate's whole panel (`plate_panel`),
    the text's own box otherwise (the default)."""

    quads: Quads
    scores: npt.NDArray[np.float32]
    kinds: tuple[Kind, ...] = ()
    extents: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 4), np.float32))

    def __post_init__(self) -> None:
        if len(self.extents) != len(self.quads):
            object.__setattr__(self, "extents", hulls(self.quads))

    @classmethod
    def empty(cls) -> Marks:
        return cls(np.zeros((0, 4, 2), np.float32), np.zeros(0, np.float32), ())

    def __len__(self) -> int:
        return len(self.kinds)

    def of(self, kind: Kind) -> Marks:
        """The marks of one kind."""
        return self._only([k == kind for k in self.kinds])

    def without(self, indices: frozenset[int]) -> Marks:
        """These marks less those at ``indices`` (kept visible by a reviewer)."""
        return self._only([i not in indices for i in range(len(self))])

    def _only(self, keep: list[bool]) -> Marks:
        chosen = np.array(keep, bool).reshape(-1)
        kinds = tuple(k for k, kept in zip(self.kinds, keep, strict=True) if kept)
        return Marks(self.quads[chosen], self.scores[chosen], kinds, self.extents[chosen])

    def areas(self) -> npt.NDArray[np.int32]:
        """Each extent grown on every side by a share of its text height: `PLATE_MARGIN` for
        a plate (its panel already reaches the plate's edge), `MARGIN` for other text."""
        shares = [PLATE_MARGIN if k == "plate" else MARGIN for k in self.kinds]
        grow = np.array([m * min(sides(q)) for m, q in zip(shares, self.quads, strict=True)])
        grow = grow.astype(np.float32).reshape(-1, 1)
        grown = self.extents + np.concatenate([-grow, -grow, grow, grow], axis=1)
        return np.concatenate([np.floor(grown[:, :2]), np.ceil(grown[:, 2:])], 1).astype(np.int32)

    def regions(self, width: int, height: int) -> npt.NDArray[np.int32]:
        return clip_areas(self.areas(), width, height)

    def listed(self, regions: npt.NDArray[np.int32]) -> list[tuple[Kind, TextRecord]]:
        """Each mark's kind and report row, in order (the numbers `Edits.keep_marks` uses);
        ``regions``: the marks' `regions`."""
        return [
            (kind, TextRecord([int(v) for v in region], round(float(score), 4)))
            for kind, region, score in zip(self.kinds, regions, self.scores, strict=True)
        ]

    def records(self, regions: npt.NDArray[np.int32], kind: Kind) -> list[TextRecord]:
        """The report rows of the marks of ``kind`` (``regions``: of all marks, in order)."""
        return [record for k, record in self.listed(regions) if k == kind]


def plate_panel(
    grey: npt.NDArray[np.uint8], quad: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """The plate around a plate's characters: their box grown, row by row and column by
    column, while `PANEL_SHARE` of the row (column) is the colour of the characters'
    background, up to `PANEL_REACH` text heights up and down and half that sideways.

    The detector boxes the characters; the plate is more. On an EU plate the characters fill
    it, but a US plate's are half its height, with the state's name above and a slogan below:
    the characters' box alone covers under 70% of such a plate (measured on rendered ones,
    tests/text). The background is the larger of the two grey levels Otsu splits the middle
    of the box into.
    """
    height, width = grey.shape
    x1, y1 = np.floor(quad.min(axis=0)).astype(int).clip(0, [width - 1, height - 1])
    x2, y2 = np.ceil(quad.max(axis=0)).astype(int).clip([x1 + 1, y1 + 1], [width, height])
    text_height = min(sides(quad))
    # The colours of the box's middle band: the detector's box reaches past a plate's edge
    # onto the car (half of test_013's box is dark bumper), its middle is the characters.
    h, w = y2 - y1, x2 - x1
    inside = grey[y1 + h // 4 : y2 - h // 4, x1 + w // 10 : x2 - w // 10]
    if not inside.size:
        return np.array([x1, y1, x2, y2], np.float32)
    split, _ = cv2.threshold(inside, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    light = inside > split
    background = inside[light] if light.mean() >= 0.5 else inside[~light]
    ink = inside[~light] if light.mean() >= 0.5 else inside[light]
    if not background.size or not ink.size:
        return np.array([x1, y1, x2, y2], np.float32)
    level = float(np.median(background))
    tolerance = max(20.0, 0.4 * abs(level - float(np.median(ink))))
    reach = round(PANEL_REACH * text_height)
    # Only the window the panel can reach is compared, not the whole picture (a 12 MP photo
    # with a few plates would be converted and compared once per plate).
    top_most, bottom_most = max(0, y1 - reach), min(height, y2 + reach)
    left_most, right_most = max(0, x1 - reach // 2), min(width, x2 + reach // 2)
    window = grey[top_most:bottom_most, left_most:right_most].astype(np.float32)
    plate = np.abs(window - level) < tolerance  # indexed from (top_most, left_most)

    def row(y: int, a: int, b: int) -> float:
        return float(plate[y - top_most, a - left_most : b - left_most].mean())

    def column(x: int, a: int, b: int) -> float:
        return float(plate[a - top_most : b - top_most, x - left_most].mean())

    top, bottom = y1, y2
    while top > top_most and row(top - 1, x1, x2) >= PANEL_SHARE:
        top -= 1
    while bottom < bottom_most and row(bottom, x1, x2) >= PANEL_SHARE:
        bottom += 1
    left, right = x1, x2
    while left > left_most and column(left - 1, top, bottom) >= PANEL_SHARE:
        left -= 1
    while right < right_most and column(right, top, bottom) >= PANEL_SHARE:
        right += 1
    return np.array([left, top, right, bottom], np.float32)


class TextFinder:
    """Finds plates (``plates``), other text (``text``) or both in pictures, with the int8
    copy of the detector unless ``int8`` is False."""

    @classmethod
    def for_preset(
        cls, plates: bool, text: bool, preset: str, threads: int | None = None
    ) -> TextFinder:
        """The finder a preset uses (`PRESET_SIDES`, `PRESET_INT8`)."""
        return cls(plates, text, PRESET_SIDES[preset], threads, PRESET_INT8[preset])

    def __init__(
        self,
        plates: bool,
        text: bool,
        sides: Sides = PRESET_SIDES["balanced"],
        threads: int | None = None,
        int8: bool = True,
    ) -> None:
        self.plates, self.text, self.sides, self.threads = plates, text, sides, threads
        self.detector = TextDetector(threads, fast=int8)
        self.recognizer = Recognizer(threads)
        self._checker: TextDetector | None = None  # fp32, for `still_legible`, on first use

    def scale(self, image: npt.NDArray[np.uint8], least: int | None = None) -> float:
        """The detector's input scale for this picture (`PRESET_SIDES`); ``least``: the short
        side to enlarge to instead of the preset's."""
        height, width = int(image.shape[0]), int(image.shape[1])
        most, short, grainy = self.sides
        if most is not None and max(height, width) > most:
            return most / max(height, width)
        if least is None:
            enlarged = min(height, width) < grainy and grainy > short
            least = grainy if enlarged and grain(image) > GRAIN else short
        return max(1.0, least / min(height, width))

    def find(self, pixels: Pixels) -> Marks:
        """The plates and text of one picture that this finder was asked for."""
        image = bgr(pixels)
        quads, scores = self.detector.detect(image, self.scale(image))
        kinds = self._kinds(image, quads, scores)
        chosen = [i for i, kind in enumerate(kinds) if kind is not None]
        marks = Marks(
            quads[chosen],
            np.array(scores, np.float32)[chosen],
            tuple(k for k in kinds if k is not None),
        )
        if "plate" in marks.kinds:
            grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            for i, kind in enumerate(marks.kinds):
                if kind == "plate":
                    marks.extents[i] = plate_panel(grey, marks.quads[i])
        return marks

    def _kinds(
        self, image: npt.NDArray[np.uint8], quads: Quads, scores: list[float]
    ) -> list[Kind | None]:
        """What each box is taken for; None: nothing asked for (not readable, or text when
        only plates are asked for, or a large box the detector is unsure of: `LARGE_TEXT`).
        Boxes beyond `MAX_READS` are taken for what was asked for unread: obscured, never
        left."""
        short = min(image.shape[:2])
        large = [min(sides(q)) > LARGE_TEXT * short for q in quads]
        wanted = [
            i
            for i, q in enumerate(quads)
            if (self.text or (self.plates and _plate_shaped(q)))
            and (scores[i] >= TEXT_MIN_SCORE or not large[i])
        ]
        read, unread = wanted[:MAX_READS], wanted[MAX_READS:]
        kinds: list[Kind | None] = [None] * len(quads)
        readings = self.recognizer.read([crop(image, quads[i]) for i in read])
        for i, reading in zip(read, readings, strict=True):
            if (
                self.plates
                and _plate_shaped(quads[i])
                and plate_like(reading)
                and (not large[i] or legible(reading, "plate"))
            ):
                kinds[i] = "plate"
            elif (
                self.text
                and scores[i] >= TEXT_MIN_SCORE
                and readable(reading)
                and (not large[i] or legible(reading, "text"))
            ):
                kinds[i] = "text"
        for i in unread:
            kinds[i] = "plate" if self.plates and _plate_shaped(quads[i]) else "text"
        if self.plates:
            _join_split_plates(quads, kinds)
        return kinds

    def still_legible(
        self, pixels: Pixels, regions: npt.NDArray[np.int32], kinds: tuple[Kind, ...]
    ) -> list[tuple[int, str]]:
        """What can still be read in ``pixels`` inside each of ``regions`` (where text was
        obscured): (index of the region, reading) for every legible reading. Read as an
        attacker would: the fp32 detector over the whole picture, enlarged to `MIN_SHORT_SIDE`.
        (Reading only windows around the regions was tried: on the dev plates it missed 4 of
        the 150 readings the whole picture gave, as the detector reads crops worse.)"""
        if not len(regions):
            return []
        image = bgr(pixels)
        if self._checker is None:
            self._checker = TextDetector(self.threads)
        quads, _ = self._checker.detect(image, self.scale(image, MIN_SHORT_SIDE))
        hits: list[tuple[int, int]] = []  # (region, quad)
        for q, quad in enumerate(quads):
            for r, region in enumerate(regions):
                if _overlap(quad, region) >= 0.5:
                    hits.append((r, q))
                    break
        readings = self.recognizer.read([crop(image, quads[q]) for _, q in hits])
        return [
            (r, reading.text)
            for (r, _), reading in zip(hits, readings, strict=True)
            if legible(reading, kinds[r])
        ]


def _join_split_plates(quads: Quads, kinds: list[Kind | None]) -> None:
    """Boxes on a plate's line, right beside it, are the rest of it: the detector cuts a plate
    at its EU band, a dash or a space, and a piece like "BI" or "RK" is too short to be
    plate-shaped on its own (eu4 at half size was 40% covered and "BIMM" stayed legible).
    Beside means as tall within a factor 1.6, centred within half a height of the plate's
    line, and less than a height away; pieces are taken in until none is left."""
    boxes = hulls(quads)
    heights = boxes[:, 3] - boxes[:, 1]
    centres = (boxes[:, 1] + boxes[:, 3]) / 2
    joined = True
    while joined:
        joined = False
        for i, kind in enumerate(kinds):
            if kind == "plate":
                continue
            for j in (j for j, k in enumerate(kinds) if k == "plate"):
                h = heights[j]
                gap = max(boxes[i, 0] - boxes[j, 2], boxes[j, 0] - boxes[i, 2])
                if (
                    h / 1.6 <= heights[i] <= h * 1.6
                    and abs(centres[i] - centres[j]) <= h / 2
                    and gap < h
                ):
                    kinds[i], joined = "plate", True
                    break


def _plate_shaped(quad: npt.NDArray[np.float32]) -> bool:
    along, across = sides(quad)
    aspect = max(along, across) / max(1.0, min(along, across))
    return PLATE_ASPECT[0] <= aspect <= PLATE_ASPECT[1]


def _overlap(quad: npt.NDArray[np.float32], region: npt.NDArray[np.int32]) -> float:
    """The share of ``quad``'s bounding box that lies inside ``region``."""
    x1, y1 = quad.min(axis=0)
    x2, y2 = quad.max(axis=0)
    area = max(1e-6, (x2 - x1) * (y2 - y1))
    w = min(x2, region[2]) - max(x1, region[0])
    h = min(y2, region[3]) - max(y1, region[1])
    return float(max(0.0, w) * max(0.0, h) / area)


__all__ = ["MARGIN", "Kind", "Marks", "TextFinder", "legible", "plate_like"]
