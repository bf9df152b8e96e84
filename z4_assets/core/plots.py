"""One way to render evidence plots: matplotlib Agg, fixed dpi, no run-dependent PNG metadata.

The same figure data gives the same PNG bytes, so plots inside a signed package do not change a
checksum between two runs of the same inputs. matplotlib is imported inside the functions.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from z4_assets.core.files import atomic_write_bytes

# Text chunks matplotlib would put in the PNG: "Software" names the matplotlib version, which would
# make the bytes differ across environments for the same data. None drops a key.
PNG_METADATA = {"Software": None}


@contextmanager
def figure(*args, **kwargs) -> Iterator[tuple]:
    """plt.subplots(*args, **kwargs) on the Agg backend; the figure is always closed."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(*args, **kwargs)
    try:
        yield fig, axes
    finally:
        plt.close(fig)


def png_bytes(fig, dpi: int, colours: int = 0) -> bytes:
    """The figure as PNG bytes, deterministic for the same figure content and matplotlib version.
    COLOURS > 0: a palette PNG of at most that many colours (a plot of flat colours and text keeps its
    look at a third of the bytes, so a legible one still fits the inline limit)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata=PNG_METADATA)
    if not colours:
        return buf.getvalue()
    from PIL import Image

    buf.seek(0)
    image = Image.open(buf).convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def save_png(fig, path: str | Path, dpi: int, colours: int = 0) -> Path:
    """Write the figure atomically as PNG (COLOURS: see png_bytes); returns the path."""
    return atomic_write_bytes(path, png_bytes(fig, dpi, colours))


def caption(snapshot: str, run_id: str) -> str:
    """The line every evidence plot carries: which snapshot and which Dagster run it belongs to."""
    return f"snapshot {snapshot} | run {run_id}"
