"""Signing keys that never exist as a file: a key pair made inside a real SoftHSM2 token (PKCS#11),
and a key with an X.509 chain from a throwaway CA. Each mode signs, verifies, and refuses what it must."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from z4_assets.core.errors import Z4Error
from z4_assets.core.packaging import (CertificateRoots, SigningKey, private_key_attributes, public_key_fingerprint,
                                      signing_trace, token_public_key)
from z4_assets.core.packaging._signing import sign_package, verify_signature
from z4_assets_tests.keystores import make_ca, softhsm_tokens, token_uri

PINS = {"z4": "1234", "other": "4321"}  # test tokens only  # pragma: allowlist secret
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tokens(tmp_path_factory):
    """Two tokens, each with a key pair made by `z4 keygen --pkcs11` (the CLI, in its own process)."""
    folder = tmp_path_factory.mktemp("softhsm")
    softhsm_tokens(folder, PINS)
    out = {}
    for token, pin in PINS.items():
        (folder / f"{token}.pin").write_text(pin)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "Z4_PKCS11_URI": token_uri(token),
               "Z4_PKCS11_PIN_FILE": str(folder / f"{token}.pin")}
        proc = subprocess.run([sys.executable, "-m", "z4_assets.cli", "keygen", "--pkcs11", "--out",
                               str(folder / f"{token}.pub.pem")], env=env, capture_output=True, text=True, cwd=folder)
        assert proc.returncode == 0, proc.stderr
        assert pin not in proc.stdout + proc.stderr and "PRIVATE KEY" not in proc.stdout
        out[token] = {"uri": token_uri(token), "pin_file": folder / f"{token}.pin",
                      "pub": folder / f"{token}.pub.pem", "stdout": proc.stdout}
    return out


def _package(folder: Path) -> Path:
    pkg = folder / "pkg"
    (pkg / "model").mkdir(parents=True)
    (pkg / "model" / "weights.bin").write_bytes(os.urandom(4096))
    (pkg / "model_card.md").write_text("# a model\n")
    return pkg


def _pkcs11(tok: dict, **kw) -> SigningKey:
    return SigningKey(mode="pkcs11", pkcs11_uri=tok["uri"], pin_file=str(tok["pin_file"]), **kw)


def test_keygen_in_the_token_writes_only_the_public_key(tokens):
    z4 = tokens["z4"]
    assert z4["pub"].read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert token_public_key(z4["uri"]) == z4["pub"].read_bytes()
    assert public_key_fingerprint(z4["pub"]) in z4["stdout"]
    assert sorted(p.name for p in z4["pub"].parent.iterdir() if p.suffix == ".pem") == ["other.pub.pem", "z4.pub.pem"]


def test_the_private_key_cannot_be_read_out_of_the_token(tokens):
    assert private_key_attributes(tokens["z4"]["uri"], PINS["z4"]) == \
        {"extractable": False, "sensitive": True, "value_readable": False}


def test_keygen_refuses_to_replace_a_key_already_in_the_token(tokens):
    from z4_assets.core.packaging import token_keygen

    with pytest.raises(Z4Error, match="already holds a key labelled 'z4sign'"):
        token_keygen(tokens["z4"]["uri"], PINS["z4"])


def test_sign_in_the_token_and_verify_with_the_exported_public_key(tokens, tmp_path):
    pkg = _package(tmp_path)
    sig = sign_package(pkg, _pkcs11(tokens["z4"]))
    verify_signature(pkg, tokens["z4"]["pub"])
    assert signing_trace(sig) == {"public_key_sha256": public_key_fingerprint(tokens["z4"]["pub"])}
    assert PINS["z4"] not in sig.read_text()


def test_a_package_signed_by_another_tokens_key_is_refused(tokens, tmp_path):
    pkg = _package(tmp_path)
    sign_package(pkg, _pkcs11(tokens["other"]))
    verify_signature(pkg, tokens["other"]["pub"])
    with pytest.raises(Z4Error, match="signature does not verify"):
        verify_signature(pkg, tokens["z4"]["pub"])


def test_a_pin_in_the_configured_uri_is_refused_and_a_wrong_pin_never_echoed(tokens, tmp_path):
    pkg = _package(tmp_path)
    with pytest.raises(Z4Error, match="must not carry the PIN"):
        sign_package(pkg, SigningKey(mode="pkcs11", pkcs11_uri=tokens["z4"]["uri"] + "&pin-value=1234", pin="1234"))
    with pytest.raises(Z4Error, match="no PKCS#11 PIN"):
        sign_package(pkg, SigningKey(mode="pkcs11", pkcs11_uri=tokens["z4"]["uri"]))
    wrong = "99999999-not-the-pin"
    with pytest.raises(Z4Error) as e:
        sign_package(pkg, SigningKey(mode="pkcs11", pkcs11_uri=tokens["z4"]["uri"], pin=wrong))
    assert "cannot sign with this pkcs11 key" in str(e.value) and wrong not in str(e.value)
    assert wrong not in repr(SigningKey(mode="pkcs11", pkcs11_uri=tokens["z4"]["uri"], pin=wrong))


@pytest.fixture(scope="module")
def cas(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ca")
    return {"bank": make_ca(folder / "bank", "Bank"), "other": make_ca(folder / "other", "Other"),
            "expired": make_ca(folder / "expired", "Bank", leaf_expired=True)}


def _cert_key(ca) -> SigningKey:
    return SigningKey(mode="certificate", private_key=str(ca.leaf_key), certificate=str(ca.leaf),
                      chain=(str(ca.intermediate),))


def test_a_chain_from_the_bank_ca_verifies_and_the_trace_names_it(cas, tmp_path):
    pkg = _package(tmp_path)
    sig = sign_package(pkg, _cert_key(cas["bank"]))
    verify_signature(pkg, CertificateRoots((str(cas["bank"].root),)))
    trace = signing_trace(sig)
    assert [c["subject"] for c in trace["certificate_chain"]][:2] == \
        ["CN=Bank model factory,O=Z4 test bank", "CN=Bank signing CA,O=Z4 test bank"]
    assert trace["public_key_sha256"].startswith("sha256:")


def test_a_chain_from_another_ca_is_refused(cas, tmp_path):
    pkg = _package(tmp_path)
    sign_package(pkg, _cert_key(cas["other"]))
    verify_signature(pkg, CertificateRoots((str(cas["other"].root),)))  # it is a valid chain, of another CA
    with pytest.raises(Z4Error, match="signature does not verify"):
        verify_signature(pkg, CertificateRoots((str(cas["bank"].root),)))


def test_an_expired_leaf_is_refused(cas, tmp_path):
    pkg = _package(tmp_path)
    sign_package(pkg, _cert_key(cas["expired"]))
    with pytest.raises(Z4Error, match="is not valid now"):
        verify_signature(pkg, CertificateRoots((str(cas["expired"].root),)))


def test_a_key_signature_is_refused_when_a_certificate_chain_is_required(cas, signing_key, tmp_path):
    pkg = _package(tmp_path)
    sign_package(pkg, signing_key)
    with pytest.raises(Z4Error, match="carries no certificate chain"):
        verify_signature(pkg, CertificateRoots((str(cas["bank"].root),)))


def test_a_z3_manifest_signed_in_the_registrars_token_verifies_and_another_key_is_refused(
        tokens, tmp_path, sample_df):
    """`z4 snapshot add` with Z4_Z3_SIGNING_KEY=pkcs11:... : the Z3 key stays in the registrar's token."""
    from z4_assets.core.packaging import TokenSigner
    from z4_assets.core.z3 import add_snapshot
    from z4_assets.core.z3_signature import SIGNATURE_FILE, verify_manifest
    from z4_assets_tests.conftest import SAMPLE_CONTRACT, SAMPLE_DATASET_CONFIG

    registrar = tokens["other"]
    data = tmp_path / "data.parquet"
    sample_df.head(500).to_parquet(data, index=False)
    signer = TokenSigner(registrar["uri"], PINS["other"])
    assert PINS["other"] not in repr(signer)
    ref, _ = add_snapshot(tmp_path / "z3", "taiwan_credit_default", SAMPLE_CONTRACT, data,
                          dataset_config=SAMPLE_DATASET_CONFIG, signing_key=signer)
    manifest, sig = (Path(ref.path) / "manifest.json").read_bytes(), (Path(ref.path) / SIGNATURE_FILE).read_bytes()
    statement = verify_manifest(manifest, sig, registrar["pub"], ref.dataset_id, ref.snapshot_id)
    assert statement["hash"] == ref.manifest["hash"]
    with pytest.raises(Z4Error, match="Z3 signature does not verify"):
        verify_manifest(manifest, sig, tokens["z4"]["pub"], ref.dataset_id, ref.snapshot_id)


