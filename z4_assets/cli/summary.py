"""What one factory run decided, stage by stage: every gate it evaluated, and why a stage did not run."""

from __future__ import annotations

from z4_assets.core.files import read_json
from z4_assets.core.gates import verdict_word
from z4_assets.core.settings import Settings
from z4_assets.core.stages import GOVERNANCE, PROMOTION, STAGES, TRAINING


def _steps(dagster_home: str, run_id: str) -> dict[str, str]:
    """asset -> how its step ended, when it did not succeed: 'crashed: <error>' or 'skipped'."""
    import dagster as dg

    out: dict[str, str] = {}
    with dg.DagsterInstance.from_config(dagster_home) as instance:
        for kind in (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.STEP_SKIPPED):
            for r in instance.get_records_for_run(run_id, of_type=kind).records:
                event = r.event_log_entry.dagster_event
                if event.event_type == dg.DagsterEventType.STEP_SKIPPED:
                    out.setdefault(event.step_key, "skipped: a stage it needs did not pass in this run")
                    continue
                err = event.event_specific_data.error
                while err is not None and err.cause is not None:
                    err = err.cause
                text = (err.message if err else "").strip().splitlines()
                first = text[0] if text else "unknown error"
                out[event.step_key] = (f"blocked: {first[first.find(':') + 1:].strip()}"
                                       if "AssetCheckFailed" in first else f"crashed: {first}")
    return out


def _short(v, width: int = 60) -> str:
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= width else text[:width - 3] + "..."


def offending_examples(g: dict, n: int = 3) -> list[str]:
    """Up to N offending examples from a failed gate's evidence (gates.json), as a reader wants them:
    contract violations with their values, named features, rule counts, clusters, ids."""
    from z4_assets.core.validation import short_check

    d = g.get("details") or {}
    out: list[str] = []
    for f in d.get("failures") or []:  # contract: column, what, first values
        out.append(f"{f.get('column')}: {short_check(str(f.get('check', '')))} "
                   f"({', '.join(map(str, f.get('examples') or [])) or '-'})")
    if isinstance(d.get("offending"), dict):  # legal basis: attribute -> declared basis
        out += [f"{k}: {_short(v)}" for k, v in d["offending"].items()]
    for key in ("flagged_features", "leaking_features", "unassessable"):
        items = d.get(key)
        out += [_short(x) for x in (items.items() if isinstance(items, dict) else items or [])]
    if isinstance(d.get("per_rule"), dict):
        out += [f"{rule}: {count} rows" for rule, count in d["per_rule"].items() if count]
    for c in d.get("clusters") or []:
        out.append(f"pattern {_short(c.get('pattern'))} ({c.get('flagged_rows', c.get('rows', '?'))} rows)")
    if d.get("offending_group") is not None:
        out.append(f"{d.get('attribute', '')} group {d['offending_group']}".strip())
    if isinstance(d.get("missing"), (dict, list)):
        out += [_short(m) for m in d["missing"]]
    if d.get("example_ids"):
        out.append("ids " + ", ".join(map(str, d["example_ids"][:n])))
    return out[:n]


def print_summary(dagster_home: str, run_id: str) -> None:
    """The gates of RUN_ID as its stages recorded them (gates.json), in stage-table order."""
    from z4_assets.core.run_folder import FactoryRoot

    run = FactoryRoot(Settings.from_env().factory_root).run(run_id)
    steps = _steps(dagster_home, run_id)
    print(f"\nEvidence of Dagster run {run_id}: {run.run_dir}")
    print(f"{'stage':<11} {'gate':<34} {'verdict':<7} {'measured':>12}  threshold")
    stopped = None  # the first stage of this run that blocked or crashed
    for stage in STAGES:
        path = run.stage(stage.folder, create=False).gates if stage.gates else None
        if path is not None and path.is_file():
            gates = read_json(path)
            if stopped is None and not all(g["passed"] for g in gates):
                stopped = stage.asset
            for g in gates:
                value = f"{g['value']:.4g}" if isinstance(g["value"], float) else (
                    "-" if g["value"] is None else str(g["value"]))
                word = {"insufficient evidence": "insuff.", "insufficient evidence, blocks": "INSUFF."}.get(
                    verdict_word(g), verdict_word(g))
                print(f"{stage.name:<11} {g['name']:<34} {word:<7} {value:>12}  {g['comparison']} {g['threshold']}")
                shown = [] if g["passed"] else offending_examples(g)
                if shown:
                    print(f"{'':<11}   e.g. {'; '.join(shown)}")
        elif stage.asset in steps:
            stopped = stopped or stage.asset
            print(f"{stage.name:<11} ({stage.asset} {steps[stage.asset]})")
        elif stage.gates:
            why = f"skipped: {stopped} did not pass in this run" if stopped else "not run in this run"
            print(f"{stage.name:<11} ({stage.asset} {why})")
    _deliverables(run)
    print("MLflow UI: mlflow ui --backend-store-uri sqlite:///mlflow.db | "
          f"Dagster UI: DAGSTER_HOME={dagster_home} dagster dev")


def _deliverables(run) -> None:
    settings = Settings.from_env()
    model = run.stage(TRAINING.folder, create=False)
    if model.config.is_file():
        cfg = read_json(model.config)
        print(f"\nmodel: {model.dir} (state_dict sha256 {cfg['state_dict_sha256'][:16]}...)")
    card = run.stage(GOVERNANCE.folder, create=False).card
    if card.is_file():
        print(f"model card: {card}")
    promo = run.stage(PROMOTION.folder, create=False).promotion
    if promo.is_file():
        p = read_json(promo)
        print(f"package: {run.package_tarball} (sha256 {p['package_sha256'][:16]}...)\n"
              f"registered: {p['model']} version {p['version']} as @{p['alias']} | "
              f"verify: z4 verify {run.package_tarball} --key {settings.signing_pubkey_path}")
