"""How to install one of veil's optional parts, said so that the command works as printed.

veil is installed from a clone or a wheel, not from a package index, so ``pip install
'veil[verify]'`` fails for nearly everyone who reads it. What an extra adds is on the index,
so the hint names those packages, for the very Python that runs veil (a venv's, pipx's).
"""

from __future__ import annotations

import re
import shlex
import sys
from importlib import metadata

#: Where the installed metadata is missing (veil run from a source tree): the clone's way.
_FROM_CLONE = "pip install '.[{extra}]' in veil's folder"


def install_command(extra: str) -> str:
    """A shell command that installs ``extra`` into the environment veil runs in, e.g.
    ``/home/me/veil/.venv/bin/python -m pip install 'dlib-bin>=19.24' ...``."""
    try:
        requires = metadata.requires("veil") or []
    except metadata.PackageNotFoundError:
        return _FROM_CLONE.format(extra=extra)
    marker = re.compile(rf"""\bextra\s*==\s*["']{re.escape(extra)}["']""")
    packages = [r.split(";")[0].strip() for r in requires if marker.search(r)]
    if not packages:
        return _FROM_CLONE.format(extra=extra)
    words = (sys.executable, "-m", "pip", "install", *packages)
    return " ".join(shlex.quote(word) for word in words)


def needs(extra: str) -> str:
    """``"the verify extra; install it with: <command>"``, for an error message."""
    return f"the {extra} extra; install it with: {install_command(extra)}"


__all__ = ["install_command", "needs"]
