"""The model card: complete and exact on a real run; a missing or tampered piece of evidence fails it by
name, and in a real run nothing downstream starts."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from z4_assets.assets import cleanup_report, model_card, promotion, run_record, signed_package
from z4_assets.core.fairness._disparity import DISPARITIES
from z4_assets.core.fairness._gates import GATES
from z4_assets.core.gates import _fmt, verdict_word
from z4_assets.core.governance._escape import text as inert
from z4_assets.core.governance import _evidence
from z4_assets.core.governance._card import render_card
from z4_assets.core.governance._evidence import gather
from z4_assets.core.policy import load_policy
from z4_assets.core.provenance import code_version
from z4_assets.core.run_folder import FILES, FactoryRoot, StageFiles
from z4_assets_tests.conftest import (DATASET, SAMPLE_DATASET_CONFIG, check_metadata, check_verdicts, downstream_of,
                                      fork_factory, materialized, newest_key, run_factory, started)

SECTIONS = ("Model details", "Purpose and intended use", "Out-of-scope uses", "Training data", "Data hygiene",
            "Performance", "Fairness", "Security", "Limitations and risks", "Safeguards",
            "Policy in force", "LGPD/GDPR checklist", "Provenance", "Runbooks")
THRESHOLDS = {d: (k, op, getattr(load_policy(None, DATASET).fairness, k)) for d, (k, op, _) in GATES.items()}
# evidence piece -> (the asset whose outcome names the file, its role, the stage's evidence folder)
PIECES = {"snapshot_manifest": ("z3_snapshot", "manifest", "snapshot"),
          "snapshot_gates": ("z3_snapshot", "gates", "snapshot"),
          "hygiene_report": ("hygiene_report", "report", "hygiene"),
          "hygiene_gates": ("hygiene_report", "gates", "hygiene"),
          "model_config": ("trained_model", "config", "model"), "model_metrics": ("trained_model", "metrics", "model"),
          "model_gates": ("trained_model", "gates", "model"),
          "feature_spec": ("trained_model", "feature_spec", "model"),
          "fairness_report": ("fairness_report", "report", "fairness"),
          "security_decision": ("adversarial_eval", "security_decision", "security"),
          "adversarial_eval": ("adversarial_eval", "adv_eval", "security"),
          "privacy_eval": ("adversarial_eval", "privacy_eval", "security")}


def _read(run_dir: Path, rel: str):
    return json.loads((run_dir / rel).read_text())


def _gate_row(g: dict) -> str:
    def cell(x):  # text (a purpose, the allowed purposes) is quoted inert (core/governance/_escape.py)
        return inert(x) if isinstance(x, str) else _fmt(x)

    return f"| {g['name']} | {verdict_word(g) if g['passed'] else '**' + verdict_word(g) + '**'} | " \
           f"{cell(g['value'])} | {g['comparison']} {cell(g['threshold'])} |"


def test_complete_run_writes_a_complete_card_with_the_real_numbers(sample_factory_run):
    result, run_dir, ref = (sample_factory_run[k] for k in ("result", "run_dir", "ref"))
    assert check_verdicts(result)["model_card_complete"] is True
    assert check_metadata(result, "model_card_complete")["measured"] == 0
    card = (run_dir / "governance" / "model_card.md").read_text()
    assert "**MISSING EVIDENCE:**" not in card
    assert [line[3:] for line in card.splitlines() if line.startswith("## ")] == list(SECTIONS)
    from z4_assets.core.runbooks import gate_runbook
    from z4_assets.core.stages import all_gate_names
    from z4_assets_tests.test_incident import resolves

    for gate in all_gate_names():  # every gate's runbook entry, linked from the card, resolves
        assert f"| {gate} | `{gate_runbook(gate)}` |" in card, gate
        resolves(gate_runbook(gate))

    assert ("stops the model for: performance and operating point, fairness; is shown but does not stop it "
            "for: evasion, membership inference, attribute inference (policy).") in card, \
        "the card says what insufficient evidence does, for every gate family the policy lets decide it"
    config = yaml.safe_load(SAMPLE_DATASET_CONFIG.read_text())
    for text in (config["purpose"], config["intended_use"], *config["out_of_scope"]):
        assert inert(text) in card  # quoted inert (core/governance/_escape.py)
    metrics = _read(run_dir, "model/metrics.json")
    for split, m in metrics.items():
        assert f"| {split} | {m['auc']:.4f} | {m['ks']:.4f} | {m['accuracy']:.4f} |" in card
    for rel in ("snapshot/gates.json", "hygiene/gates.json", "model/gates.json", "fairness/gates.json"):
        for g in _read(run_dir, rel):
            assert _gate_row(g) in card, (rel, g["name"])
    fairness = _read(run_dir, "fairness/fairness.json")
    for attr, a in fairness["attributes"].items():
        cells = [f"{a['disparities'][d]['value']:.3f} [{a['disparities'][d]['ci'][0]:.3f}, "
                 f"{a['disparities'][d]['ci'][1]:.3f}]" for d in DISPARITIES]
        assert f"| {inert(attr)} | " + " | ".join(cells) + " |" in card
        for label, e in a["groups"].items():
            assert f"| {inert(label)} | {e['count']} | {e['positives']} | {e['status']} |" in card
    manifest = ref.manifest
    client = MlflowClient(sample_factory_run["resources"]["mlflow"].tracking_uri)
    exp = client.get_experiment_by_name("z4-tests")
    (run,) = client.search_runs([exp.experiment_id], filter_string=f"tags.`dagster.run_id` = '{result.run_id}'")
    for ident in (manifest["hash"], manifest["snapshot_id"], str(manifest["row_count"]), result.run_id,
                  run.info.run_id, code_version()["git_sha"], _read(run_dir, "model/model_config.json")["state_dict_sha256"]):
        assert ident in card
    for attr, spec in yaml.safe_load(ref.contract_path.read_text())["sensitive"].items():
        assert f"| {inert(attr)} | {inert(spec['legal_basis'])} | {inert(spec['basis_reference'])} |" in card
    decision = (run_dir / "security" / "security_decision.txt").read_text().strip().splitlines()[0]
    assert decision.startswith("PASS") and decision in card
    privacy = _read(run_dir, "security/privacy_eval.json")
    assert f"| attack_auc | {_fmt(privacy['attack_auc'])} |" in card
    index = _read(run_dir, "governance/evidence_index.json")
    assert index["missing"] == {} and set(PIECES) <= set(index["sources"])
    for piece, (_, role, folder) in PIECES.items():  # each piece read from the file its stage's outcome names
        assert index["sources"][piece] == str(run_dir / folder / FILES[folder][role]), piece

    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "model_card.md" in top
    local = client.download_artifacts(run.info.run_id, "model_card.md", str(run_dir.parent / "dl"))
    assert Path(local).read_text() == card
    meta = result.asset_materializations_for_node("model_card")[0].metadata
    assert meta["file_card"].value == str(run_dir / "governance" / "model_card.md")


def _copy_run(sample_factory_run, tmp_path) -> tuple[Path, object]:
    run = tmp_path / "run"
    shutil.copytree(sample_factory_run["run_dir"], run)
    return run, sample_factory_run["ref"]


def _files(run: Path) -> dict[str, Path]:
    """Piece -> its file in a copied run folder, as the upstream outcomes name them."""
    return {piece: getattr(StageFiles(run / folder, FILES[folder]), role)
            for piece, (_, role, folder) in PIECES.items()}


def _card(run: Path, ref, ids: dict | None = None, files: dict | None = None):
    ev = gather(ref, _files(run) if files is None else files)
    ids = ids or {"dagster_run_id": "r1", "mlflow_run_id": "m1", "git_sha": "abc123", "dataset_hash": "h"}
    ev.pieces["policy_trace"] = json.loads((run / "governance" / "policy_trace.json").read_text())
    return render_card(ev, ids, THRESHOLDS)


def test_the_cards_evidence_rule_covers_every_policy_switch_for_insufficient_evidence():
    """Each policy section with insufficient_evidence_blocks has its line in the card: flipping any one
    of them moves exactly its family from one side of the card's sentence to the other."""
    from z4_assets.core.governance import evidence_rules

    policy = load_policy(None, DATASET)

    def switches(model, path=()):
        for name in type(model).model_fields:
            value = getattr(model, name)
            if name == "insufficient_evidence_blocks":
                yield path
            elif hasattr(type(value), "model_fields"):
                yield from switches(value, path + (name,))

    paths = list(switches(policy))
    assert len(paths) == len(evidence_rules(policy)) == 5, paths
    for path in paths:
        section = policy
        for name in path:
            section = getattr(section, name)
        before = evidence_rules(policy)
        object.__setattr__(section, "insufficient_evidence_blocks", not section.insufficient_evidence_blocks)
        after = evidence_rules(policy)
        object.__setattr__(section, "insufficient_evidence_blocks", not section.insufficient_evidence_blocks)
        assert len([k for k in before if before[k] != after[k]]) == 1, path


