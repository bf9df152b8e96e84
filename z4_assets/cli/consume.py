"""`z4 load NAME@ALIAS`: what serving and Z5 run before they use a registered model."""

from __future__ import annotations

import json

from z4_assets.core.settings import Settings


def cmd_load(args) -> int:
    from z4_assets.core.promotion import load_verified

    from z4_assets.cli.audit import emit
    from z4_assets.core.errors import Z4Error

    settings = Settings.from_env()
    try:
        loaded = load_verified(args.model, args.key or settings.signing_pubkey_path,
                               settings.mlflow_tracking_uri or None,
                               z3_public_key=args.z3_key or settings.z3_pubkey or None)
    except Z4Error as e:
        emit("package.loaded", {"model": args.model, "loaded": False, "reason": str(e).splitlines()[0][:300]})
        raise
    emit("package.loaded", {"model": args.model, "loaded": True, "version": str(loaded.version),
                            "mlflow_run_id": loaded.facts.get("mlflow_run_id"),
                            "state_dict_sha256": loaded.facts.get("state_dict_sha256")},
         dataset=str(loaded.facts.get("dataset") or ""), dagster_run_id=str(loaded.facts.get("dagster_run_id") or ""))
    if args.json:
        print(json.dumps({"model": loaded.name, "alias": loaded.alias, "version": loaded.version,
                          "checks": loaded.checks, "metadata": loaded.facts}, indent=2))
    else:
        for line in loaded.checks:
            print(f"ok   {line}")
        print(f"LOADED: {loaded.name}@{loaded.alias} = version {loaded.version} "
              f"(run {loaded.facts.get('mlflow_run_id')}, snapshot {loaded.facts.get('dataset')}, "
              f"model digest {str(loaded.facts.get('state_dict_sha256'))[:16]})")
    return 0


def cmd_score(args) -> int:
    """Score a CSV with NAME@ALIAS after `z4 load`'s verification; one score per input row, in order."""
    from pathlib import Path

    import pandas as pd

    from z4_assets.core.errors import Z4Error
    from z4_assets.core.files import atomic_write_text
    from z4_assets.core.promotion import load_verified
    from z4_assets.core.serving import score_frame

    settings = Settings.from_env()
    src = Path(args.input)
    if not src.is_file():
        raise Z4Error("no such input file", src)
    loaded = load_verified(args.model, args.key or settings.signing_pubkey_path,
                           settings.mlflow_tracking_uri or None, z3_public_key=settings.z3_pubkey or None)
    try:
        df = pd.read_csv(src)
    except (ValueError, UnicodeDecodeError) as e:
        raise Z4Error(f"cannot read the input as CSV: {str(e).splitlines()[0][:160]}", src) from None
    scores = score_frame(loaded.model, loaded.feature_spec, df)
    if args.id_column and args.id_column in df.columns:
        scores.insert(0, args.id_column, df[args.id_column].to_numpy())
    text = scores.to_csv(index=False)
    if args.out:
        atomic_write_text(Path(args.out), text)
        print(f"SCORED: {len(scores)} rows of {src.name} with {loaded.name}@{loaded.alias} = version "
              f"{loaded.version} ({loaded.config.get('family', 'mlp')}, {loaded.config.get('artifact')}) -> {args.out}")
    else:
        print(text, end="")
    return 0


def add_parsers(sub) -> None:
    score = sub.add_parser("score", help="score a CSV in batch with a registered model (NAME@ALIAS), after "
                                         "the same verification as `z4 load`")
    score.add_argument("model", help="registered model and alias, e.g. z4-taiwan_credit_default@candidate")
    score.add_argument("input", help="CSV with the contract's feature columns")
    score.add_argument("--out", default="", help="write the scores here (atomically) instead of stdout")
    score.add_argument("--id-column", default="ID", help="copy this input column beside the score (if present)")
    score.add_argument("--key", default="", help="the factory's public key (default: $Z4_SIGNING_PUBKEY)")
    score.set_defaults(func=cmd_score)
    load = sub.add_parser("load", help="fetch a registered model (NAME@ALIAS), verify its package offline and "
                                       "check the registry's tags against it; refuse any mismatch")
    load.add_argument("model", help="registered model and alias, e.g. z4-taiwan_credit_default@candidate")
    load.add_argument("--key", default="", help="the factory's public key (default: $Z4_SIGNING_PUBKEY or "
                                                 "the local key's .pub.pem)")
    load.add_argument("--z3-key", default="", help="the Z3 public key: also check the snapshot's signature "
                                                    "(default: $Z4_Z3_PUBKEY)")
    load.add_argument("--json", action="store_true", help="print what was checked as JSON")
    load.set_defaults(func=cmd_load)
