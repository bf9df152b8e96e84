"""A run's scratch space and its ledger: what the run created that cleanup must take away.

Stages put temp files, caches (e.g. a snapshot copied from an object store) and secret files
under scratch/<run id>/; tokens and env vars the run was given are written to the ledger by
name or lease id only. No secret value is ever written to the ledger, a log or a report.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from z4_assets.core.run_folder import RunFolder
from z4_assets.core.errors import Z4Error
from z4_assets.core.files import atomic_write_bytes, atomic_write_json

LEDGER = "ledger.json"
SECRETS = "secrets"  # a folder name  # pragma: allowlist secret


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class RunScratch:
    """scratch/<run id>/ of one run: tmp/, cache/, secrets/ and ledger.json."""

    def __init__(self, paths: RunFolder):
        self.paths = paths

    @property
    def root(self) -> Path:
        return self.paths.scratch

    def dir(self, *parts: str) -> Path:
        d = self.root.joinpath(*parts)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def write_secret(self, name: str, value: str | bytes) -> Path:
        """A secret-bearing file (0600) that cleanup removes; the ledger keeps its name only."""
        if "/" in name or name.startswith("."):
            raise Z4Error(f"secret file name must be a plain file name, got {name!r}")
        data = value.encode("utf-8") if isinstance(value, str) else value
        path = atomic_write_bytes(self.dir(SECRETS) / name, data, mode=0o600)
        self._record({"kind": "secret_file", "path": f"{SECRETS}/{name}"})
        return path

    def record_lease(self, lease_id: str, issuer: str) -> None:
        """A token or lease issued to this run (its id, never its secret), to revoke at cleanup."""
        self._record({"kind": "lease", "lease_id": lease_id, "issuer": issuer})

    def set_env(self, name: str, value: str) -> None:
        """An env var the run sets for its own children; cleanup unsets it (the name is recorded)."""
        os.environ[name] = value
        self._record({"kind": "env", "name": name})

    def record_file(self, path: str | os.PathLike) -> None:
        """A transient file the run created outside scratch; cleanup removes it if it is inside
        the run's own folders and refuses (and reports) it otherwise."""
        self._record({"kind": "file", "path": str(path)})

    def ledger(self) -> list[dict]:
        return read_ledger(self.root / LEDGER)

    def _record(self, entry: dict) -> None:
        entries = self.ledger() + [{**entry, "at": _now()}]
        atomic_write_json(self.dir() / LEDGER, entries, mode=0o600)


def read_ledger(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Z4Error(f"malformed ledger: {e}", path) from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise Z4Error("malformed ledger: expected a list of records", path)
    return entries
