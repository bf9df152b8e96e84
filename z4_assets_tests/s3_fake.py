"""A local S3 endpoint for tests: moto's server on loopback.

This is a fake: no real S3-compatible server can run on this machine (MinIO is not on PyPI and
Debian's radosgw needs a Ceph cluster). boto3 talks to it over real HTTP, so the object-store
code path (endpoint_url, pagination, ETags, streaming bodies, downloads) is the real one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

BUCKET = "z3-bucket"
PREFIX = "curated/z3"


@pytest.fixture
def s3_endpoint(monkeypatch):
    from moto.server import ThreadedMotoServer

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    import boto3
    import requests

    requests.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()  # moto keeps state per process
    boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    try:
        yield url
    finally:
        server.stop()


def upload(endpoint: str, snapshot_dir: str | Path, names: tuple[str, ...] | None = None) -> None:
    """Upload a local snapshot folder the way a writer should: the manifest last (NAMES: only these)."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    d = Path(snapshot_dir)
    if names is None:  # every file (dataset config, Z3 signature), the manifest last
        names = (*sorted(p.name for p in d.iterdir() if p.name != "manifest.json"), "manifest.json")
    for name in names:
        client.upload_file(str(d / name), BUCKET, f"{PREFIX}/{d.parent.name}/{d.name}/{name}")
