"""The contract every registered obscurer keeps, run over `OBSCURERS` itself: a new method gets
these tests by being registered. The method-specific behaviours (fill's grey, pixelate's grid,
fresh noise) stay in test_obscurers.py, whose picture and scaled faces these tests reuse.

The contract: same shape and dtype out; nothing outside the region touched, alpha included; the
input left alone; inside the region, nothing a viewer could recognise (METRICS.md's SSIM bar and
a bound on how much of the original's luma survives); regions on the image's edges, of 1-3 px,
and grey images; a name that is its registry key and a label for the page, which offers exactly
the registered methods.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

from helpers import astronaut, central, crop, grey, ssim_grey
from test_obscurers import REGION, _regions, _scaled_face
from veil.obscurers import OBSCURERS, Obscurer
from veil.settings import MASKS, METHODS

CONTRACT = pytest.mark.parametrize("cls", OBSCURERS.values(), ids=list(OBSCURERS))
# Measured (mean over five seeds of the correlation between the central 60% of the region's
# luma before and after): fill about 0.0; pixelate 0.58, 0.52, 0.17 and blur 0.60, 0.38, 0.06
# for faces 120, 32 and 16 px tall. A coarse copy keeps the layout of light and shade, so the
# bound is not near zero; above it, a method starts to keep the face itself.
LUMA_CORRELATION_MAX = 0.75
SSIM_MAX = 0.6  # METRICS.md: a face is protected below this over the central 60%
SEEDS = range(5)


def _images() -> dict[str, np.ndarray]:
    """The astronaut as RGB, RGBA, grey (2-D) and grey with its channel axis kept."""
    rgb = astronaut()
    luma = np.round(grey(rgb)).astype(np.uint8)
    return {
        "rgb": rgb,
        "rgba": np.dstack([rgb, np.full(rgb.shape[:2], 77, np.uint8)]),
        "grey": luma,
        "grey-1": luma[..., None],
    }


def _outside(shape: tuple[int, ...], box: tuple[int, int, int, int]) -> np.ndarray:
    x1, y1, x2, y2 = box
    mask = np.ones(shape[:2], bool)
    mask[y1:y2, x1:x2] = False
    return mask


def _assert_obscured_only_inside(
    obscurer: Obscurer, image: np.ndarray, box: tuple[int, int, int, int]
) -> np.ndarray:
    before = image.copy()
    out = obscurer.apply(image, _regions(box))
    assert out.shape == image.shape and out.dtype == image.dtype
    np.testing.assert_array_equal(image, before)  # pure: the input is left alone
    outside = _outside(image.shape, box)
    np.testing.assert_array_equal(out[outside], image[outside])
    if image.ndim == 3 and image.shape[2] == 4:
        np.testing.assert_array_equal(out[..., 3], image[..., 3])  # alpha is not a face
    return out


@CONTRACT
def test_name_is_the_registry_key_and_label_is_for_people(cls: type[Obscurer]) -> None:
    assert issubclass(cls, Obscurer)
    assert OBSCURERS[cls.name] is cls and cls.name in METHODS
    assert isinstance(cls.label, str) and cls.label.strip()
    labels = [other.label for other in OBSCURERS.values()]
    assert labels.count(cls.label) == 1, "two methods the page could not tell apart"


def test_settings_offer_exactly_the_registry() -> None:
    assert tuple(OBSCURERS) == METHODS


@CONTRACT
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("kind", ["rgb", "rgba", "grey", "grey-1"])
def test_same_shape_and_dtype_nothing_outside_changes(
    cls: type[Obscurer], mask: str, kind: str
) -> None:
    image = _images()[kind]
    out = _assert_obscured_only_inside(cls(mask), image, REGION)
    inner = central(REGION)
    changed = np.abs(crop(out, inner).astype(int) - crop(image, inner).astype(int))
    assert changed.mean() > 15, "the region barely changed"


@CONTRACT
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("height_px", [120, 32, 16])
def test_inside_the_original_is_not_recoverable(
    cls: type[Obscurer], mask: str, height_px: int
) -> None:
    image, regions = _scaled_face(height_px)
    box = central(tuple(int(v) for v in regions[0]))
    scores, correlations = [], []
    for seed in SEEDS:
        out = cls(mask, rng=np.random.default_rng(seed)).apply(image, regions)
        scores.append(ssim_grey(crop(image, box), crop(out, box)))
        before, after = grey(crop(image, box)).ravel(), grey(crop(out, box)).ravel()
        flat = after.std() == 0 or before.std() == 0
        correlations.append(0.0 if flat else float(np.corrcoef(before, after)[0, 1]))
    assert np.mean(scores) < SSIM_MAX, f"SSIM {np.mean(scores):.2f}, {height_px} px face"
    assert np.mean(correlations) < LUMA_CORRELATION_MAX, (
        f"luma correlation {np.mean(correlations):.2f}, {height_px} px face"
    )


EDGE_AND_TINY = [
    (0, 0, 40, 60),  # top-left corner
    (472, 452, 512, 512),  # bottom-right corner
    (0, 200, 512, 260),  # the full width
    (300, 0, 340, 512),  # the full height
    (0, 0, 1, 1),
    (511, 511, 512, 512),
    (100, 100, 102, 102),
    (200, 300, 203, 301),
    (509, 100, 512, 103),
]


@CONTRACT
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("box", EDGE_AND_TINY, ids=str)
@pytest.mark.parametrize("kind", ["rgb", "grey"])
def test_regions_on_the_edge_and_of_a_few_pixels(
    cls: type[Obscurer], mask: str, box: tuple[int, int, int, int], kind: str
) -> None:
    _assert_obscured_only_inside(cls(mask, rng=np.random.default_rng(0)), _images()[kind], box)


@pytest.mark.web
def test_the_page_offers_exactly_the_registered_methods() -> None:
    pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'veil[web]'")
    from fastapi.testclient import TestClient

    from veil.web.app import create_app

    # Not entered as a context: the lifespan (which loads the models) is not needed here.
    client = TestClient(create_app(), base_url="http://127.0.0.1:8765")
    config = client.get("/api/config").json()
    assert config["methods"] == list(OBSCURERS)
    assert config["labels"] == {name: cls.label for name, cls in OBSCURERS.items()}
    schema = client.get("/api/openapi.json").json()["components"]["schemas"]
    assert schema["EditsIn"]["properties"]["method"]["enum"] == list(OBSCURERS)
    script = (resources.files("veil.web") / "static" / "app.js").read_text(encoding="utf-8")
    for cls in OBSCURERS.values():
        assert cls.label not in script, "the page keeps a list of methods of its own"
