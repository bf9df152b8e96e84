"""The Dagster instance the CLI talks to: $DAGSTER_HOME, else the project root it runs in."""

from __future__ import annotations

import os
from pathlib import Path

from z4_assets.core.errors import Z4Error


def dagster_home() -> str:
    if os.environ.get("DAGSTER_HOME"):
        return os.environ["DAGSTER_HOME"]
    if not Path("dagster.yaml").is_file():
        raise Z4Error("DAGSTER_HOME is not set and there is no dagster.yaml here: "
                      "run from the project root or set DAGSTER_HOME")
    return str(Path.cwd())
