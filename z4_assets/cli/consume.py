"""`z4 load NAME@ALIAS`: what serving and Z5 run before they use a registered model."""

from __future__ import annotations

import json

from z4_assets.core.settings import Settings


def cmd_load(args) -> int:
    from z4_assets.core.promotion import load_verified

    settings = Settings.from_env()
    loaded = load_verified(args.model, args.key or settings.signing_pubkey_path,
                           settings.mlflow_tracking_uri or None, z3_public_key=args.z3_key or settings.z3_pubkey or None)
    if args.json:
        print(json.dumps({"model": loaded.name, "alias": loaded.alias, "version": loaded.version,
                          "checks": loaded.checks, "metadata": loaded.facts}, indent=2))
    else:
        for line in loaded.checks:
            print(f"ok   {line}")
        print(f"LOADED: {loaded.name}@{loaded.alias} = version {loaded.version} "
              f"(run {loaded.facts.get('mlflow_run_id')}, snapshot {loaded.facts.get('dataset')}, "
              f"weights {str(loaded.facts.get('state_dict_sha256'))[:16]})")
    return 0


def add_parsers(sub) -> None:
    load = sub.add_parser("load", help="fetch a registered model (NAME@ALIAS), verify its package offline and "
                                       "check the registry's tags against it; refuse any mismatch")
    load.add_argument("model", help="registered model and alias, e.g. z4-taiwan_credit_default@candidate")
    load.add_argument("--key", default="", help="the factory's public key (default: $Z4_SIGNING_PUBKEY or "
                                                 "the local key's .pub.pem)")
    load.add_argument("--z3-key", default="", help="the Z3 public key: also check the snapshot's signature "
                                                    "(default: $Z4_Z3_PUBKEY)")
    load.add_argument("--json", action="store_true", help="print what was checked as JSON")
    load.set_defaults(func=cmd_load)
