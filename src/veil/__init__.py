"""veil: keep faces and locations out of the databases of biometric harvesters.

>>> import veil                                                      # doctest: +SKIP
>>> veil.clean("party.jpg", "share/party.jpg").status                # doctest: +SKIP
'cleaned'
>>> [f.name for f in veil.scan("party.jpg").metadata]                # doctest: +SKIP
['GPS', 'Make', 'Model', 'BodySerialNumber']
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, overload

import numpy as np
import numpy.typing as npt
from PIL import Image

from . import _offline  # noqa: F401  (first: before anything imports onnxruntime)
from .errors import (
    CorruptInput,
    DetectionFailed,
    EncodeFailed,
    TooLarge,
    UnsupportedFormat,
    UsageError,
    VeilError,
    VerificationFailed,
    WriteFailed,
)
from .faces import Faces
from .pipeline import Pipeline, ScanReport
from .result import FaceRecord, Result, VoiceRecord
from .settings import Settings

__version__ = "0.1.0"

__all__ = [
    "CorruptInput",
    "DetectionFailed",
    "EncodeFailed",
    "FaceRecord",
    "Faces",
    "Pipeline",
    "Result",
    "ScanReport",
    "Settings",
    "TooLarge",
    "UnsupportedFormat",
    "UsageError",
    "VeilError",
    "VerificationFailed",
    "VoiceRecord",
    "WriteFailed",
    "clean",
    "scan",
]

_PIPELINES: dict[Settings, Pipeline] = {}


def _pipeline(settings: Settings | None, options: dict[str, Any]) -> Pipeline:
    chosen = (settings or Settings()).with_(**options)
    if chosen not in _PIPELINES:  # the model loads once per distinct settings
        _PIPELINES[chosen] = Pipeline(chosen)
    return _PIPELINES[chosen]


@overload
def clean(
    source: npt.NDArray[np.uint8],
    output: None = None,
    *,
    settings: Settings | None = None,
    **options: Any,
) -> npt.NDArray[np.uint8]: ...
@overload
def clean(
    source: Image.Image, output: None = None, *, settings: Settings | None = None, **options: Any
) -> Image.Image: ...
@overload
def clean(
    source: str | Path, output: str | Path, *, settings: Settings | None = None, **options: Any
) -> Result | list[Result]: ...
def clean(
    source: Any, output: Any = None, *, settings: Settings | None = None, **options: Any
) -> Any:
    """Obscure faces (and, for files, strip metadata).

    - an RGB(A) uint8 array or a Pillow image: returns an obscured copy of the same type;
    - a file path: writes the cleaned copy to ``output`` (a file path) and returns its `Result`;
    - a folder: mirrors it into the folder ``output`` and returns one `Result` per file.

    Keyword options are `Settings` fields, e.g. ``method="pixelate"``, ``threshold=0.3``.
    """
    pipe = _pipeline(settings, options)
    if isinstance(source, np.ndarray):
        return pipe.clean_array(source).pixels
    if isinstance(source, Image.Image):
        mode = "RGBA" if source.mode in ("RGBA", "LA", "PA") else "RGB"
        return Image.fromarray(pipe.clean_array(np.asarray(source.convert(mode))).pixels)
    if output is None:
        raise UsageError("clean(path) needs an output path; veil never writes over its input")
    src, dst = Path(source), Path(output)
    from .batch import clean_batch, plan

    if src.is_dir():
        return clean_batch(plan([src], dst), pipe.settings, progress=False, pipeline=pipe)
    if os.path.realpath(dst) == os.path.realpath(src):  # realpath never raises on a loop
        raise UsageError("output must differ from the input; veil never writes over its input")
    if dst.exists() and not pipe.settings.overwrite:
        return Result(
            input=str(src),
            output=None,
            status="skipped",
            error=f"output exists: {dst} (pass overwrite=True to replace it)",
        )
    return pipe.run(src, dst)


def scan(
    source: str | Path, *, settings: Settings | None = None, **options: Any
) -> ScanReport | list[ScanReport]:
    """Faces and identifying metadata of a file (or of every file in a folder); writes nothing."""
    pipe = _pipeline(settings, options)
    path = Path(source)
    if path.is_dir():
        from .files import files_in

        return [pipe.scan(p) for p in files_in(path)]
    return pipe.scan(path)
