"""Lease revocation at cleanup: the Vault option against a loopback fake of its revoke endpoint.

No Vault server can run here; the fake below checks only what the revoker sends (method,
path, token header, lease id) and answers like Vault does (204, or 403 for a bad token).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from z4_assets.core.run_folder import RunFolder
from z4_assets.core.cleanup._postrun import finish_run
from z4_assets.core.cleanup._scratch import RunScratch
from z4_assets.core.policy import load_policy
from z4_assets.resources import NoopRevoker, VaultLeaseRevoker

TOKEN = "hvs.fake-root-token-never-logged"


@pytest.fixture
def vault():
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "token": self.headers.get("X-Vault-Token"), "body": body})
            self.send_response(204 if self.headers.get("X-Vault-Token") == TOKEN else 403)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _run_with_lease(tmp_path) -> RunFolder:
    paths = RunFolder(tmp_path / "factory", "run-with-lease")
    RunScratch(paths).record_lease("database/creds/z4-reader/h3Xk", "vault")
    return paths


def test_vault_revoker_revokes_the_run_lease_and_never_records_the_token(tmp_path, vault, monkeypatch):
    url, seen = vault
    monkeypatch.setenv("Z4_TEST_VAULT_TOKEN", TOKEN)
    paths = _run_with_lease(tmp_path)
    revoker = VaultLeaseRevoker(address=url, token_env="Z4_TEST_VAULT_TOKEN")
    post = finish_run(paths, load_policy(None, "x"), revoker.revoke, cleaned_by="test")
    assert seen == [{"path": "/v1/sys/leases/revoke", "token": TOKEN,
                     "body": {"lease_id": "database/creds/z4-reader/h3Xk"}}]
    assert post.report["revoked"][0]["status"] == "revoked (HTTP 204)" and post.gate.passed
    assert TOKEN not in (paths.postrun / "cleanup_report.json").read_text()


@pytest.mark.parametrize("token, status", [(None, "failed: PermissionError"), ("wrong", "failed: HTTPError")])
def test_a_failed_revocation_fails_the_cleanup_gate(tmp_path, vault, monkeypatch, token, status):
    url, _ = vault
    if token:
        monkeypatch.setenv("Z4_TEST_VAULT_TOKEN", token)
    else:
        monkeypatch.delenv("Z4_TEST_VAULT_TOKEN", raising=False)
    paths = _run_with_lease(tmp_path)
    post = finish_run(paths, load_policy(None, "x"),
                      VaultLeaseRevoker(address=url, token_env="Z4_TEST_VAULT_TOKEN").revoke, cleaned_by="test")
    assert post.report["revoked"][0]["status"] == status
    assert post.gate.passed is False


def test_noop_revoker_says_it_did_nothing(tmp_path):
    paths = _run_with_lease(tmp_path)
    post = finish_run(paths, load_policy(None, "x"), NoopRevoker().revoke, cleaned_by="test")
    assert post.report["revoked"][0]["status"].startswith("noop")
