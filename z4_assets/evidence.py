"""Evidence plots in the Dagster UI: the PNG inline as markdown, plus entries that lead to the file."""

from __future__ import annotations

import base64
from pathlib import Path

import dagster as dg

from z4_assets.core.errors import Z4Error

# Every materialization event stores the image in the event log; a plot above this is linked only.
MAX_INLINE_BYTES = 60_000


def image_markdown(path: str | Path, title: str, max_bytes: int = MAX_INLINE_BYTES) -> dg.MarkdownMetadataValue:
    """The PNG as an inline base64 data URI (the UI shows it under "[Show Markdown]")."""
    p = Path(path)
    data = p.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise Z4Error("not a PNG file, cannot show it as an evidence plot", p)
    if len(data) > max_bytes:
        return dg.MetadataValue.md(f"**{title}**: {len(data)} bytes, over the {max_bytes}-byte inline limit; "
                                   f"open `{p}`")
    return dg.MetadataValue.md(f"**{title}**\n\n![{title}](data:image/png;base64,{base64.b64encode(data).decode()})")


def plot_metadata(key: str, path: str | Path, title: str, artifact_url: str | None = None) -> dict:
    """`key`: the file's path; `key`_image: the image inline; `key`_mlflow: the MLflow artifact, when served."""
    out = {key: dg.MetadataValue.path(str(path)), f"{key}_image": image_markdown(path, title)}
    if artifact_url:
        out[f"{key}_mlflow"] = dg.MetadataValue.url(artifact_url)
    return out