def test_the_pieces_are_the_ones_gather_reads():
    assert set(PIECES) == set(_evidence.PIECES)


def test_the_copied_evidence_alone_rebuilds_a_complete_card(sample_factory_run, tmp_path):
    card, gate = _card(*_copy_run(sample_factory_run, tmp_path))
    assert gate.passed and gate.value == 0 and "**MISSING EVIDENCE:**" not in card


@pytest.mark.parametrize("rel, piece, section", [
    ("fairness/fairness.json", "fairness_report", "Fairness"),
    ("hygiene/gates.json", "hygiene_gates", "Data hygiene"),
    ("hygiene/hygiene_report.json", "hygiene_report", "Training data"),
    ("model/metrics.json", "model_metrics", "Performance"),
    ("model/feature_spec.json", "feature_spec", "LGPD/GDPR checklist"),
    ("snapshot/dataset_manifest.json", "snapshot_manifest", "Provenance"),
    ("security/privacy_eval.json", "privacy_eval", "Security"),
    ("security/security_decision.txt", "security_decision", "Security"),
])
def test_removing_one_piece_of_evidence_fails_the_gate_naming_it(sample_factory_run, tmp_path, rel, piece, section):
    run, ref = _copy_run(sample_factory_run, tmp_path)
    (run / rel).unlink()
    card, gate = _card(run, ref)
    assert not gate.passed and gate.value == 1
    assert f"({piece})" in gate.summary and rel.split("/")[-1] in gate.details["missing"][piece]
    assert "file not found" in gate.details["missing"][piece]
    assert gate.details["sections"][section] == f"missing: {piece}"
    assert f"**MISSING EVIDENCE:** `{piece}`" in card


