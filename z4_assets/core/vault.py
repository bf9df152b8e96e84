"""Secrets from a Vault-API server (HashiCorp Vault, OpenBao) for one run, and their revocation.

A run logs in once per process with a short-lived credential (an AppRole login, or a child token of
a token the deployment injects), reads the pseudonymisation key and the MLflow credentials with that
run token, and holds them only in this process's memory. The run's ledger gets the token's accessor
and any secret lease id (ids, never values); cleanup revokes each one and checks in the vault that it
is gone. KV secrets are static (Vault issues no lease for them): the run's access to them ends with
its token.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

from z4_assets.core.errors import Z4Error

TOKEN_ISSUER = "vault-token"    # ledger issuer of a run token (lease_id: the token's accessor)
LEASE_ISSUER = "vault-lease"    # ledger issuer of a secret lease (lease_id: Vault's lease id)
ISSUERS = (TOKEN_ISSUER, LEASE_ISSUER)
RUN_TOKEN_META = "z4 factory run"  # token mode: the metadata of a run's child token


@dataclass(frozen=True)
class VaultCredentials:
    """Where the vault is and what the factory logs in with; the values never appear in a repr."""

    address: str
    role_id: str = field(default="", repr=False)
    secret_id: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    namespace: str = ""
    token_ttl: str = "30m"
    timeout_seconds: float = 10.0

    @property
    def kind(self) -> str:
        return "approle" if self.role_id and self.secret_id else "token" if self.token else "none"


def _client(creds: VaultCredentials, token: str | None = None):
    import hvac

    if not creds.address.startswith(("https://", "http://")):
        raise Z4Error("Z4_VAULT_ADDR must be an http(s) URL")
    return hvac.Client(url=creds.address, token=token, namespace=creds.namespace or None,
                       timeout=creds.timeout_seconds)


def _fail(what: str, e: Exception) -> Z4Error:
    """A vault error as one line: its type and HTTP status only (a message may quote the request)."""
    status = getattr(e, "status_code", None)
    return Z4Error(f"vault: {what} failed ({type(e).__name__}{f', HTTP {status}' if status else ''})")


def login(creds: VaultCredentials) -> tuple[object, str]:
    """A client holding a fresh short-lived token, and that token's accessor."""
    try:
        if creds.kind == "approle":
            client = _client(creds)
            auth = client.auth.approle.login(role_id=creds.role_id, secret_id=creds.secret_id)["auth"]
            return client, auth["accessor"]
        if creds.kind == "token":
            parent = _client(creds, creds.token)
            auth = parent.auth.token.create(ttl=creds.token_ttl, renewable=False,
                                            meta={"issued_to": RUN_TOKEN_META})["auth"]
            return _client(creds, auth["client_token"]), auth["accessor"]
    except Z4Error:
        raise
    except Exception as e:  # hvac raises its own exceptions and requests' connection errors
        raise _fail(f"login ({creds.kind}) at {creds.address}", e) from None
    raise Z4Error("Z4_VAULT_ADDR is set but no vault credential is: give the AppRole "
                  "(Z4_VAULT_ROLE_ID and Z4_VAULT_SECRET_ID_FILE) or Z4_VAULT_TOKEN")


def split_path(path: str) -> tuple[str, str]:
    """'secret/z4/pseudonym' -> ('secret', 'z4/pseudonym'): a KV v2 mount and the secret's path."""
    mount, _, rest = path.strip("/").partition("/")
    if not mount or not rest:
        raise Z4Error(f"vault secret path must be <kv mount>/<path>, got {path!r}")
    return mount, rest


class RunSecrets:
    """One run's vault session in this process: its token and the secrets it read, in memory only."""

    def __init__(self, client, accessor: str, record_lease: Callable[[str, str], None]):
        self._client, self.accessor, self._record = client, accessor, record_lease
        self._read: dict[str, dict] = {}
        self._lock = threading.Lock()

    def read(self, path: str) -> dict:
        """The secret's key/value data (KV v2), read once per run and kept in memory."""
        with self._lock:
            if path not in self._read:
                mount, rest = split_path(path)
                try:
                    resp = self._client.secrets.kv.v2.read_secret_version(
                        path=rest, mount_point=mount, raise_on_deleted_version=True)
                except Exception as e:
                    raise _fail(f"reading {path}", e) from None
                if resp.get("lease_id"):
                    self._record(resp["lease_id"], LEASE_ISSUER)
                self._read[path] = dict(resp["data"]["data"])
            return self._read[path]

    def value(self, path: str, key: str) -> str:
        data = self.read(path)
        if not isinstance(data.get(key), str) or not data[key]:
            raise Z4Error(f"vault secret {path} has no {key!r} value")
        return data[key]

    def values(self) -> list[str]:
        """Every secret value this session holds (for the secret scan's canaries in tests)."""
        return [v for d in self._read.values() for v in d.values() if isinstance(v, str)]


