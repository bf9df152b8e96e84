"""The access broker as a resource: the pseudonymisation key and the access log every asset reads through."""


from typing import Optional

import dagster as dg
from pydantic import Field

from z4_assets.resources.vault import VaultSecrets


def _run_tags(context) -> dict:
    try:
        return dict(context.run.tags)
    except dg.DagsterError:  # an asset invoked directly, outside any run
        return {}


class SnapshotBroker(dg.ConfigurableResource):
    """Reads snapshot rows for the run's declared purpose, pseudonymised, one access-log line per read.

    The key is a secret: give it only through dg.EnvVar("Z4_PSEUDONYM_KEY") or a key file; it is
    never logged, tagged or written into evidence.
    """

    log_path: str = Field(description="append-only access log (JSON lines), default <factory root>/access_log.jsonl")
    key: str = Field("", description="pseudonymisation key; set only via dg.EnvVar('Z4_PSEUDONYM_KEY')")
    key_file: str = Field("", description="file holding the key (`z4 keygen` writes .z4/keys/pseudonym.key, 0600)")
    vault: Optional[VaultSecrets] = Field(None, description="with a vault (Z4_VAULT_ADDR) the key is read from it "
                                                            "per run, held in memory only; key and key_file unused")

    def reader(self, context):
        """The stage's row reader (core.stage_run.RowReader): pseudonymised rows for the run's purpose.
        A denial or a missing key raises Z4Error (one clear line in the step's failure)."""
        return lambda ref, contract, reader: self._read(context, ref, contract, None, self._key(context.run_id),
                                                        False, reader)

    def _key(self, run_id: str) -> bytes | None:
        from z4_assets.core import broker

        if self.vault is not None:
            return broker.load_key(self.vault.pseudonym_key(run_id))
        return broker.load_key(self.key, self.key_file)

    def intake_reader(self, context):
        """The raw rows, for the intake contract gate only (logged as raw)."""
        return lambda ref, contract: self._read(context, ref, contract, None, None, True, "z3_snapshot")

    def _read(self, context, ref, contract, columns, key, raw: bool, reader: str):
        from z4_assets.core import broker

        return broker.read_snapshot(ref, contract, purpose=ref.purpose, columns=columns,
                                    identity=broker.who(_run_tags(context)), run_id=context.run_id,
                                    key=key, log_path=self.log_path, reader=reader, raw_for_intake=raw)

    def export_run_log(self, run_id, dest) -> dict:
        """run_id: one run id, or several (the runs whose outcomes a package carries)."""
        from z4_assets.core import broker

        return broker.export_run_log(self.log_path, run_id, dest)
