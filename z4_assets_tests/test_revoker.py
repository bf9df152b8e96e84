"""Lease and token revocation at cleanup, against a real OpenBao dev server: a run token revoked by
accessor and a real secret lease (PKI, generate_lease) revoked by id, each checked gone in the vault;
an edited ledger cannot make cleanup revoke a token the factory did not issue; no revoker is a failure."""

from __future__ import annotations

import hvac.exceptions as hx
import pytest

from z4_assets.core.cleanup._postrun import finish_run
from z4_assets.core.cleanup._scratch import RunScratch
from z4_assets.core.policy import load_policy
from z4_assets.core.run_folder import RunFolder
from z4_assets.core.vault import LEASE_ISSUER, TOKEN_ISSUER
from z4_assets.resources import NoopRevoker, VaultRevoker, VaultSecrets
from z4_assets_tests.vault_server import ROOT_TOKEN, start_dev_vault, stop_dev_vault

GONE = "revoked (checked: gone from the vault)"


@pytest.fixture(scope="module")
def vault(tmp_path_factory):
    v = start_dev_vault(tmp_path_factory.mktemp("vault"))
    yield v
    stop_dev_vault(v)


def _secrets(vault, root, **kw) -> VaultSecrets:
    args = {"address": vault.address, "factory_root": str(root / "factory"), "role_id": vault.role_id,
            "secret_id_file": str(vault.secret_id_file), **kw}
    return VaultSecrets(**args)


def _finish(root, run_id, revoker):
    return finish_run(RunFolder(root / "factory", run_id), load_policy(None, "x"), revoker.revoke, cleaned_by="test")


def test_a_run_token_is_revoked_and_checked_gone_and_no_secret_reaches_the_report(tmp_path, vault):
    secrets = _secrets(vault, tmp_path)
    assert secrets.pseudonym_key("run-a") == vault.pseudonym_key
    accessor = secrets.session("run-a").accessor
    assert vault.token_alive(accessor)
    post = _finish(tmp_path, "run-a", VaultRevoker(vault=secrets))
    assert post.report["revoked"] == [{"lease_id": accessor, "issuer": TOKEN_ISSUER, "status": GONE}]
    assert post.gate.passed and not vault.token_alive(accessor)
    text = (tmp_path / "factory" / "runs" / "run-a" / "postrun" / "cleanup_report.json").read_text()
    assert all(v not in text for v in vault.secret_values().values())
    secrets.forget("run-a")


def test_an_injected_token_gives_each_run_a_short_lived_child_token_that_cleanup_revokes(tmp_path, vault):
    secrets = _secrets(vault, tmp_path, role_id="", secret_id_file="", token=ROOT_TOKEN, token_ttl="5m")
    assert secrets.pseudonym_key("run-t") == vault.pseudonym_key
    accessor = secrets.session("run-t").accessor
    info = vault.root().auth.token.lookup_accessor(accessor)["data"]
    assert 0 < info["ttl"] <= 300 and info["meta"] == {"issued_to": "z4 factory run"}
    post = _finish(tmp_path, "run-t", VaultRevoker(vault=secrets))
    assert post.report["revoked"][0]["status"] == GONE and not vault.token_alive(accessor)
    assert vault.root().is_authenticated()  # the injected token itself is not revoked
    secrets.forget("run-t")


def test_a_secret_lease_is_revoked_by_id_and_checked_gone(tmp_path, vault):
    root = vault.root()
    if "pki/" not in root.sys.list_mounted_secrets_engines()["data"]:
        root.sys.enable_secrets_engine("pki", path="pki")
        root.secrets.pki.generate_root("internal", "z4 test root")
        root.secrets.pki.create_or_update_role("run", {"allow_any_name": True, "generate_lease": True, "ttl": "10m"})
    lease_id = root.secrets.pki.generate_certificate("run", "run.z4.test")["lease_id"]
    assert lease_id and root.sys.read_lease(lease_id)
    RunScratch(RunFolder(tmp_path / "factory", "run-l")).record_lease(lease_id, LEASE_ISSUER)
    post = _finish(tmp_path, "run-l", VaultRevoker(vault=_secrets(vault, tmp_path)))
    assert post.report["revoked"] == [{"lease_id": lease_id, "issuer": LEASE_ISSUER, "status": GONE}]
    with pytest.raises(hx.InvalidRequest):
        root.sys.read_lease(lease_id)


def test_an_edited_ledger_naming_a_token_the_factory_did_not_issue_is_refused(tmp_path, vault):
    other = vault.root().auth.token.create(ttl="5m", policies=["default"])["auth"]["accessor"]
    RunScratch(RunFolder(tmp_path / "factory", "run-e")).record_lease(other, TOKEN_ISSUER)
    post = _finish(tmp_path, "run-e", VaultRevoker(vault=_secrets(vault, tmp_path)))
    assert post.report["revoked"][0]["status"] == \
        "failed: vault: refusing to revoke a token this factory's credential did not issue to a run"
    assert not post.gate.passed and vault.token_alive(other)


def test_a_wrong_secret_id_is_a_failed_revocation_and_fails_the_gate(tmp_path, vault):
    secrets = _secrets(vault, tmp_path)
    accessor = secrets.session("run-w").accessor
    bad = tmp_path / "wrong-secret-id"
    bad.write_text("00000000-0000-0000-0000-000000000000")
    post = _finish(tmp_path, "run-w", VaultRevoker(vault=_secrets(vault, tmp_path, secret_id_file=str(bad))))
    status = post.report["revoked"][0]["status"]
    assert status.startswith("failed: vault: login (approle)") and status.endswith("(InvalidRequest)")
    assert not post.gate.passed and vault.token_alive(accessor)
    vault.root().auth.token.revoke_accessor(accessor)
    secrets.forget("run-w")


def test_a_lease_recorded_with_no_revoker_configured_fails_instead_of_passing(tmp_path):
    RunScratch(RunFolder(tmp_path / "factory", "run-n")).record_lease("abc", TOKEN_ISSUER)
    post = _finish(tmp_path, "run-n", NoopRevoker())
    assert post.report["revoked"][0]["status"].startswith("failed: no revoker configured (secrets: local files)")
    assert not post.gate.passed
