"""Stage outcomes kept per asset and snapshot, as JSON under <factory root>/outcomes/: the IO manager.

A stage receives its upstream outcomes from here, for its own partition only. The stored JSON is
validated against the type the consuming stage asks for (no pickle: an edited file cannot run
code), and an outcome of another partition or stage is refused.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field, ValidationError

from z4_assets.core.errors import Z4Error
from z4_assets.core.files import atomic_write_text
from z4_assets.core.outcome import StageOutcome
from z4_assets.core.run_folder import FactoryRoot
from z4_assets.core.stages import BY_ASSET


class OutcomeStore(dg.ConfigurableIOManager):
    """The last outcome of each stage for each snapshot."""

    root: str = Field(description="the factory root (Z4_FACTORY_ROOT); outcomes live in <root>/outcomes/")

    def _path(self, asset: str, partition: str):
        return FactoryRoot(self.root).outcome(asset, partition)

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:
            return
        if not isinstance(obj, StageOutcome):
            raise Z4Error(f"{context.asset_key.to_user_string()} returned {type(obj).__name__}, not a stage outcome")
        atomic_write_text(self._path(context.asset_key.to_user_string(), context.asset_partition_key),
                          obj.model_dump_json(indent=1))

    def load_input(self, context: dg.InputContext) -> StageOutcome:
        asset, partition = context.asset_key.to_user_string(), context.asset_partition_key
        path = self._path(asset, partition)
        wanted = context.dagster_type.typing_type
        if not (isinstance(wanted, type) and issubclass(wanted, StageOutcome)):
            wanted = StageOutcome
        if not path.is_file():
            raise dg.Failure(description=f"{asset} has not been materialized for snapshot {partition}: "
                                         f"materialize it (and what it needs) for this partition first")
        try:
            outcome = wanted.model_validate_json(path.read_bytes())
        except ValidationError as e:
            raise dg.Failure(description=f"{path}: not a valid {wanted.__name__}: {e.errors()[0]['msg']}") from None
        if outcome.partition != partition or outcome.stage != BY_ASSET[asset].name:
            raise dg.Failure(description=f"{path}: holds the {outcome.stage} outcome of {outcome.partition}, "
                                         f"not {asset} of {partition}")
        return outcome
