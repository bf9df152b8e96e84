"""`z4 keygen | verify | rebuild | retention | ci-gate`: the keys, the proofs and the lanes around a release."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from z4_assets.core.errors import Z4Error
from z4_assets.core.settings import Settings


def pseudonym_key() -> None:
    """The local pseudonymisation key file, created once (unless the key comes from Z4_PSEUDONYM_KEY)."""
    from z4_assets.core.broker import keygen

    settings = Settings.from_env()
    if settings.pseudonym_key_set:
        return
    path, created = keygen(settings.pseudonym_key_file)
    print(f"pseudonymisation key: {path} ({'created, 0600' if created else 'kept'}; keep it secret "
          "and never rotate it casually: a new key changes every pseudonym)")


def ensure_signing_key() -> None:
    """A local signing key pair for the demo, unless one exists."""
    from z4_assets.core.packaging import keygen

    key = Path(Settings.from_env().signing_key)
    if not key.exists():
        priv, pub = keygen(key)
        print(f"created a local signing key pair for the demo: {priv} (0600), {pub}")


def z3_keygen(out: str) -> int:
    """The Z3 registrar's key pair: never in the folder of the factory's signing key."""
    import os

    from z4_assets.core.packaging import keygen
    from z4_assets.core.settings import DEFAULT_Z3_SIGNING_KEY

    settings = Settings.from_env()
    target = Path(os.path.expanduser(out or settings.z3_signing_key or DEFAULT_Z3_SIGNING_KEY)).absolute()
    factory = Path(settings.signing_key).absolute()
    if target.parent.resolve() == factory.parent.resolve():
        raise Z4Error("refusing to put the Z3 key beside the factory's signing key: whoever holds the "
                      "factory key could then re-sign snapshots; choose another --out", target)
    priv, pub = keygen(target)
    print(f"Z3 private key: {priv} (0600; for whoever registers snapshots: Z4_Z3_SIGNING_KEY={priv})\n"
          f"Z3 public key:  {pub} (for the factory and auditors: Z4_Z3_PUBKEY={pub}; "
          f"z4 verify PACKAGE --z3-key {pub})")
    return 0


def _pkcs11_pin(settings: Settings) -> str:
    """The token PIN from its mounted file, else from Z4_PKCS11_PIN; never printed."""
    import os

    from z4_assets.core.settings import PKCS11_PIN_ENV

    if settings.pkcs11_pin_file:
        try:
            return Path(settings.pkcs11_pin_file).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise Z4Error(f"cannot read the PKCS#11 PIN: {e.strerror}", settings.pkcs11_pin_file) from None
    if pin := os.environ.get(PKCS11_PIN_ENV, ""):
        return pin
    raise Z4Error("no PKCS#11 PIN: set Z4_PKCS11_PIN_FILE (a mounted file) or Z4_PKCS11_PIN")


def pkcs11_keygen(out: str) -> int:
    """A key pair created inside the token Z4_PKCS11_URI names; only the public key is written."""
    from z4_assets.core.packaging import public_key_fingerprint, token_keygen, write_public_key

    settings = Settings.from_env()
    if not settings.pkcs11_uri:
        raise Z4Error("set Z4_PKCS11_URI to the key's PKCS#11 URI (pkcs11:token=...;object=...?module-path=...)")
    target = Path(out or settings.signing_pubkey or ".z4/keys/signing-pkcs11.pub.pem")
    if target.exists():
        raise Z4Error("refusing to overwrite an existing public key file", target)
    pub = write_public_key(token_keygen(settings.pkcs11_uri, _pkcs11_pin(settings)), target)
    print(f"key pair created inside the token ({settings.pkcs11_uri}); the private key cannot leave it\n"
          f"public key:  {pub} ({public_key_fingerprint(pub)}; give it to verifiers: z4 verify PACKAGE --key {pub}; "
          f"set Z4_SIGNING_PUBKEY={pub} and Z4_SIGNING_MODE=pkcs11)")
    return 0


def cmd_keygen(args) -> int:
    from z4_assets.core.packaging import keygen

    if args.z3:
        return z3_keygen(args.out)
    if args.pkcs11:
        return pkcs11_keygen(args.out)
    pseudonym_key()
    priv, pub = keygen(args.out or Settings.from_env().signing_key)
    print(f"private key: {priv} (0600, keep it secret; set Z4_SIGNING_KEY to this path)\n"
          f"public key:  {pub} (give this to verifiers: z4 verify PACKAGE --key {pub})")
    return 0


def cmd_verify(args) -> int:
    from z4_assets.core.packaging import verify_package

    from z4_assets.core.packaging import CertificateRoots

    if sum(bool(x) for x in (args.key, args.identity, args.ca)) != 1:
        raise Z4Error("give one of --key PUB.pem, --ca ROOT.pem (certificate chains), or --identity and --issuer "
                      "(keyless signatures)")
    trusted = CertificateRoots(tuple(args.ca)) if args.ca else args.key
    report = verify_package(args.package, trusted, args.identity, args.issuer,
                            Settings.from_env().package_limits, z3_public_key=args.z3_key or None)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for c in report.checks:
            print(f"{'ok  ' if c['ok'] else 'FAIL'} {c['check']:<10} {c['detail']}")
        print(f"{'VERIFIED' if report.ok else 'REJECTED'}: {args.package} ({report.seconds:.2f} s)")
    if not report.ok:
        print(f"z4: verify: {report.first_problem}", file=sys.stderr)
    from z4_assets.cli.audit import emit, file_digest

    emit("package.verified", {"verified": report.ok, "package_sha256": file_digest(args.package),
                              "checks": len(report.checks), "first_problem": report.first_problem or None,
                              "keyless": bool(args.identity)})
    return 0 if report.ok else 1


def cmd_rebuild(args) -> int:
    from z4_assets.core.training import rebuild_from

    settings = Settings.from_env()
    if not args.on_host and not os.environ.get("Z4_CONTAINER_DIGEST"):
        code = _rebuild_in_image(args, settings)
        if code is not None:
            return code
    result = rebuild_from(args.source, settings, args.allow_code_drift, args.seed,
                          args.key or settings.signing_pubkey_path)
    print("\n".join(result.lines()))
    return 0 if result.identical else 1


def _rebuild_in_image(args, settings) -> int | None:
    """A package trained in the training image retrains in that same image (by digest, verified)."""
    import subprocess  # nosec B404 # podman, fixed argv
    import tempfile

    from z4_assets.cli._instance import dagster_home
    from z4_assets.core.training import locate_package
    from z4_assets.image import rebuild_command

    flags = [*(["--allow-code-drift"] if args.allow_code_drift else []),
             *(["--seed", str(args.seed)] if args.seed is not None else []),
             *(["--key", str(Path(args.key).resolve())] if args.key else [])]
    with tempfile.TemporaryDirectory(prefix="z4-rebuild-") as tmp:
        pkg = locate_package(args.source, Path(settings.factory_root), Path(tmp))
        planned = rebuild_command(settings, pkg, args.source, flags, dagster_home(), Path(tmp) / "secrets")
        if planned is None:
            return None
        argv, env, digest = planned
        print(f"retraining inside the training image {digest} (the digest the package names; verified)", flush=True)
        return subprocess.call(argv, env={**os.environ, "CONTAINERS_CONF": env.get("CONTAINERS_CONF", "")})  # nosec B603 # podman, fixed argv


def cmd_retention_apply(args) -> int:
    from z4_assets.core.cleanup import apply_retention, parse_time, render, retention_policy, write_report
    from z4_assets.core.policy import load_policy

    settings = Settings.from_env()
    try:
        now = parse_time(args.as_of) if args.as_of else datetime.now(timezone.utc)
    except ValueError:
        raise Z4Error(f"--as-of {args.as_of!r} is not an ISO date or time") from None
    policy = load_policy(settings.policy or None, "")
    grace = retention_policy(policy.retention, policy.source).scratch_grace_hours
    root = Path(settings.factory_root)
    report = apply_retention(root, now, dry_run=args.dry_run, scratch_grace_hours=grace)
    print(render(report, write_report(root, report)))
    from z4_assets.cli.audit import emit

    emit("retention.applied", {"as_of": report["as_of"], "dry_run": report["dry_run"],
                               "deleted": len(report["deleted"]), "deleted_bytes": report["deleted_bytes"],
                               "refused": len(report["refused"]), "unclassified_runs": len(report["unclassified_runs"])})
    return 1 if report["refused"] else 0


def cmd_ci_gate(args) -> int:
    from z4_assets.buildlane.runner import default_mode, run_lane

    _, code = run_lane(Path(args.root), args.mode or default_mode(), only=args.only or None,
                       out_dir=Path(args.out) if args.out else None)
    return code


def add_parsers(sub) -> None:
    kg = sub.add_parser("keygen", help="create an EC P-256 signing key pair (private key 0600)")
    kg.add_argument("--out", default="", help="private key path (default: $Z4_SIGNING_KEY or .z4/keys/signing.pem)")
    kg.add_argument("--z3", action="store_true", help="create the Z3 registrar's key pair that signs snapshot "
                    "manifests instead (default: ~/.config/z4-z3/z3-signing.pem, never beside the factory key)")
    kg.add_argument("--pkcs11", action="store_true", help="create the key pair inside the PKCS#11 token "
                    "Z4_PKCS11_URI names (PIN: Z4_PKCS11_PIN_FILE or Z4_PKCS11_PIN) and write only the public "
                    "key (--out, default $Z4_SIGNING_PUBKEY or .z4/keys/signing-pkcs11.pub.pem)")
    kg.set_defaults(func=cmd_keygen)
    ver = sub.add_parser("verify", help="verify a signed package offline")
    ver.add_argument("package", help="package folder or package.tar.gz")
    ver.add_argument("--key", default="", help="public key PEM (EC key signatures)")
    ver.add_argument("--ca", action="append", default=[], help="a CA root certificate PEM the signing "
                     "certificate's chain must lead to (certificate mode; repeat for several roots)")
    ver.add_argument("--identity", default="", help="signer identity (keyless Sigstore signatures)")
    ver.add_argument("--issuer", default="", help="OIDC issuer (keyless Sigstore signatures)")
    ver.add_argument("--z3-key", default="", help="the Z3 public key: check that the snapshot manifest the "
                                                  "package carries was signed by the Z3 registrar")
    ver.add_argument("--json", action="store_true", help="print the report as JSON")
    ver.set_defaults(func=cmd_verify)
    rb = sub.add_parser("rebuild", help="re-run training from a run's record and compare weights")
    rb.add_argument("source", help="Dagster run id, package folder or package.tar.gz")
    rb.add_argument("--allow-code-drift", action="store_true", help="rebuild even if the code is at another commit")
    rb.add_argument("--seed", type=int, default=None, help="override the training seed (expect DIFFERENT)")
    rb.add_argument("--key", default="", help="public key to verify the package first (default: the local key)")
    rb.add_argument("--on-host", action="store_true", help="retrain on this host even if the package names "
                                                            "the training image it was trained in")
    rb.set_defaults(func=cmd_rebuild)
    ret = sub.add_parser("retention", help="apply the retention policy to past runs").add_subparsers(
        dest="retention_command", required=True)
    apply = ret.add_parser("apply", help="delete artifacts whose retention expired; print and record "
                                         "what was deleted and kept (never a signed or promoted run's evidence)")
    apply.add_argument("--dry-run", action="store_true", help="report what would be deleted, delete nothing")
    apply.add_argument("--as-of", default="", help="judge expiry as of this ISO time (default: now)")
    apply.set_defaults(func=cmd_retention_apply)
    gate = sub.add_parser("ci-gate", help="run the build and security lane (lock, lint, SAST, secrets, "
                          "image, SCA, SBOM) and print a PASS/FAIL table")
    gate.add_argument("--mode", choices=["development", "release"], default="",
                      help="release blocks when dependencies could not be audited; development warns "
                           "(default: $Z4_LANE_MODE, else development)")
    gate.add_argument("--only", action="append", metavar="GATE",
                      help="run only this gate (repeatable): lock ruff imports bandit secrets dockerfile pip-audit sbom")
    gate.add_argument("--root", default=".", help="the project checkout (default: the current directory)")
    gate.add_argument("--out", default="", help="artifact folder (default: <root>/build/ci-gate)")
    gate.set_defaults(func=cmd_ci_gate)
