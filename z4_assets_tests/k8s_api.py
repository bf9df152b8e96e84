"""A stand-in Kubernetes API server for spec tests, and the offline schema validator.

No cluster can run here, so this is the one fake: an HTTP server on 127.0.0.1 that records the
Job bodies dagster-k8s POSTs (exactly what a real API server would receive) and answers with a
fixed status. Everything before the HTTP request (dagster-k8s, our executor and launcher, the
kubernetes client's serialization) is the real code.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

K8S_VERSION = "1.37.0"
DIGEST_IMAGE = "registry.example.com/z4/z4-model-factory@sha256:" + "ab" * 32


class FakeKubeAPI:
    """Records POSTed objects; answers POST with `status` (403 stops a run after one Job)."""

    def __init__(self, status: int = 403):
        self.status = status
        self.posted: list[dict] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.posted.append({"path": self.path, "body": body})
                reply = body if api.status < 300 else {
                    "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": api.status,
                    "reason": "Forbidden", "message": "z4 test API server: recorded, not created"}
                self._send(api.status, reply)

            def do_GET(self):  # noqa: N802
                self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404})

            def _send(self, code: int, doc: dict) -> None:
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeKubeAPI":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "z4-test",
            "clusters": [{"name": "z4-test", "cluster": {"server": self.url}}],
            "users": [{"name": "z4-test", "user": {"token": "z4-test-token"}}],
            "contexts": [{"name": "z4-test", "context": {"cluster": "z4-test", "user": "z4-test",
                                                          "namespace": "z4"}}],
        }))
        return path

    def jobs(self) -> list[dict]:
        return [p["body"] for p in self.posted if p["path"].endswith("/jobs")]


def kubernetes_validate(paths: list[Path]) -> subprocess.CompletedProcess:
    """`kubernetes-validate --strict` against K8S_VERSION, offline (schemas ship in the wheel)."""
    cli = Path(sys.executable).with_name("kubernetes-validate")
    cmd = [str(cli)] if cli.exists() else [sys.executable, "-m", "kubernetes_validate"]
    return subprocess.run([*cmd, "--strict", "-k", K8S_VERSION, *map(str, paths)],
                          capture_output=True, text=True, timeout=300)


def signed_image_env(folder: Path, digest_image: str = DIGEST_IMAGE) -> dict[str, str]:
    """Z4_IMAGE_EVIDENCE and Z4_SIGNING_PUBKEY for a real signed statement naming DIGEST_IMAGE's digest
    (made with a fresh key in FOLDER): the launcher and the executor run only what it names."""
    from z4_assets.core.files import atomic_write_json
    from z4_assets.core.packaging import IMAGE_EVIDENCE, image_statement, keygen, sign_image_statement

    evidence = folder / "image-evidence"
    priv, pub = folder / "image-signing.pem", folder / "image-signing.pub.pem"
    if not priv.exists():
        keygen(priv, pub)
    stmt = image_statement(digest_image.split("@")[0], digest_image.split("@")[1], {"test": True})
    atomic_write_json(evidence / IMAGE_EVIDENCE["bundle"], sign_image_statement(stmt, priv))
    return {"Z4_IMAGE_EVIDENCE": str(evidence), "Z4_SIGNING_PUBKEY": str(pub)}
