"""OpenLineage run events of one factory stage (openlineage-python's classes, serialised by its Serde).

One OpenLineage run per stage of a Dagster run (runId: a UUID derived from both), its parent the
Dagster run (job `model_factory`). The input is the snapshot, with the schema of its data file and
the contract's column list; the outputs are the model (training) and the package (packaging), each
versioned by its sha256.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

PRODUCER = "urn:z4:model-factory"
NAMESPACE = "z4-model-factory"
DATA_NAMESPACE = "z3"
MODEL_NAMESPACE = "z4-models"
CONTRACT_FACET_URL = "urn:z4:openlineage:facets:ContractColumnsDatasetFacet"


def stage_run_id(dagster_run_id: str, stage: str) -> str:
    try:
        base = uuid.UUID(dagster_run_id)
    except ValueError:
        base = uuid.uuid5(uuid.NAMESPACE_URL, f"z4:dagster-run:{dagster_run_id}")
    return str(uuid.uuid5(base, stage))


def _parent_uuid(dagster_run_id: str) -> str:
    try:
        return str(uuid.UUID(dagster_run_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"z4:dagster-run:{dagster_run_id}"))


def snapshot_input(dataset: str, columns: list[tuple[str, str]], contract_columns: list[dict],
                   contract_sha256: str | None) -> dict:
    """The snapshot as an OpenLineage input dataset: its schema and the contract's columns."""
    from openlineage.client.event_v2 import InputDataset
    from openlineage.client.facet_v2 import schema_dataset
    from openlineage.client.serde import Serde

    schema = schema_dataset.SchemaDatasetFacet(
        fields=[schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in columns], producer=PRODUCER)
    ds = json.loads(Serde.to_json(InputDataset(DATA_NAMESPACE, dataset, facets={"schema": schema})))
    ds["facets"]["z4_contract"] = {"_producer": PRODUCER, "_schemaURL": CONTRACT_FACET_URL,
                                   "contract_sha256": contract_sha256, "columns": contract_columns}
    return ds


def output(kind: str, dataset: str, sha256: str) -> dict:
    """The model or the package as an output dataset, versioned by its sha256."""
    return {"namespace": MODEL_NAMESPACE, "name": f"{dataset}/{kind}",
            "facets": {"version": {"_producer": PRODUCER,
                                   "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/"
                                                 "DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
                                   "datasetVersion": f"sha256:{sha256}"}}}


def run_event(state: str, dagster_run_id: str, stage: str, inputs: list[dict], outputs: list[dict],
              error: str = "", at: datetime | None = None) -> dict:
    """One RunEvent (START, COMPLETE or FAIL) as JSON-ready dict."""
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import error_message_run, parent_run
    from openlineage.client.serde import Serde

    facets = {"parent": parent_run.ParentRunFacet(
        run=parent_run.Run(runId=_parent_uuid(dagster_run_id)),
        job=parent_run.Job(namespace=NAMESPACE, name="model_factory"), producer=PRODUCER)}
    if error:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=error, programmingLanguage="python", producer=PRODUCER)
    event = RunEvent(eventType=RunState[state], eventTime=(at or datetime.now(timezone.utc)).isoformat(),
                     producer=PRODUCER, run=Run(runId=stage_run_id(dagster_run_id, stage), facets=facets),
                     job=Job(namespace=NAMESPACE, name=f"model_factory.{stage}"), inputs=[], outputs=[])
    out = json.loads(Serde.to_json(event))
    out["inputs"], out["outputs"] = inputs, outputs
    return out
