"""Verified serving (issue 17): the registered version is an MLflow pyfunc; `mlflow.pyfunc.load_model`
and `mlflow models serve` (real server on 127.0.0.1, scoring over HTTP) score through onnxruntime after
verifying the signed package; a tampered package is refused by the server and by `z4 score`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from z4_assets_tests.conftest import (DATASET, SAMPLE_CONTRACT, SAMPLE_DATASET_CONFIG, make_resources,
                                      run_factory)

MODEL = f"z4-{DATASET}@candidate"
WORKTREE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory, sample_df, signing_key, cache_root):
    from z4_assets.core.z3 import add_snapshot

    root = tmp_path_factory.mktemp("serving")
    data = root / "data.parquet"
    sample_df.to_parquet(data, index=False)
    add_snapshot(root / "z3", DATASET, SAMPLE_CONTRACT, data, dataset_config=SAMPLE_DATASET_CONFIG)
    res = make_resources(root, root / "z3", signing_key, cache_root)
    result = run_factory(res, train={"model": {"family": "logistic"}})
    assert result.success
    env = {**os.environ, "MLFLOW_TRACKING_URI": res["mlflow"].tracking_uri,
           "Z4_SIGNING_PUBKEY": str(signing_key.with_name("signing.pub.pem")),
           "PYTHONPATH": str(WORKTREE) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    rows = sample_df.sample(100, random_state=5).drop(columns=["default.payment.next.month"])
    csv = root / "input.csv"
    rows.to_csv(csv, index=False)
    return {"root": root, "res": res, "env": env, "rows": rows, "csv": csv, "result": result}


def _store_path(served, rel: str) -> Path:
    """Where the artifact store keeps REL of the registered version's run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(served["res"]["mlflow"].tracking_uri)
    version = client.get_model_version_by_alias(f"z4-{DATASET}", "candidate")
    uri = client.get_run(version.run_id).info.artifact_uri
    return Path(urlparse(uri).path if uri.startswith("file:") else uri) / rel


def _score_cli(served, out: Path):
    return subprocess.run([sys.executable, "-m", "z4_assets.cli", "score", MODEL, str(served["csv"]), "--out", str(out)],
                          capture_output=True, text=True, env=served["env"], timeout=600, cwd=served["root"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(served, port: int):
    return subprocess.Popen(["mlflow", "models", "serve", "-m", f"models:/{MODEL}", "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port)], env=served["env"], cwd=served["root"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(proc, port: int, seconds: float = 240) -> bool:
    end = time.time() + seconds
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(1)
    return False


def test_pyfunc_serves_over_http_and_refuses_a_tampered_package(served, tmp_path, monkeypatch):
    import mlflow.pyfunc

    for k in ("MLFLOW_TRACKING_URI", "Z4_SIGNING_PUBKEY"):
        monkeypatch.setenv(k, served["env"][k])
    assert _store_path(served, "package/MLmodel").is_file()
    assert not list(_store_path(served, "package").rglob("*.pkl")), "the pyfunc holds no pickle"
    local = mlflow.pyfunc.load_model(f"models:/{MODEL}").predict(served["rows"])["score"].to_numpy()
    assert local.shape == (100,) and ((local > 0) & (local < 1)).all()

    cli = _score_cli(served, tmp_path / "scores.csv")
    assert cli.returncode == 0 and cli.stdout.startswith("SCORED: 100 rows"), cli.stdout + cli.stderr
    import pandas as pd
    assert np.allclose(pd.read_csv(tmp_path / "scores.csv")["score"].to_numpy(), local, atol=1e-7)

    port = _free_port()
    proc = _serve(served, port)
    try:
        assert _wait(proc, port), proc.stdout.read() if proc.poll() is not None else "server did not answer /ping"
        body = json.dumps({"dataframe_split": json.loads(served["rows"].to_json(orient="split", index=False))})
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", body.encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            answer = json.loads(r.read())
        http = np.array([p["score"] for p in answer["predictions"]])
        assert np.allclose(http, local, atol=1e-7)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    for rel in ("package/artifacts/package.tar.gz", "package/package.tar.gz"):   # the pyfunc's copy, the run's
        path = _store_path(served, rel)
        blob = bytearray(path.read_bytes())
        blob[len(blob) // 2] ^= 0x01
        path.write_bytes(bytes(blob))
    proc = _serve(served, _free_port())
    try:
        assert proc.wait(timeout=300) != 0, "the server must not start on a tampered package"
        log = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "refusing to load: package digest differs from the registry tag package_sha256" in log, log[-3000:]
    refused = _score_cli(served, tmp_path / "again.csv")
    assert refused.returncode == 2 and "refusing to load" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "again.csv").exists()
