"""The access broker as a resource: the pseudonymisation key and the access log every asset reads through."""


import dagster as dg
import pandas as pd
from pydantic import Field

from z4_assets.core import broker
from z4_assets.core.contract import Contract
from z4_assets.core.errors import Z4Error
from z4_assets.core.z3 import SnapshotRef


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

    def read(self, context, ref: SnapshotRef, contract: Contract,
             columns: list[str] | None = None) -> pd.DataFrame:
        """Pseudonymised rows for the run's purpose; a denial or a missing key fails the step clearly."""
        try:
            return self._read(context, ref, contract, columns, broker.load_key(self.key, self.key_file), False)
        except Z4Error as e:
            raise dg.Failure(description=str(e)) from None

    def read_for_intake(self, context, ref: SnapshotRef, contract: Contract) -> pd.DataFrame:
        """The raw rows, for the intake contract gate only (logged as raw); raises Z4Error."""
        return self._read(context, ref, contract, None, None, True)

    def _read(self, context, ref, contract, columns, key, raw: bool) -> pd.DataFrame:
        return broker.read_snapshot(ref, contract, purpose=ref.purpose, columns=columns,
                                    identity=broker.who(_run_tags(context)), run_id=context.run_id,
                                    key=key, log_path=self.log_path,
                                    reader=context.asset_key.to_user_string(), raw_for_intake=raw)

    def export_run_log(self, run_id, dest) -> dict:
        """run_id: one run id, or a retry's lineage (its own id and the runs it re-executes)."""
        return broker.export_run_log(self.log_path, run_id, dest)