def _other_hash(path: Path) -> None:
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "hash": "0" * 64}))


@pytest.mark.parametrize("rel, piece, tamper, reason", [
    ("snapshot/dataset_manifest.json", "snapshot_manifest", _other_hash, "hash differs from the snapshot's"),
    ("model/metrics.json", "model_metrics", lambda p: p.write_text('{"test": {"auc": 0.9'), "unreadable"),
    ("fairness/fairness.json", "fairness_report", lambda p: p.write_text("{}"), "empty"),
])
def test_a_tampered_piece_of_evidence_fails_the_gate_naming_it(sample_factory_run, tmp_path, rel, piece, tamper,
                                                               reason):
    run, ref = _copy_run(sample_factory_run, tmp_path)
    tamper(run / rel)
    card, gate = _card(run, ref)
    assert not gate.passed and gate.value == 1 and f"({piece})" in gate.summary
    assert gate.details["missing"][piece].startswith(str(run / rel)) and reason in gate.details["missing"][piece]
    assert f"**MISSING EVIDENCE:** `{piece}`" in card


def test_a_piece_no_upstream_outcome_names_fails_the_gate(sample_factory_run, tmp_path):
    run, ref = _copy_run(sample_factory_run, tmp_path)
    files = {k: v for k, v in _files(run).items() if k != "privacy_eval"}
    card, gate = _card(run, ref, files=files)
    assert not gate.passed and gate.details["missing"] == {"privacy_eval": "not recorded (no such file was registered)"}
    assert gate.details["sections"]["Security"] == "missing: privacy_eval"


def test_a_snapshot_without_dataset_config_or_with_an_edited_one_fails(sample_factory_run, tmp_path):
    run, ref = _copy_run(sample_factory_run, tmp_path)
    bare = dataclasses.replace(ref, manifest={k: v for k, v in ref.manifest.items()
                                              if not k.startswith("dataset_config")})
    _, gate = _card(run, bare)
    assert not gate.passed and "dataset_config" in gate.summary and "not recorded" in gate.details["missing"]["dataset_config"]

    snap = tmp_path / "snapshot"
    shutil.copytree(ref.path, snap)
    edited = snap / "dataset.yaml"
    edited.chmod(0o644)
    edited.write_text(edited.read_text().replace("human review", "no review"))
    _, gate = _card(run, dataclasses.replace(ref, path=str(snap)))
    assert not gate.passed and "sha256 differs" in gate.details["missing"]["dataset_config"]


