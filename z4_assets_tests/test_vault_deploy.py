"""The deployment's vault/HSM spec names only settings the factory reads, and carries no secret value:
the AppRole secret id and the PIN are mounted files; definitions wire them as such."""

from __future__ import annotations

from pathlib import Path

import yaml

from z4_assets.core.settings import Settings
from z4_assets.definitions import resources_from

SPEC = Path(__file__).resolve().parents[1] / "deploy" / "k8s" / "vault-hsm.yaml"


def test_the_spec_sets_only_known_settings_and_mounts_the_secrets_as_files():
    env_map, fragment = (d["data"] for d in yaml.safe_load_all(SPEC.read_text()))
    assert not {"Z4_VAULT_SECRET_ID", "Z4_VAULT_TOKEN", "Z4_PKCS11_PIN"} & set(env_map)
    assert "pin-value" not in env_map["Z4_PKCS11_URI"] and "pin-source" not in env_map["Z4_PKCS11_URI"]
    s = Settings.from_env(env_map)
    assert (s.vault_addr, s.signing_mode, s.pkcs11_pin_file, s.vault_secret_id_file) == (
        env_map["Z4_VAULT_ADDR"], "pkcs11", "/var/run/secrets/z4/pkcs11/pin", "/var/run/secrets/z4/vault/secret-id")
    steps = yaml.safe_load(fragment["steps-fragment.yaml"])
    mounts = {m["mountPath"] for m in steps["pod"]["volume_mounts"]} | {
        m["mountPath"] for m in steps["steps"]["signed_package"]["volume_mounts"]}
    assert {str(Path(s.pkcs11_pin_file).parent), str(Path(s.vault_secret_id_file).parent)} <= mounts


def test_definitions_wire_the_vault_everywhere_and_never_hold_a_secret_value(tmp_path):
    env = {"Z4_VAULT_ADDR": "http://127.0.0.1:1", "Z4_VAULT_ROLE_ID": "role", "Z4_VAULT_SECRET_ID_FILE": "/run/sid",
           "Z4_FACTORY_ROOT": str(tmp_path), "Z4_SIGNING_MODE": "pkcs11", "Z4_PKCS11_URI": "pkcs11:token=z4;object=k",
           "Z4_PKCS11_PIN": "1234", "Z4_VAULT_SECRET_ID": "sid-value"}  # pragma: allowlist secret
    r = resources_from(Settings.from_env(env))
    assert type(r["revoker"]).__name__ == "VaultRevoker"
    assert r["broker"].vault.address == r["mlflow"].vault.address == r["revoker"].vault.address == env["Z4_VAULT_ADDR"]
    assert r["broker"].vault.secret_id_file == "/run/sid" and r["signer"].mode == "pkcs11"
    # the values are dg.EnvVar references, resolved only when a run starts: never literal config
    assert "1234" not in repr(r["signer"]) and "sid-value" not in repr(r["broker"])
    none = resources_from(Settings.from_env({"Z4_FACTORY_ROOT": str(tmp_path)}))
    assert type(none["revoker"]).__name__ == "NoopRevoker" and none["broker"].vault is None
