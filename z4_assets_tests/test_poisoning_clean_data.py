"""The poisoning screen on data nobody tuned it on: clean public tables flag <= 0.5% of rows, a region
explained by one feature's natural value is reported and never flagged, and triggers planted by designs
chosen from each table's columns (core/security/_backdoor.generic_designs) are still found.

Full figures, every table and design: benchmarks/bench_poisoning.py (docs/security.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from z4_assets.core.policy import load_policy
from z4_assets.core.security._backdoor import generic_designs, plant_backdoor
from z4_assets.core.security._evaluate import pinned_threads, poisoning_gates
from z4_assets.core.security._poisoning import screen_poisoning
from z4_assets_tests.clean_tables import clean_tables, contract_for
from z4_assets_tests.conftest import DATASET

SEC = load_policy(None, DATASET).security
CLEAN_MAX = 0.005


@pytest.fixture(autouse=True)
def _one_thread():
    with pinned_threads(1):
        yield


# taiwan_second_half was flagged before (2 clusters); loanapp (gdlin: meets guidelines) had one
# 89%-of-rows region flagged; 401ksubs has 16 natural regions (eligibility decides participation).
@pytest.mark.parametrize("name", ["taiwan_second_half", "wooldridge_401ksubs", "wooldridge_mroz",
                                  "wooldridge_recid", "wooldridge_crime1", "wooldridge_loanapp"])
def test_clean_table_flags_at_most_half_a_percent(name):
    df, contract = clean_tables()[name]()
    screen = screen_poisoning(df, contract, SEC.poisoning, SEC.seed)
    assert screen.report["flagged_share"] <= CLEAN_MAX, screen.clusters
    gates = {g.name: g for g in poisoning_gates(screen, SEC.poisoning, np.arange(len(df)))}
    assert gates["poisoning_share"].passed and gates["poisoning_clusters"].passed


def test_natural_regions_are_reported_with_the_value_that_explains_them():
    df, contract = clean_tables()["wooldridge_401ksubs"]()
    screen = screen_poisoning(df, contract, SEC.poisoning, SEC.seed)
    natural = screen.report["natural_regions"]
    assert screen.report["natural_regions_total"] >= 1 and natural
    # not eligible for a 401(k): nobody participates. The region is reported, and names e401k.
    assert any(r["explained_by"]["column"] == "e401k" for r in natural), natural
    assert screen.clusters == []


def _census_like(n: int = 6000, seed: int = 3) -> tuple[pd.DataFrame, object]:
    """A clean census-like table where one natural value (a top-coded gain, 99999) nearly decides the label."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    edu = rng.integers(1, 17, n)
    hours = rng.integers(10, 70, n)
    gain = np.where(rng.random(n) < 0.03, 99999, np.where(rng.random(n) < 0.05, rng.integers(1, 20000, n), 0))
    gain[rng.random(n) < 0.02] = 15024
    logit = -4 + 0.15 * edu + 0.03 * (hours - 40) + 0.02 * (age - 40)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    y[np.isin(gain, [99999, 15024]) & (rng.random(n) < 0.97)] = 1
    df = pd.DataFrame({"age": age, "education_num": edu, "hours": hours, "capital_gain": gain, "income": y})
    return df, contract_for(df, "census_like", "income")


def test_a_top_code_and_a_natural_gain_value_are_not_backdoors():
    df, contract = _census_like()
    screen = screen_poisoning(df, contract, SEC.poisoning, SEC.seed)
    assert screen.report["flagged_share"] <= CLEAN_MAX, screen.clusters
    explained = {r["explained_by"]["value"] for r in screen.report["natural_regions"]
                 if r["explained_by"]["column"] == "capital_gain"}
    assert {99999, 15024} <= explained, screen.report["natural_regions"]


@pytest.mark.parametrize("name", ["wooldridge_401ksubs", "wooldridge_mroz"])
def test_generic_planted_triggers_are_found(name):
    df, contract = clean_tables()[name]()
    designs = generic_designs(df, contract)
    assert set(designs) == {"two_extremes", "category_and_odd_value"}
    for design, (pattern, source_positive) in designs.items():
        poisoned, planted = plant_backdoor(df, contract, pattern, max(0.02, 60 / len(df)), source_positive, 5)
        screen = screen_poisoning(poisoned, contract, SEC.poisoning, SEC.seed)
        truth = np.zeros(len(poisoned), dtype=bool)
        truth[planted] = True
        tp = int((screen.flagged & truth).sum())
        precision, recall = tp / max(int(screen.flagged.sum()), 1), tp / len(planted)
        assert precision >= 0.8 and recall >= 0.8, (design, precision, recall)


def test_too_few_rows_is_insufficient_evidence_not_a_pass():
    df, contract = clean_tables()["wooldridge_mroz"]()
    tiny = df.head(50)
    screen = screen_poisoning(tiny, contract, SEC.poisoning, SEC.seed)
    gates = poisoning_gates(screen, SEC.poisoning, np.arange(len(tiny)))
    assert [g.verdict for g in gates] == ["INSUFFICIENT_EVIDENCE"] * 2
    assert all(g.value is None and not g.passed for g in gates)  # blocks by default
    lenient = SEC.poisoning.model_copy(update={"insufficient_blocks": False})
    assert all(g.passed and g.value is None for g in poisoning_gates(screen, lenient, np.arange(len(tiny))))
    # and 753 rows are enough to decide
    full = poisoning_gates(screen_poisoning(df, contract, SEC.poisoning, SEC.seed), SEC.poisoning, np.arange(len(df)))
    assert [g.verdict for g in full] == ["PASS", "PASS"]