def test_unknown_git_sha_fails_the_provenance_section(sample_factory_run, tmp_path):
    run, ref = _copy_run(sample_factory_run, tmp_path)
    ids = {"dagster_run_id": "r1", "mlflow_run_id": "m1", "git_sha": "unknown (not a git checkout)",
           "dataset_hash": "h"}
    card, gate = _card(run, ref, ids)
    assert not gate.passed and "provenance.git_sha" in gate.summary
    assert gate.details["sections"]["Provenance"] == "missing: provenance.git_sha"


def test_the_security_section_shows_the_security_evidence_it_is_given(sample_factory_run, tmp_path):
    run, ref = _copy_run(sample_factory_run, tmp_path)
    sec = run / "security"
    shutil.rmtree(sec, ignore_errors=True)  # replace the real stage's files with known ones
    sec.mkdir()
    (sec / "security_decision.txt").write_text("APPROVED: robust accuracy 0.71 at eps 0.05\n")
    (sec / "adv_eval.json").write_text(json.dumps({"pgd": {"eps": 0.05, "robust_accuracy": 0.7131}}))
    _, gate = _card(run, ref)
    assert not gate.passed and gate.details["missing"].keys() == {"privacy_eval"}
    (sec / "privacy_eval.json").write_text(json.dumps({"membership_auc": 0.5124}))
    card, gate = _card(run, ref)
    assert gate.passed
    assert "APPROVED: robust accuracy 0.71 at eps 0.05" in card
    assert "| pgd.robust_accuracy | 0.7131 |" in card and "| membership_auc | 0.5124 |" in card


def _point(resources: dict, asset: str, role: str, path: Path) -> None:
    """The stored outcome of ASSET now names PATH as its ROLE file."""
    stored = FactoryRoot(resources["storage"].root).outcome(asset, newest_key(resources))
    doc = json.loads(stored.read_text())
    doc["files"][role] = str(path)
    stored.write_text(json.dumps(doc))


@pytest.mark.parametrize("piece, how", [("fairness_report", "removed"), ("snapshot_manifest", "tampered")])
def test_in_a_real_run_missing_or_tampered_evidence_blocks_the_release_naming_it(sample_factory_run, tmp_path,
                                                                                 piece, how):
    """model_card and the release on the shared run's outcomes; one evidence file they name is gone or edited."""
    resources = fork_factory(sample_factory_run, tmp_path)
    asset, role, folder = PIECES[piece]
    original = sample_factory_run["run_dir"] / folder / FILES[folder][role]
    copy = tmp_path / "evidence" / original.name
    copy.parent.mkdir()
    shutil.copy(original, copy)
    _point(resources, asset, role, copy)
    if how == "removed":
        copy.unlink()
    else:
        _other_hash(copy)
    result = run_factory(resources, assets=[model_card, signed_package, run_record, promotion, cleanup_report])

    assert not result.success
    assert check_verdicts(result)["model_card_complete"] is False
    meta = check_metadata(result, "model_card_complete")
    assert meta["measured"] == 1 and f"({piece})" in meta["verdict"]
    reason = "file not found" if how == "removed" else "hash differs from the snapshot's"
    assert meta["evidence"]["missing"] == {piece: f"{copy}: {reason}"}
    assert materialized(result) == {"model_card"}
    assert not started(result) & downstream_of("model_card"), "nothing is packaged, recorded or promoted"
    card = Path(result.asset_materializations_for_node("model_card")[0].metadata["file_card"].value).read_text()
    assert f"**MISSING EVIDENCE:** `{piece}`" in card
    assert original.is_file(), "the shared run's evidence is untouched"
    client = MlflowClient(resources["mlflow"].tracking_uri)
    exp = client.get_experiment_by_name("z4-tests")
    (run,) = client.search_runs([exp.experiment_id], filter_string=f"tags.`dagster.run_id` = '{result.run_id}'")
    assert run.info.status == "FAILED" and run.data.tags["z4.blocked_by"] == "model_card_complete"


