"""The user's cache folder for what synthfactory derives from installed things (not from any
dataset): `{XDG_CACHE_HOME or ~/.cache}/synthfactory/<part>`. Reference vectors, the corpus's
seen-lists, the probe's dequantized models and llama.cpp's converter live here; deleting it only
costs the time to derive them again."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root(*parts: str) -> Path:
    """`{XDG_CACHE_HOME or ~/.cache}/synthfactory`, joined with `parts`."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base.joinpath("synthfactory", *parts)
