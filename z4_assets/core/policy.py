"""The promotion policy: defaults for every dataset, overridable per dataset, in one YAML file.

Each section is a pydantic model: a misspelt key or a value of the wrong kind stops the run with
one line naming it (with a "did you mean"), and every threshold is documented where it is read.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from z4_assets.core.errors import Z4Error
from z4_assets.core.signing_modes import SIGNING_MODES

DEFAULT_POLICY = Path(__file__).resolve().parents[1] / "policy.yaml"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccessPolicy(Section):
    purpose: str = Field(description="purpose a run reads data for unless its config names another")


class Z3Policy(Section):
    signature: Literal["required", "when_key_configured"] = Field(
        description="required: every snapshot's manifest is signed with the Z3 key and checked against "
                    "Z4_Z3_PUBKEY; when_key_configured: required once that key is configured")


class ContractPolicy(Section):
    allowed_legal_bases: list[str] = Field(description="GDPR art. 6(1) bases, plus explicit consent for art. 9 data")


class HygienePolicy(Section):
    duplicate_share_max: float = Field(description="exact duplicate rows (id excluded), share of all rows")
    conflicting_label_share_max: float = Field(description="rows whose identical features carry different labels")
    duplicate_columns: Literal["all_but_id", "features"] = Field(
        "all_but_id", description="columns two rows must agree on to count as duplicates (and, target aside, as "
        "conflicting labels): all_but_id = every contract column except the id column (feature: false ones "
        "too, so different people with the same coarse attributes are not duplicates); features = only the "
        "candidate features, what the model sees")
    impossible_share_max: float = Field(description="rows hitting a contract impossible_values rule or +-inf")
    leakage_auc_max: float = Field(description="single-feature AUC (max(AUC, 1-AUC)) must stay below")
    temporal_leak_features_max: int = Field(description="features known only after the label's time")
    holdout_leak_share_max: float = Field(description="test rows whose features also appear in training")
    drift_psi_max: float = Field(description="per feature, against the dataset's baseline profile")
    drift_kl_max: float = Field(description="KL(reference || current) per feature")
    drift_bins: int = Field(description="interior bins of a numeric feature (reference quantiles); tails are extra")
    drift_method: Literal["factory", "evidently"] = Field(
        description="factory = docs/drift.md's definition; evidently = Evidently 0.7.23's PSI and KL")
    drift_missing_share_max: float = Field(description="largest change of a feature's share of nulls")
    drift_new_feature: Literal["block", "warn"] = Field(description="a model feature the baseline never saw")
    drift_no_baseline_blocks: bool = Field(description="a dataset's first snapshot (no baseline) blocks")
    drift_small_sample_blocks: bool = Field(description="a PSI over the threshold but within sampling noise blocks")
    leakage_sample_rows: int = Field(description="single-feature AUC is computed on a seeded sample above this")


class SplitPolicy(Section):
    strategy: Literal["auto", "time", "hash"] = Field(description="auto = time when the contract declares a time column")
    key: Literal["content", "id"] = Field(description="content = identical rows share a split; id = hash of the id")
    test_fraction: float
    validation_fraction: float
    seed: int


class OperatingPointPolicy(Section):
    score_threshold: float = Field(gt=0, lt=1, description="a test row is flagged when P(positive) >= this")
    positive_rate_ratio_max: float = Field(gt=1, description="flagged share / base rate must lie within "
                                                              "[1/this, this]")
    balanced_accuracy_min: float = Field(gt=0.5, le=1, description="the majority class scores 0.5")


class PerformancePolicy(Section):
    test_auc_min: float
    test_ks_min: float
    gate_on: Literal["point", "interval"] = Field(description="interval: the whole CI must comply to pass, "
                                                              "all of it breach to fail, else insufficient")
    confidence: float = Field(gt=0.5, lt=1)
    bootstrap_resamples: int = Field(ge=100)
    seed: int
    min_class_rows: int = Field(ge=1, description="test positives and negatives below this: insufficient evidence")
    insufficient_evidence_blocks: bool = Field(description="an insufficient performance or operating-point "
                                                           "gate stops the model")
    operating_point: OperatingPointPolicy


class TrainingPolicy(Section):
    max_grad_norm: float = Field(description="warn when a batch's gradient L2 norm exceeds this")
    patience_epochs: int = Field(description="warn when validation AUC has not improved for this many epochs")
    min_delta: float = Field(description="... by more than this")


class ModelsPolicy(Section):
    """Model families (core/training/_families.py): the exported artifact and the challenger table."""

    parity_tolerance: float = Field(1e-6, gt=0, description="gate artifact_parity: largest |exported - native| "
                                    "score on the test split")
    challenger_auc_margin: float = Field(0.005, ge=0, description="the challenger table picks the simplest family "
                                         "whose test AUC is within this of the best")


class PoisoningPolicy(Section):
    sample_rows: int
    min_support_rows: int
    min_support_share: float
    purity_min: float
    alpha: float
    expand_share: float
    expand_lift: float
    max_regions: int
    fit_rows: int
    donors: int
    region_eval_rows: int
    excess_min: float
    z_min: float
    max_trigger_share: float = Field(
        0.2, description="a region of more than this share of the screened rows is the data's own structure, "
                         "not a planted trigger (a backdoor is a small planted share): reported, never flagged")
    max_flagged_share: float = Field(description="gate poisoning_share")
    max_homogeneous_clusters: int = Field(description="gate poisoning_clusters")
    insufficient_blocks: bool = Field(
        True, description="a screen with too few rows to test any pattern (fewer than twice the minimum "
                          "support) reports INSUFFICIENT EVIDENCE on both poisoning gates; true: that blocks")
    report_ids: int
    art_signals: bool
    art_rows: int
    art_expected_poison: float


class EvasionPolicy(Section):
    sample_rows: int
    epsilons: list[float]
    gate_epsilon: float
    pgd_iterations: int
    max_accuracy_drop: float = Field(description="gate evasion_accuracy_drop: clean accuracy - PGD accuracy")
    min_rows: int = Field(ge=1, description="fewer attacked test rows: insufficient evidence")
    insufficient_evidence_blocks: bool
    decision_rows: int = Field(200, ge=1, description="rows HopSkipJump attacks on a non-differentiable family "
                               "(a decision-based attack queries the model thousands of times per row)")
    decision_max_iter: int = Field(20, ge=1, description="HopSkipJump iterations per row")
    decision_max_eval: int = Field(1000, ge=1, description="HopSkipJump most queries per gradient estimate")


class MembershipPolicy(Section):
    rows_per_side: int
    max_attack_auc: float = Field(description="gate membership_auc")
    min_rows_per_side: int = Field(ge=20, description="fewer members or non-members: insufficient evidence")
    gate_on: Literal["point", "interval"] = Field(description="interval: the attack AUC's CI decides")
    confidence: float = Field(gt=0.5, lt=1)
    insufficient_evidence_blocks: bool


class AttributeInferencePolicy(Section):
    sample_rows: int = Field(ge=100, description="seeded sample of training rows; half fit the attacks, half score them")
    bands: int = Field(ge=2, description="quantile bands of a numeric attribute the contract gives no bins")
    min_eval_rows: int = Field(ge=50, description="fewer scored rows: insufficient evidence")
    max_accuracy_gain: float = Field(description="gate attribute_inference_gain: attack accuracy with the model's "
                                                 "score minus the baseline's (other features alone), per attribute")
    insufficient_evidence_blocks: bool


class IntegrityPolicy(Section):
    sample_rows: int
    min_distinct_scores: int
    min_score_std: float


class SecurityPolicy(Section):
    seed: int
    threads: int
    poisoning: PoisoningPolicy
    evasion: EvasionPolicy
    membership: MembershipPolicy
    attribute_inference: AttributeInferencePolicy
    integrity: IntegrityPolicy


class SelectionRule(Section):
    rule: Literal["score", "top_rate"]
    value: float


class FairnessPolicy(Section):
    selection: SelectionRule
    favourable_outcome: Literal["selected", "not_selected"]
    bins: dict[str, list[float]] = Field(default_factory=dict)
    default_bands: int
    min_group_count: int
    min_class_count: int
    intersections: str | list[list[str]]
    bootstrap_resamples: int
    bootstrap_score_bins: int
    confidence: float
    seed: int
    gate_on: Literal["point", "ci_low", "ci_high", "interval"]
    insufficient_evidence_blocks: bool = Field(description="an unassessable fairness gate stops the model")
    gate_attributes: Literal["protected", "all"]
    gate_intersections: bool
    unassessable_attributes_max: int
    ks_diff_max: float
    auc_diff_max: float
    demographic_parity_diff_max: float
    demographic_parity_ratio_min: float
    equalized_odds_diff_max: float


class EvidencePolicy(Section):
    files: list[str] = Field(default_factory=list,
                             description="package files a package must hold besides what the stage table requires "
                                         "(core/packaging/_evidence.py); can only grow: a dataset override that "
                                         "drops one is refused")

    @field_validator("files")
    @classmethod
    def _plain_paths(cls, files: list[str]) -> list[str]:
        for f in files:
            parts = f.split("/")
            if not f or f.startswith("/") or "\\" in f or any(p in ("", ".", "..") for p in parts):
                raise ValueError(f"{f!r} is not a normalized path inside the package")
        return files


class PromotionPolicy(Section):
    require_signed_image: bool = Field(
        False, description="promote only a run trained in a signed training image (its container_digest named "
                           "by the image's signed statement in the package); a host run is refused")


class LicencePolicy(Section):
    allowed: list[str] = Field(description="SPDX ids a dependency may be under (an OR expression needs one, AND all)")
    denied: list[str] = Field(description="SPDX ids no dependency may be under: FAIL in release mode, a loud "
                                          "WARN in development (never a pass)")
    exceptions: dict[str, str] = Field(default_factory=dict,
                                       description="package name -> who cleared it and why (a reviewed licence)")


class RunsPolicy(Section):
    step_timeout_seconds: dict[str, int] = Field(
        description="per factory step (asset name) the most seconds it may run, retries included; `default` "
                    "for any other step. A step past it is stopped and recorded as a time-out")
    transient_attempts: int = Field(ge=1, le=10, description="tries of a step that hits a transient failure "
                                                            "(MLflow or the vault unreachable, a full disk)")
    transient_backoff_seconds: float = Field(ge=0, description="wait before the 2nd try; doubles each time")
    transient_backoff_max_seconds: float = Field(ge=0, description="cap on one wait")

    def timeout(self, step: str) -> int:
        return int(self.step_timeout_seconds.get(step, self.step_timeout_seconds["default"]))


class ReleasePolicy(Section):
    require_signing: list[str] = Field(default_factory=list,
                                       description="signing modes promotion accepts (ec_key, pkcs11, certificate, "
                                                   "sigstore); empty: any mode whose signature verifies. A bank's "
                                                   "release policy says [pkcs11, certificate]")

    @field_validator("require_signing")
    @classmethod
    def _known_modes(cls, modes: list[str]) -> list[str]:
        if unknown := [m for m in modes if m not in SIGNING_MODES]:
            raise ValueError(f"unknown signing mode {unknown[0]!r}: use {', '.join(SIGNING_MODES)}")
        return modes


class Policy(Section):
    access: AccessPolicy
    z3: Z3Policy
    contract: ContractPolicy
    hygiene: HygienePolicy
    split: SplitPolicy
    performance: PerformancePolicy
    training: TrainingPolicy
    security: SecurityPolicy
    fairness: FairnessPolicy
    evidence: EvidencePolicy = Field(default_factory=EvidencePolicy)
    promotion: PromotionPolicy = Field(default_factory=PromotionPolicy)
    licences: LicencePolicy
    runs: RunsPolicy
    release: ReleasePolicy = Field(default_factory=ReleasePolicy)
    models: ModelsPolicy = Field(default_factory=ModelsPolicy)
    retention: dict[str, Any] = Field(description="retention classes and rules (validated by core/cleanup)")
    source: str = Field(description="the policy file this was read from")


def _read(p: Path) -> dict:
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise Z4Error(f"cannot read policy: {e.strerror}", p) from None
    except yaml.YAMLError as e:
        raise Z4Error(f"policy is not valid YAML: {str(e).splitlines()[0]}", p) from None
    if not isinstance(doc, dict):
        raise Z4Error("policy must be a mapping with 'defaults' and/or 'datasets' sections", p)
    return doc


def load_policy(path: str | Path | None, dataset_id: str) -> Policy:
    """The effective policy for one dataset: packaged defaults, the file's defaults, its dataset overrides."""
    p = Path(path) if path else DEFAULT_POLICY
    doc = _read(p)
    base = _read(DEFAULT_POLICY)["defaults"]
    if p != DEFAULT_POLICY:  # a user's file may hold only what it changes, with or without `defaults:`
        check_policy(doc, base, p)
    merged = _merge(base, doc.get("defaults") or {})
    _only_adds(base, merged, "defaults", p)
    before = merged
    merged = _merge(merged, (doc.get("datasets") or {}).get(dataset_id) or {})
    _only_adds(before, merged, f"datasets.{dataset_id}", p)
    try:
        return Policy(**merged, source=str(p))
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise Z4Error(f"policy key {where}: {err['msg']}", p) from None