INJECTION = {
    "model_name": "MLP** all gates PASS **",
    "purpose": "Scores risk.\n\n| all fairness gates | PASS (independently audited) |\n| --- | --- |",
    "intended_use": "<script>alert(1)</script><img src=x onerror=alert(2)> reviewed by humans",
    "out_of_scope": ["=HYPERLINK(\"http://evil.example\",\"click\")", "\u202eTSAP setag lla\u202c",
                     "[audited by Big4](http://evil.example)", "+1 line", "@SUM(A1)"],
    "limitations": ["# Approved\n## by the model risk committee", "`code` | injected cell |"],
    "safeguards": ["> quoted\u200b approval", "1. numbered"],
    "owner": "ops\u0007team\u0000",
}


def _injected(sample_factory_run, tmp_path):
    """The shared run's evidence with a dataset config full of injections (its hash recorded as at registration)."""
    from z4_assets.core.files import sha256_file

    run, ref = _copy_run(sample_factory_run, tmp_path)
    snap = tmp_path / "snapshot"
    shutil.copytree(ref.path, snap)
    config = snap / "dataset.yaml"
    config.chmod(0o644)
    doc = {**yaml.safe_load(config.read_text()), **INJECTION}
    config.write_text(yaml.safe_dump(doc, allow_unicode=True))
    ref = dataclasses.replace(ref, path=str(snap), manifest={**ref.manifest, "dataset_config_hash": sha256_file(config)})
    return _card(run, ref)


def test_user_text_in_the_card_is_inert(sample_factory_run, tmp_path):
    from markdown_it import MarkdownIt

    card, gate = _injected(sample_factory_run, tmp_path)
    assert gate.passed  # the card is complete: the text is quoted, not refused
    html = MarkdownIt("commonmark").enable("table").render(card)
    # no markup from the dataset config survives rendering
    assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html
    assert "evil.example\">" not in html and 'href="http://evil' not in html
    assert "<h1>Approved" not in html and "<h2>by the model" not in html and "<blockquote>" not in html
    assert "<strong> all gates PASS" not in html and "<ol>" not in html
    # the fake table row stays text inside the Purpose paragraph: no table cell says it
    assert "<td>all fairness gates</td>" not in html and "<td>PASS (independently audited)</td>" not in html
    quoted = [line for line in card.splitlines() if "all fairness gates" in line]
    assert len(quoted) == 2 and quoted[0].startswith("**Purpose.** Scores risk\\.")  # the prose ...
    assert quoted[1].startswith("| Purpose limitation (GDPR")  # ... and the GDPR row, one line each
    assert all("\\| all fairness gates \\|" in line for line in quoted)
    # every table the card draws has the columns it declared: nothing added a cell
    for table in html.split("<table>")[1:]:
        rows = table.split("</table>")[0].split("<tr>")[1:]
        assert len({r.count("<th") + r.count("<td") for r in rows}) == 1
    # bidi, zero-width and control characters are shown, not obeyed
    for ch in ("\u202e", "\u202c", "\u200b", "\u0007", "\u0000"):
        assert ch not in card
    assert "(U+202E)TSAP setag lla(U+202C)" in card and "ops(U+0007)team(U+0000)" in card
    assert "(U+202E)TSAP setag lla(U+202C)" in html  # what a reader sees
    # formula prefixes are defused for anyone pasting the card into a spreadsheet
    for line in card.splitlines():
        assert not line.lstrip("- |").startswith(("=", "+1", "@SUM")), line
    assert "- '=HYPERLINK\\(" in card and "- '\\+1 line" in card and "- '@SUM\\(A1\\)" in card


@pytest.mark.parametrize("value", ["\n| x | y |", "a|b", "`x`", "```", "<b>", "=1+1", "\u2067x\u2069", "[a](b)"])
def test_the_escaping_functions_leave_one_inert_line(value):
    from markdown_it import MarkdownIt

    from z4_assets.core.governance._escape import code, text

    for rendered in (text(value), code(value)):
        assert "\n" not in rendered
        html = MarkdownIt("commonmark").enable("table").render(f"| a |\n| --- |\n| {rendered} |\n")
        assert html.count("<td>") == 1 and "<b>" not in html and "<a " not in html and "\u2067" not in html
