"""The stage table: every stage of the factory, its asset, group, evidence folder and the gates it owns.

This is the one place a stage or a gate is named. The job's selection, the asset checks, the
cleanup order, the `z4 run` summary, the package layout, the evidence a package must hold and the
tests all read it. A gate's name is written here and nowhere else: the stage code refers to its
`GateSpec` (e.g. `HYGIENE.gate.duplicate_rows.compare(...)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from z4_assets.core.gates import GateSpec


@dataclass(frozen=True)
class Stage:
    name: str                    # the stage, as reports and package summaries name it
    asset: str                   # its Dagster asset
    group: str                   # its asset group in the UI: data, model, evaluation, release
    folder: str                  # its evidence folder under runs/<run id>/
    package_dir: str | None      # where its evidence lands in the signed package (None: not packaged)
    inputs: tuple[str, ...]      # the stages whose outcomes it consumes
    gates: tuple[GateSpec, ...]  # the blocking gates it owns
    description: str             # what it guards against, for the UI and the docs

    @property
    def gate(self) -> SimpleNamespace:
        """Its gates by name: STAGE.gate.duplicate_rows."""
        return SimpleNamespace(**{g.name: g for g in self.gates})

    @property
    def gate_names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.gates)


def _gates(**descriptions: str) -> tuple[GateSpec, ...]:
    return tuple(GateSpec(name, text) for name, text in descriptions.items())


SNAPSHOT = Stage(
    "snapshot", "z3_snapshot", "data", "snapshot", "reports/snapshot", (),
    _gates(snapshot_signature="The manifest is signed with the Z3 key (data, contract and dataset config "
                              "hashes, dataset and snapshot ids) and verifies with the configured Z3 public key.",
           snapshot_hash="Recomputed sha256 of the data, contract and dataset config equal the manifest's.",
           contract="The data satisfies its contract (pandera schema built from the contract file).",
           legal_basis="Every sensitive attribute declares an allowed legal basis.",
           purpose="The run's declared purpose is one the snapshot's contract allows (none declared: denied)."),
    "The Z3 snapshot of this partition, re-hashed and checked against its contract: nothing runs on "
    "bytes that changed, on data that breaks its contract, or for a purpose it does not allow.")

HYGIENE = Stage(
    "hygiene", "hygiene_report", "data", "hygiene", "reports/hygiene", ("snapshot",),
    _gates(duplicate_rows="Share of exact duplicate rows stays under the policy maximum.",
           conflicting_labels="Share of rows with identical features but different labels stays under the maximum.",
           impossible_values="Rows hitting an impossible-value rule of the contract (or +-inf).",
           target_leakage="No single feature predicts the label almost perfectly (single-feature AUC).",
           temporal_leakage="No model feature is only known after the label's time.",
           holdout_leak="No test row also appears in the training split.",
           drift="PSI and KL per feature against the dataset's baseline profile (tails and unseen categories included).",
           drift_missingness="Change of each feature's share of nulls against the baseline stays under the maximum.",
           drift_new_features="Every model feature has a baseline profile (a new one blocks or warns, by policy)."),
    "Evidence that the snapshot is clean enough to train on (duplicates, impossible values, leakage, "
    "holdout leaks, drift), and the row split every later stage uses.")

TRAINING = Stage(
    "training", "trained_model", "model", "model", "model", ("snapshot", "hygiene"),
    _gates(performance_auc="Test-split AUC reaches the policy minimum (on its confidence interval by default; "
                           "too small a test split is insufficient evidence).",
           performance_ks="Test-split KS reaches the policy minimum (as performance_auc).",
           operating_point="The model's decisions are not degenerate: it flags someone and not everyone, its "
                           "flagged share stays near the base rate, it beats the majority class on balanced accuracy.",
           artifact_parity="The exported artifact (ONNX or safetensors) scores the test split as the native model "
                           "does, to the policy tolerance (1e-6): what ships is what was evaluated."),
    "The candidate model, trained reproducibly on the clean split, with a bit-exact weights digest.")

SECURITY = Stage(
    "security", "adversarial_eval", "evaluation", "security", "reports/security", ("snapshot", "hygiene", "training"),
    _gates(poisoning_share="Share of rows the backdoor screen flags stays under the policy maximum.",
           poisoning_clusters="No label-homogeneous cluster whose labels contradict the rest of its rows.",
           evasion_accuracy_drop="Accuracy drop under PGD at the policy epsilon (valid rows, frozen inputs).",
           membership_auc="Membership-inference attack AUC stays at or under the policy maximum.",
           attribute_inference_gain="What the model's score adds to an attribute-inference attack on each sensitive "
                                    "attribute kept out of the model (accuracy over the features-only baseline) "
                                    "stays under the policy maximum.",
           output_integrity="Scores are finite, in [0, 1], stable under valid perturbation and not degenerate."),
    "No candidate is promoted without a backdoor screen, evasion, membership-inference and output tests.")

FAIRNESS = Stage(
    "fairness", "fairness_report", "evaluation", "fairness", "reports/fairness", ("snapshot", "hygiene", "training"),
    _gates(fairness_coverage="Every declared sensitive attribute has two groups large enough to compare.",
           fairness_ks_diff="Largest between-group KS difference stays under the policy maximum.",
           fairness_auc_diff="Largest between-group AUC difference stays under the policy maximum.",
           fairness_demographic_parity_diff="Gap between group selection rates stays under the maximum.",
           fairness_demographic_parity_ratio="Lowest / highest favourable-outcome rate stays above the minimum.",
           fairness_equalized_odds_diff="Larger of the TPR and FPR gaps between groups stays under the maximum."),
    "How the candidate behaves for every protected group, gated on the gaps between groups.")

GOVERNANCE = Stage(
    "governance", "model_card", "release", "governance", "reports/governance",
    ("snapshot", "hygiene", "training", "security", "fairness"),
    _gates(model_card_complete="Every required section of the model card is filled from evidence; "
                               "a missing piece is named."),
    "The model card: why this model may or may not be used, written only from this lineage's evidence.")

PACKAGING = Stage(
    "packaging", "signed_package", "release", "package", None,
    ("snapshot", "hygiene", "training", "security", "fairness", "governance"), (),
    "The lineage's evidence as one signed, checksummed package with in-toto provenance.")

RECORD = Stage(
    "record", "run_record", "release", "record", None, ("snapshot", "packaging"),
    _gates(run_record_complete="Every mandatory run-record field (code, data, execution, training, metrics, "
                               "hygiene, security, artifacts, governance, correlation) is present."),
    "The audited record: what was trained, on which data, with which code, and where it went.")

PROMOTION = Stage(
    "promotion", "promotion", "release", "promotion", None, ("snapshot", "packaging", "record"),
    _gates(package_verified="`z4 verify` passes on the package: archive form, signature, checksums, statements, "
                            "lineage, SBOM; and it is the tarball built and logged to MLflow.",
           release_gates_pass="The package holds every required stage, gate and file, and every gate in it is PASS.",
           trained_in_signed_image="When the policy requires it (promotion.require_signed_image), the run ran in "
                                   "the training image its package's signed image statement names."),
    "The registry entry: a model version under the `candidate` alias, only for a verified PASS package.")

CLEANUP = Stage(
    "cleanup", "cleanup_report", "release", "postrun", None,
    ("snapshot", "hygiene", "training", "security", "fairness", "governance", "packaging", "record", "promotion"),
    _gates(cleanup_complete="Scratch, temp files and secrets are gone, issued leases revoked, and no record "
                            "pointed outside the run's own folders."),
    "What this run removed, revoked and kept (and until when); nothing it created outlives it.")

STAGES: tuple[Stage, ...] = (SNAPSHOT, HYGIENE, TRAINING, SECURITY, FAIRNESS, GOVERNANCE, PACKAGING, RECORD,
                             PROMOTION, CLEANUP)
BY_NAME = {s.name: s for s in STAGES}
BY_ASSET = {s.asset: s for s in STAGES}
GROUPS = ("data", "model", "evaluation", "release")


def stage(name: str) -> Stage:
    return BY_NAME[name]


def all_gate_names() -> list[str]:
    return [g for s in STAGES for g in s.gate_names]


def packaged_stages() -> tuple[Stage, ...]:
    """The stages whose evidence a signed package holds, in pipeline order."""
    return tuple(s for s in STAGES if s.package_dir)


def required_evidence() -> dict[str, tuple[str, ...]]:
    """Stage -> the gates whose verdicts a package must carry: every packaged stage, every gate it owns."""
    return {s.name: s.gate_names for s in packaged_stages()}
