"""The code location loads, wires every gate as blocking, and an asset runs on its own."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg

from z4_assets.definitions import defs
from z4_assets.snapshot.assets import SnapshotSelection, z3_snapshot


def test_model_factory_job_covers_the_backbone_in_process():
    job = defs.resolve_job_def("model_factory")
    assert job.executor_def.name == "in_process"
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"z3_snapshot", "hygiene_report", "trained_model", "adversarial_eval", "cleanup_report"} <= keys


def test_every_gate_is_a_blocking_check():
    graph = defs.resolve_asset_graph()
    checks = {k.name: graph.get_check_spec(k) for k in graph.asset_check_keys}
    assert len(checks) == 29
    assert all(spec.blocking for spec in checks.values()), [n for n, s in checks.items() if not s.blocking]


def test_loading_definitions_does_not_import_torch_or_mlflow():
    code = ("import sys, z4_assets.definitions; "
            "print(sorted(m for m in ('torch', 'mlflow', 'art') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_z3_snapshot_asset_called_directly(tmp_path, sample_df, register, factory_resources):
    ref = register(sample_df.head(1000))
    context = dg.build_asset_context(resources=factory_resources)
    result = z3_snapshot(context=context, config=SnapshotSelection())
    assert result.value.snapshot_id == ref.snapshot_id
    assert {c.check_name: c.passed for c in result.check_results} == {
        "snapshot_hash": True, "contract": True, "legal_basis": True, "purpose": True}
    assert result.metadata["hash"] == ref.manifest["hash"]
