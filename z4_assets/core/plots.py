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


def png_bytes(fig, dpi: int) -> bytes:
    """The figure as PNG bytes, deterministic for the same figure content and matplotlib version."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata=PNG_METADATA)
    return buf.getvalue()


def save_png(fig, path: str | Path, dpi: int) -> Path:
    """Write the figure atomically as PNG; returns the path."""
    return atomic_write_bytes(path, png_bytes(fig, dpi))
