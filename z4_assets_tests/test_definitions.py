"""The code location loads, and is the stage table: every stage one partitioned asset, every gate one
blocking check, nothing defined twice or left out; loading it imports no heavy library."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import dagster as dg

from z4_assets.assets import FACTORY_ASSETS
from z4_assets.assets.data import SnapshotConfig, z3_snapshot
from z4_assets.core.stages import GROUPS, STAGES, all_gate_names
from z4_assets.definitions import defs


def test_every_stage_is_one_partitioned_asset_in_table_order_and_group():
    graph = defs.resolve_asset_graph()
    keys = [a.key.to_user_string() for a in FACTORY_ASSETS]
    assert keys == [s.asset for s in STAGES]
    # and the verdict page of each snapshot (z4_assets/verdict_page.py), not a step of the job
    assert sorted(k.to_user_string() for k in graph.get_all_asset_keys()) == sorted([*keys, "verdict"])
    for stage in STAGES:
        node = graph.get(dg.AssetKey(stage.asset))
        assert node.partitions_def is not None and node.partitions_def.name == "z3_snapshots", stage.asset
        assert node.group_name == stage.group and stage.group in GROUPS
        # an asset reads exactly the stages the table says it consumes (cleanup: only orders after the rest)
        parents = {p.to_user_string() for p in node.parent_keys}
        wanted = {s.asset for s in STAGES if s.name in stage.inputs}
        assert parents == wanted, (stage.asset, parents ^ wanted)
    assert len({s.group for s in STAGES}) == len(GROUPS) == 4


def test_every_gate_is_exactly_one_blocking_check_of_its_stage():
    graph = defs.resolve_asset_graph()
    checks = [(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys]
    assert Counter(name for _, name in checks) == Counter(all_gate_names())
    assert max(Counter(all_gate_names()).values()) == 1, "a gate name is used twice"
    owner = {g.name: s.asset for s in STAGES for g in s.gates}
    assert all(owner[name] == asset for asset, name in checks)
    assert all(graph.get_check_spec(k).blocking for k in graph.asset_check_keys)


def test_model_factory_is_partitioned_in_process_and_selects_every_stage():
    job = defs.resolve_job_def("model_factory")
    assert job.executor_def.name == "in_process"
    assert job.partitions_def.name == "z3_snapshots"
    assert {n.name for n in job.graph.node_defs} >= {s.asset for s in STAGES}


def test_loading_definitions_imports_no_heavy_library():
    code = ("import sys, z4_assets.definitions; "
            "print(sorted(m for m in ('torch', 'mlflow', 'art', 'pandas', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_z3_snapshot_asset_called_directly_for_its_partition(tmp_path, sample_df, register, factory_resources):
    ref = register(sample_df.head(1000))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("z3_snapshots", [ref.label])
    context = dg.build_asset_context(resources=factory_resources, partition_key=ref.label, instance=instance)
    result = z3_snapshot(context=context, config=SnapshotConfig())
    assert result.value.snapshot.snapshot_id == ref.snapshot_id
    assert result.value.produced.snapshot == ref.manifest["hash"]
    # unsigned and no Z3 public key configured: snapshot_signature is insufficient evidence, not blocking
    assert {c.check_name: c.passed for c in result.check_results} == {
        "snapshot_signature": True, "snapshot_hash": True, "contract": True, "legal_basis": True, "purpose": True}
    assert result.metadata["hash"].value == ref.manifest["hash"]