def test_the_training_images_statement_signed_in_the_token_verifies_and_another_key_is_refused(tokens, tmp_path):
    """pkcs11 mode signs the image's statement inside the token too (`z4 image build`: cli/image.py);
    the runners verify it with the exported public key, as they verify an EC-key signature."""
    import json

    from z4_assets.core.packaging import TokenSigner, image_statement, sign_image_statement, verify_image_statement

    stmt = image_statement("localhost/z4-training", "sha256:" + "ab" * 32, {"git_sha": "0" * 40})
    bundle = sign_image_statement(stmt, TokenSigner(tokens["z4"]["uri"], PINS["z4"]))
    path = tmp_path / "statement.sigstore.json"
    path.write_text(json.dumps(bundle))
    assert verify_image_statement(path, tokens["z4"]["pub"]) == stmt
    assert "sha256:" + bundle["verificationMaterial"]["publicKey"]["hint"] == public_key_fingerprint(tokens["z4"]["pub"])
    with pytest.raises(Z4Error, match="does not verify with the factory's public key"):
        verify_image_statement(path, tokens["other"]["pub"])
    with pytest.raises(Z4Error, match="refused \\(wrong PIN\\?\\)"):
        sign_image_statement(stmt, TokenSigner(tokens["z4"]["uri"], "0000"))
