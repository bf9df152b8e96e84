"""Same snapshot, same config: the same weights, bit for bit, in this process and in another."""

from __future__ import annotations

import subprocess
import sys

from z4_assets.assets import hygiene_report, trained_model, z3_snapshot
from z4_assets_tests.conftest import materialized, run_factory


def _digest(result) -> str:
    return result.asset_materializations_for_node("trained_model")[0].metadata["state_dict_sha256"].value


def test_training_twice_gives_a_bit_identical_state_dict(sample_df, register, factory_resources):
    """The first run makes the snapshot's outcomes; the retrainings read them from the outcome store."""
    register(sample_df.iloc[:15000])
    first = run_factory(factory_resources, assets=[z3_snapshot, hygiene_report, trained_model])
    second = run_factory(factory_resources, assets=[trained_model])
    reseeded = run_factory(factory_resources, train={"seed": 8}, assets=[trained_model])
    assert first.success and second.success and reseeded.success
    assert materialized(second) == materialized(reseeded) == {"trained_model"}, "upstream was not re-run"
    assert _digest(first) == _digest(second)
    assert _digest(reseeded) != _digest(first), "the digest must depend on the seed"
    lineage = [r.asset_materializations_for_node("trained_model")[0].metadata["lineage"].value
               for r in (first, second, reseeded)]
    assert lineage[0]["split"] == lineage[1]["split"] == lineage[2]["split"], "one split, one lineage"
    assert lineage[0]["model"] == _digest(first) and lineage[2]["model"] == _digest(reseeded)


SCRIPT = """
import sys
import numpy as np, pandas as pd
from z4_assets.core.contract import load_contract
from z4_assets.core.hygiene._checks import run_hygiene
from z4_assets.core.training._fit import fit_and_evaluate
from z4_assets.core.policy import load_policy
from z4_assets.core.validation import conform_dtypes
contract, _ = load_contract(sys.argv[1])
df = conform_dtypes(pd.read_csv(sys.argv[2]).iloc[:15000], contract)
policy = load_policy(None, contract.dataset_id)
split = run_hygiene(df, contract, policy, None).split
hp = dict(hidden_sizes=[64, 32], epochs=3, batch_size=512, learning_rate=2e-3,
          weight_decay=1e-5, seed=7, threads=int(sys.argv[3]))
print(fit_and_evaluate(df, contract, split, hp).train.digest)
"""


def test_digest_is_identical_across_processes_and_thread_counts():
    from z4_assets_tests.conftest import SAMPLE_CONTRACT, SAMPLE_CSV

    digests = {
        threads: subprocess.run([sys.executable, "-c", SCRIPT, str(SAMPLE_CONTRACT), str(SAMPLE_CSV),
                                 str(threads)], capture_output=True, text=True, check=True).stdout.strip()
        for threads in (1, 2)
    }
    assert len(digests[1]) == 64
    assert digests[1] == digests[2]


DEFAULTS_SCRIPT = """
import sys
from z4_assets.assets.model import TrainConfig
from z4_assets.core.training import CONVERGED
from z4_assets.core.contract import load_contract
from z4_assets.core.policy import load_policy
from z4_assets.core.split import assign_split
from z4_assets.core.training._fit import fit_and_evaluate
from z4_assets_tests.small_credit import taiwan_sample
contract, _ = load_contract(sys.argv[1])
df = taiwan_sample(1000)
split, _ = assign_split(df, contract, load_policy(None, contract.dataset_id).split)
hp = {**TrainConfig().model_dump(), **CONVERGED, "threads": int(sys.argv[2])}
fit = fit_and_evaluate(df, contract, split, hp)
print(fit.train.digest, fit.train.schedule["stopped_early_at"], fit.train.schedule["class_weights"] is not None)
"""


def test_the_converged_training_is_bit_identical_across_processes_and_thread_counts():
    """Early stopping, class weighting and the scaled epoch budget (core.training.CONVERGED) keep
    the weights bit-identical: same snapshot, same config, same digest."""
    from z4_assets_tests.conftest import SAMPLE_CONTRACT

    outs = [subprocess.run([sys.executable, "-c", DEFAULTS_SCRIPT, str(SAMPLE_CONTRACT), str(threads)],
                           capture_output=True, text=True, check=True).stdout.split() for threads in (1, 1, 2)]
    digest, stopped, weighted = outs[0]
    assert len(digest) == 64 and stopped != "None" and weighted == "True", "the converged schedule was not exercised"
    assert outs[0] == outs[1] == outs[2]
