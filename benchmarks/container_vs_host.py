"""Wall time of `z4 demo` (the whole factory on the bundled sample) on the host and inside the signed
training image, one after the other in fresh project folders: `python benchmarks/container_vs_host.py`.

Needs the image built (`z4 image build`) and its evidence in build/image/, signed with Z4_SIGNING_KEY.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def demo(project: Path, extra: dict) -> float:
    shutil.copy(ROOT / "dagster.yaml", project / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("Z4_", "MLFLOW_", "DAGSTER_"))}
    env.update(PYTHONPATH=str(ROOT), DAGSTER_HOME=str(project),
               MLFLOW_TRACKING_URI=f"sqlite:///{project}/tracking/mlflow.db", **extra)
    (project / "tracking").mkdir()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "z4_assets.cli", "demo"], cwd=project, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"z4 demo failed ({extra or 'host'}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return seconds


def main() -> None:
    key = os.environ.get("Z4_SIGNING_KEY", str(ROOT / ".z4/keys/signing.pem"))
    evidence = os.environ.get("Z4_IMAGE_EVIDENCE", str(ROOT / "build/image"))
    common = {"Z4_SIGNING_KEY": key}
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        host = demo(Path(a), common)
        box = demo(Path(b), {**common, "Z4_EXECUTION": "container", "Z4_IMAGE_EVIDENCE": evidence,
                             "Z4_IMAGE": os.environ.get("Z4_IMAGE", "localhost/z4-train:latest")})
    print(f"z4 demo wall time: host {host:.1f} s | container {box:.1f} s | ratio {box / host:.2f}")


if __name__ == "__main__":
    main()