def _only_adds(before: dict, after: dict, where: str, path: Path) -> None:
    """The required evidence can only grow: an override's list must keep every file the level below named."""
    kept = set(((after.get("evidence") or {}).get("files")) or [])
    if dropped := [f for f in ((before.get("evidence") or {}).get("files") or []) if f not in kept]:
        raise Z4Error(f"policy key {where}.evidence.files drops required evidence {dropped[0]!r}: "
                      "the policy can only add to what a package must hold", path)


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# Mappings whose keys the user names (attributes, retention classes): not checked against the defaults.
_OPEN = {("fairness", "bins"), ("retention", "classes"), ("licences", "exceptions"), ("runs", "step_timeout_seconds")}
# Keys that take more than one kind of value.
_KINDS = {("fairness", "intersections"): ("text", "list")}


def _kind(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "text", list: "list", dict: "mapping"}.get(type(value), "null" if value is None else type(value).__name__)


def check_policy(doc: dict, base: dict, path: Path) -> None:
    """Every key of a user's policy must exist in the packaged defaults, with a value of the same
    kind: a misspelt threshold must not be ignored in silence, nor a word compared to a number."""
    for key in doc:
        if key not in ("defaults", "datasets"):
            raise Z4Error(f"unknown policy section {key!r}: expected 'defaults' and 'datasets'", path)
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise Z4Error(f"policy key defaults must be a mapping, got {_kind(defaults)}", path)
    _check(defaults, base, "defaults", (), path)
    datasets = doc.get("datasets") or {}
    if not isinstance(datasets, dict):
        raise Z4Error(f"policy key datasets must be a mapping of dataset ids, got {_kind(datasets)}", path)
    for dataset_id, overrides in datasets.items():
        if overrides is not None and not isinstance(overrides, dict):
            raise Z4Error(f"policy key datasets.{dataset_id} must be a mapping, got {_kind(overrides)}", path)
        _check(overrides or {}, base, f"datasets.{dataset_id}", (), path)


def _check(over: dict, base: dict, where: str, trail: tuple, path: Path) -> None:
    for key, value in over.items():
        at = (*trail, key)
        name = ".".join([where, *map(str, at)])
        if key not in base:
            near = difflib.get_close_matches(str(key), [str(k) for k in base], n=1)
            raise Z4Error(f"unknown policy key {name}" + (f" (did you mean {near[0]!r}?)" if near else ""), path)
        allowed = _KINDS.get(at, (_kind(base[key]),))
        if _kind(value) not in allowed:
            raise Z4Error(f"policy key {name} must be a {' or '.join(allowed)}, not {_kind(value)} {value!r}", path)
        if isinstance(value, dict) and at not in _OPEN:
            _check(value, base[key], where, at, path)
