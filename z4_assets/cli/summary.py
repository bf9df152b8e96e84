"""What one factory run decided, stage by stage: every gate it evaluated, and why a stage did not run."""

from __future__ import annotations

from z4_assets.core.files import read_json
from z4_assets.core.gates import verdict_word
from z4_assets.core.settings import Settings
from z4_assets.core.stages import GOVERNANCE, PROMOTION, STAGES, TRAINING
from z4_assets.core.verdict import SUCCEEDED, offending_examples


def print_summary(dagster_home: str, run_id: str) -> None:
    """The gates of RUN_ID as its stages recorded them (gates.json), in stage-table order."""
    from z4_assets.core.run_folder import FactoryRoot

    run = FactoryRoot(Settings.from_env().factory_root).run(run_id)
    import dagster as dg

    from z4_assets.verdict_page import step_ends

    with dg.DagsterInstance.from_config(dagster_home) as instance:
        steps = {k: v for k, v in step_ends(instance, run_id).items() if v != SUCCEEDED}
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
        print(f"\nmodel: {model.dir} ({cfg.get('family', 'mlp')}; model digest sha256 "
              f"{cfg['state_dict_sha256'][:16]}... of its {cfg.get('digest_of', 'state_dict tensors')})")
    card = run.stage(GOVERNANCE.folder, create=False).card
    if card.is_file():
        print(f"model card: {card}")
    promo = run.stage(PROMOTION.folder, create=False).promotion
    if promo.is_file():
        p = read_json(promo)
        print(f"package: {run.package_tarball} (sha256 {p['package_sha256'][:16]}...)\n"
              f"registered: {p['model']} version {p['version']} as @{p['alias']} | "
              f"verify: z4 verify {run.package_tarball} --key {settings.signing_pubkey_path}")
