"""Models veil derives from shipped weights, kept per user so that later processes skip the
work (an int8 CenterFace, dlib's recognizer as ONNX)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from . import atomic


def cache_dir() -> Path:
    """``VEIL_CACHE_DIR``, else ``$XDG_CACHE_HOME/veil`` or ``~/.cache/veil``."""
    if explicit := os.environ.get("VEIL_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "veil"


def cached(name: str, inputs: list[bytes], build: Callable[[], bytes]) -> bytes:
    """``build()``, kept in veil's cache folder (``VEIL_CACHE_DIR``, else ``~/.cache/veil``)
    under ``name`` and a digest of ``inputs``, so that later processes skip the build (and the
    ``onnx`` import, half a second to a second of every worker's start). It holds models
    derived from public weights, nothing of any photo; an unwritable cache folder costs the
    build, nothing else, and a damaged entry (its checksum fails) is built and written again."""
    digest = hashlib.sha256()
    for part in inputs:
        digest.update(part)
    cached = cache_dir() / f"{name}-{digest.hexdigest()[:16]}.onnx"
    try:  # stored behind its own SHA-256: a damaged file is rebuilt, never loaded
        stored = cached.read_bytes()
        if hashlib.sha256(stored[32:]).digest() == stored[:32]:
            return stored[32:]
    except OSError:
        pass
    data = build()
    # Written atomically, so a concurrent worker reads either nothing or the whole file; a
    # write killed half-way leaves a temporary file that the next write removes (`atomic`),
    # and a full disk leaves nothing.
    with contextlib.suppress(OSError):
        atomic.sweep(cached.parent, recursive=False)
        atomic.atomic_write(cached, hashlib.sha256(data).digest() + data)
    return data
