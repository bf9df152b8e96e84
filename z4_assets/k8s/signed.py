"""Kubernetes runs only the training image the factory signed: a digest its signed statement names.

The statement (build/image/statement.sigstore.json from `z4 image build`, mounted into the
launcher's pod from a ConfigMap at $Z4_IMAGE_EVIDENCE) is verified with the factory's public key
($Z4_SIGNING_PUBKEY) at every launch; a pinned digest it does not name is refused.
"""

from __future__ import annotations

from pathlib import Path

from z4_assets.core.errors import Z4Error
from z4_assets.core.packaging import IMAGE_EVIDENCE, named_digests, verify_image_statement
from z4_assets.core.settings import Settings


def require_signed_digest(image: str, where: str) -> str:
    """IMAGE (already pinned by digest) unchanged if the signed image statement names its digest."""
    settings = Settings.from_env()
    digest = image.rsplit("@", 1)[-1]
    try:
        stmt = verify_image_statement(Path(settings.image_evidence) / IMAGE_EVIDENCE["bundle"],
                                      settings.signing_pubkey_path)
    except Z4Error as e:
        raise Z4Error(f"image {image!r} is refused: no verified image statement ({e})", where) from None
    if digest not in named_digests(stmt):
        raise Z4Error(f"image {image!r} is refused: its digest is not the one the factory's signed image "
                      "statement names (build and sign it with `z4 image build`)", where)
    return image
