"""`z4 snapshot add | list | tags | retire`: register Z3 snapshots, name the one a factory run trains, retire one."""

from __future__ import annotations

import json
from pathlib import Path

from z4_assets.core.settings import Settings


def cmd_snapshot_add(args) -> int:
    import os

    from z4_assets.core.z3 import add_snapshot
    from z4_assets.core.z3_signature import SIGNATURE_FILE

    settings = Settings.from_env()
    key = args.z3_key or settings.z3_signing_key
    if key and key.startswith("pkcs11:"):  # the Z3 key inside the registrar's token (PIN: Z4_PKCS11_PIN[_FILE])
        from z4_assets.cli.release import _pkcs11_pin
        from z4_assets.core.packaging import TokenSigner

        signer = TokenSigner(key, _pkcs11_pin(settings))
    else:
        signer = os.path.expanduser(key) if key else None
    ref, created = add_snapshot(settings.z3_root, args.dataset_id, args.contract, args.data,
                                dataset_config=args.dataset_config, signing_key=signer,
                                z1_correlation_id=args.z1_correlation_id)
    verb = "registered" if created else "already registered (same data and contract)"
    if (Path(ref.path) / SIGNATURE_FILE).is_file():
        signature = SIGNATURE_FILE
    elif key:  # the same content was registered before, unsigned: a snapshot is never rewritten
        signature = "none (this content was registered earlier without a Z3 signature; it is not re-signed)"
    else:
        signature = ("none (no Z3 key: set Z4_Z3_SIGNING_KEY or --z3-key; a factory that requires "
                     "signatures will refuse it)")
    from z4_assets.core.z3_retire import retired_snapshots

    record = retired_snapshots(settings.z3_root, ref.dataset_id).get(ref.label)
    if record:
        verb += f"; RETIRED at {record.get('retired_at')} ({record.get('reason')}): `z4 run` will not pick it"
    from z4_assets.cli.audit import emit

    emit("snapshot.registered", {"created": created, "rows": ref.manifest["row_count"],
                                 "data_sha256": ref.manifest["hash"], "contract_sha256": ref.manifest["contract_hash"],
                                 "z3_signed": (Path(ref.path) / SIGNATURE_FILE).is_file()},
         dataset=ref.label, z1_correlation_id=str(ref.manifest.get("z1_correlation_id") or ""))
    print(f"{verb}: {ref.label}\n  path: {ref.path}\n  sha256: {ref.manifest['hash']}\n"
          f"  rows: {ref.manifest['row_count']}\n  partition: {ref.label}\n  Z3 signature: {signature}")
    return 0


def cmd_snapshot_list(args) -> int:
    from z4_assets.core.z3 import list_snapshots

    root = Settings.from_env().z3_root
    from z4_assets.core.z3_retire import retired_snapshots

    refs = list_snapshots(root, args.dataset_id or None)
    retired = retired_snapshots(root, args.dataset_id or None)
    for r in refs:
        gone = retired.get(r.label)
        note = f"\tRETIRED {gone.get('retired_at')} by {gone.get('retired_by')}: {gone.get('reason')}" if gone else ""
        print(f"{r.label}\t{r.manifest['row_count']} rows\t{r.manifest['hash'][:16]}{note}")
    if not refs:
        print(f"no snapshots under {root}")
    return 0


def choose(dataset_id: str = "", snapshot_id: str = ""):
    """The snapshot a run trains: the one named, else the newest (of the dataset, or of the Z3 root)."""
    from z4_assets.core.z3_sources import choose_snapshot
    from z4_assets.definitions import resources_from

    source = resources_from(Settings.from_env())["z3"].source()
    return choose_snapshot(source.snapshots(dataset_id or None), dataset_id, snapshot_id, source.location,
                           source.retired(dataset_id or None))


def run_tags(ref) -> dict[str, str]:
    """The tags of a factory run of REF, as the sensor gives them: its partition and its snapshot's."""
    from z4_assets.core.snapshot import snapshot_run_tags

    return {"dagster/partition": ref.label, **snapshot_run_tags(ref.dataset_id, ref.snapshot_id, ref.manifest)}


def add_partition(key: str) -> None:
    """Add the snapshot to the instance's partition set (DAGSTER_HOME), so a run may select it."""
    import dagster as dg

    from z4_assets.cli._instance import dagster_home
    from z4_assets.partitions import snapshots

    with dg.DagsterInstance.from_config(dagster_home()) as instance:
        if not instance.has_dynamic_partition(snapshots.name, key):
            instance.add_dynamic_partitions(snapshots.name, [key])


def cmd_snapshot_tags(args) -> int:
    """Print the run tags that select a snapshot (newest unless named) for `dagster job execute --tags`."""
    ref = choose(args.dataset_id, args.snapshot_id)
    add_partition(ref.label)
    print(json.dumps(run_tags(ref), sort_keys=True))
    return 0


def cmd_snapshot_retire(args) -> int:
    """Retire a snapshot: recorded (who, when, why), never deleted; `newest` skips it from now on."""
    import getpass

    from z4_assets.core.z3_retire import retire_snapshot, retirement_path

    root = Settings.from_env().z3_root
    record = retire_snapshot(root, args.dataset_id, args.snapshot_id, args.reason, getpass.getuser())
    print(f"retired: {record['partition']} at {record['retired_at']} by {record['retired_by']}: {record['reason']}\n"
          f"  record: {retirement_path(root, args.dataset_id, args.snapshot_id)}\n"
          f"  the snapshot stays (sha256 {record['data_sha256']}); z4 run, z4 snapshot tags and the sensor skip it")
    return 0


def add_parsers(sub) -> None:
    snap = sub.add_parser("snapshot", help="register, list and select Z3 snapshots").add_subparsers(
        dest="snapshot_command", required=True)
    add = snap.add_parser("add", help="register DATA (.csv or .parquet) as an immutable snapshot")
    add.add_argument("--dataset-id", required=True)
    add.add_argument("--contract", required=True, help="the dataset's contract YAML")
    add.add_argument("--dataset-config", default=None,
                     help="purpose, intended use and out-of-scope uses (YAML), copied into the snapshot "
                          "for the model card")
    add.add_argument("--z3-key", default="", help="the Z3 private key that signs the manifest "
                                                  "(default: $Z4_Z3_SIGNING_KEY; made by `z4 keygen --z3`)")
    add.add_argument("--z1-correlation-id", default="",
                     help="the correlation id Z3 gave this snapshot (from Z1); kept in the manifest, carried by every audit event")
    add.add_argument("data", type=Path)
    add.set_defaults(func=cmd_snapshot_add)
    ls = snap.add_parser("list", help="list registered snapshots (their partition keys), oldest first")
    ls.add_argument("--dataset-id", default="")
    ls.set_defaults(func=cmd_snapshot_list)
    tags = snap.add_parser("tags", help="print the run tags selecting a snapshot (newest unless named) and add "
                                        "its partition to the Dagster instance: "
                                        "dagster job execute ... --tags \"$(z4 snapshot tags)\"")
    tags.add_argument("--dataset-id", default="")
    tags.add_argument("--snapshot-id", default="")
    tags.set_defaults(func=cmd_snapshot_tags)
    retire = snap.add_parser("retire", help="retire a snapshot (recorded, never deleted): the newest-snapshot "
                                            "choice of z4 run, z4 snapshot tags and the sensor skips it")
    retire.add_argument("--dataset-id", required=True)
    retire.add_argument("--snapshot-id", required=True)
    retire.add_argument("--reason", required=True, help="why, for the audit trail")
    retire.set_defaults(func=cmd_snapshot_retire)