_SESSIONS: dict[str, RunSecrets] = {}
_LOCK = threading.Lock()


def run_session(run_id: str, creds: VaultCredentials, record_lease: Callable[[str, str], None]) -> RunSecrets:
    """The run's session in this process, logging in on first use (the token's accessor is recorded
    in the run's ledger before any secret is read, so cleanup can revoke it whatever happens next)."""
    with _LOCK:
        if run_id not in _SESSIONS:
            client, accessor = login(creds)
            record_lease(accessor, TOKEN_ISSUER)
            _SESSIONS[run_id] = RunSecrets(client, accessor, record_lease)
        return _SESSIONS[run_id]


def forget(run_id: str) -> bool:
    """Drop the run's session and the secrets it held from this process."""
    with _LOCK:
        return _SESSIONS.pop(run_id, None) is not None


def revoke(entry: dict, creds: VaultCredentials) -> str:
    """Revoke one ledger entry (a run token by accessor, or a secret lease) with a fresh login of the
    factory's own credential, then check in the vault that it is gone. Raises Z4Error on failure."""
    issuer, lease_id = str(entry.get("issuer", "")), str(entry.get("lease_id", ""))
    if issuer not in ISSUERS or not lease_id:
        raise Z4Error(f"not a vault lease: issuer {issuer!r}")
    client, own = _admin(creds)
    try:
        if issuer == TOKEN_ISSUER:
            _revoke_token(client, lease_id, _own_issuer(client, own))
        else:
            _revoke_lease(client, lease_id)
    finally:
        if own:
            try:
                client.auth.token.revoke_self()
            except Exception:  # the revoker's own login expires with its TTL anyway
                pass
    return "revoked (checked: gone from the vault)"


def _admin(creds: VaultCredentials):
    """A client allowed to revoke: an AppRole login (revoked again right after) or the injected token."""
    if creds.kind == "approle":
        client, _ = login(creds)
        return client, True
    if creds.kind == "token":
        return _client(creds, creds.token), False
    raise Z4Error("no vault credential to revoke with")


def _own_issuer(client, approle: bool) -> dict:
    """What a run token issued by this credential carries: its AppRole's name, or the run metadata."""
    if not approle:
        return {"issued_to": RUN_TOKEN_META}
    try:
        meta = client.auth.token.lookup_self()["data"].get("meta") or {}
    except Exception as e:
        raise _fail("looking up the revoker's own token", e) from None
    return {"role_name": meta.get("role_name", "")}


def _revoke_token(client, accessor: str, issued: dict) -> None:
    """Revoke a run token, but only one this credential's role issued: an edited ledger naming
    another token (another team's, the deployment's own) is refused, never revoked."""
    import hvac.exceptions as hx

    try:
        meta = client.auth.token.lookup_accessor(accessor)["data"].get("meta") or {}
    except hx.InvalidRequest:
        return  # already revoked or expired: gone
    except Exception as e:
        raise _fail("looking up a run token", e) from None
    if any(meta.get(k) != v for k, v in issued.items()):
        raise Z4Error("vault: refusing to revoke a token this factory's credential did not issue to a run")
    try:
        client.auth.token.revoke_accessor(accessor)
    except hx.InvalidRequest:
        pass  # expired in between: the check below says whether it is gone
    except Exception as e:
        raise _fail("revoking a run token", e) from None
    try:
        client.auth.token.lookup_accessor(accessor)
    except hx.InvalidRequest:
        return  # "invalid accessor": gone
    except Exception as e:
        raise _fail("checking a revoked run token", e) from None
    raise Z4Error("vault: the run token is still valid after its revocation")


def _revoke_lease(client, lease_id: str) -> None:
    import hvac.exceptions as hx

    try:
        client.sys.revoke_lease(lease_id)
    except Exception as e:
        raise _fail("revoking a lease", e) from None
    try:
        client.sys.read_lease(lease_id)
    except hx.InvalidRequest:
        return  # "invalid lease": gone
    except Exception as e:
        raise _fail("checking a revoked lease", e) from None
    raise Z4Error("vault: the lease is still valid after its revocation")
