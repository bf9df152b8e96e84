"""`z4 image build | verify`: the training image, built offline, described, scanned and signed by digest."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from z4_assets.core.errors import Z4Error
from z4_assets.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MODE_ENV = "Z4_LANE_MODE"


def cmd_build(args) -> int:
    from z4_assets.image import build_image

    settings = Settings.from_env()
    if not (ROOT / "Dockerfile").is_file() or not (ROOT / ".git").exists():
        raise Z4Error("z4 image build runs from the project's git checkout (Dockerfile and .git beside z4_assets)")
    mode = args.mode or os.environ.get(MODE_ENV, "development")
    db = Path(args.vuln_db or settings.vuln_db) if (args.vuln_db or settings.vuln_db) else None
    built = build_image(ROOT, Path(settings.image_evidence), Path(args.work_dir), image_signer(settings), mode, db,
                        force=args.force)
    scan = built.scan
    loud = "!!! " if scan.status == "WARN" else ""
    print(f"{loud}image scan: {scan.status}: {scan.summary}")
    for line in scan.details[:20]:
        print(f"  {line}")
    if scan.blocks:
        print(f"z4: image build: the image scan FAILED; the image is not signed and will not be run: "
              f"{built.ref}", file=sys.stderr)
        return 1
    print(f"{'reused' if built.reused else 'built'} in {built.seconds:.0f} s; evidence in {built.evidence_dir}/")
    print(built.ref)
    return 0


def image_signer(settings: Settings):
    """What signs the image's statement: in pkcs11 mode the key inside the token Z4_PKCS11_URI names
    (PIN from Z4_PKCS11_PIN_FILE or Z4_PKCS11_PIN), checked before anything is built; else the PEM
    key at Z4_SIGNING_KEY (ec_key and certificate modes: the certificate's key)."""
    if settings.signing_mode != "pkcs11":
        return settings.signing_key
    from z4_assets.cli.release import _pkcs11_pin
    from z4_assets.core.packaging import TokenSigner

    if not settings.pkcs11_uri:
        raise Z4Error("Z4_SIGNING_MODE=pkcs11 needs Z4_PKCS11_URI, the token key that signs the image's statement")
    signer = TokenSigner(settings.pkcs11_uri, _pkcs11_pin(settings))
    signer.sign(b"z4 image build: token check")  # PIN, token and key work: fail before a build, not after
    return signer


def cmd_verify(args) -> int:
    from z4_assets.image import trusted_image

    settings = Settings.from_env()
    ref = args.ref or settings.image
    digest = trusted_image(ref, Path(settings.image_evidence), settings.signing_pubkey_path)
    print(f"VERIFIED: {ref} is {digest}, named by the signed statement in {settings.image_evidence}/")
    return 0


def cmd_deploy(args) -> int:
    from z4_assets.image._deploy import MOUNT, write_deploy

    settings = Settings.from_env()
    digest, files = write_deploy(ROOT, Path(settings.image_evidence), Path(settings.signing_pubkey_path),
                                 Path(args.out), args.repository)
    print(f"deploy files for the signed image {digest} (statement verified):")
    for f in files:
        print(f"  {f}")
    print(f"apply the ConfigMap (mounted at {MOUNT} by every factory pod), then: "
          f"helm upgrade --install dagster dagster/dagster -n z4 -f {files[0]}")
    return 0


def add_parsers(sub) -> None:
    image = sub.add_parser("image", help="the training image: build (offline, signed) and verify").add_subparsers(
        dest="image_command", required=True)
    build = image.add_parser("build", help="build the training image from Debian's packages and the hashed lock, "
                                           "write its SBOM, scan and signed statement, print its digest")
    build.add_argument("--mode", choices=("development", "release"), default="",
                       help=f"release: no vulnerability database blocks (default: ${MODE_ENV} or development)")
    build.add_argument("--vuln-db", default="", help="OSV database (zip, folder or JSON) the scan reads (Z4_VULN_DB)")
    build.add_argument("--work-dir", default="build/image-work", help="wheels and the root filesystem tarball")
    build.add_argument("--force", action="store_true", help="rebuild even when the inputs are unchanged")
    build.set_defaults(func=cmd_build)
    deploy = image.add_parser("deploy", help="the chart's values with the signed image's digest, and the ConfigMap "
                                             "holding its signed statement for the run launcher")
    deploy.add_argument("--out", default="build/image/deploy", help="where values.yaml and the ConfigMap go")
    deploy.add_argument("--repository", default="",
                        help="the registry repository the image is pushed to (default: the chart's)")
    deploy.set_defaults(func=cmd_deploy)
    verify = image.add_parser("verify", help="check an image's signed statement names the digest its tag points to")
    verify.add_argument("ref", nargs="?", default="", help="image reference (default: Z4_IMAGE)")
    verify.set_defaults(func=cmd_verify)
