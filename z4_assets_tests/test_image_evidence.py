"""The training image's evidence without a container: the scan against an OSV file, the image SBOM
read from a root filesystem, the signed statement (round trip and tampering), the record's digest
check, the egress fact of a host run and the container command line."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from z4_assets.core.errors import Z4Error
from z4_assets.core.packaging import (copy_image_evidence, digest_problem, image_statement, named_digests,
                                      sign_image_statement, verify_image_statement)
from z4_assets.image import _scan, _sbom

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def _components():
    return [{"ecosystem": "PyPI", "name": "PyYAML", "version": "6.0.1", "source": "PyYAML"},
            {"ecosystem": "Debian", "name": "libssl3", "version": "3.0.15-1~deb12u1", "source": "openssl"},
            {"ecosystem": "Debian", "name": "tar", "version": "1.34+dfsg-1.2+deb12u1", "source": "tar"}]


def _osv(vid, eco, name, **affected):
    return {"id": vid, "modified": "2026-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": eco, "name": name},
                                                                         **affected}]}


def test_scan_names_the_vulnerable_package_by_source_and_range(tmp_path):
    db = tmp_path / "osv.json"
    db.write_text(json.dumps([
        _osv("DSA-0000-1", "Debian:12", "openssl",
             ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.16-1~deb12u1"}]}]),
        _osv("DSA-0000-2", "Debian:12", "tar",  # fixed before the installed version: not affected
             ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.34+dfsg-1.2"}]}]),
        _osv("PYSEC-0000-3", "PyPI", "pyyaml", versions=["5.4", "6.0.1"]),
        _osv("PYSEC-0000-4", "PyPI", "pyyaml", ranges=[{"type": "ECOSYSTEM", "events": [
            {"introduced": "0"}, {"fixed": "6.0"}]}]),
    ]))
    result, report = _scan.scan(_components(), db, "development")
    assert result.status == "FAIL" and result.blocks
    assert report["findings"] == ["Debian libssl3==3.0.15-1~deb12u1: DSA-0000-1", "PyPI PyYAML==6.0.1: PYSEC-0000-3"]
    assert "libssl3" in result.summary
    assert report["database"]["records"] == 4


def test_scan_clean_database_passes_and_zip_mirror_is_read(tmp_path):
    import zipfile

    db = tmp_path / "all.zip"
    with zipfile.ZipFile(db, "w") as z:
        z.writestr("PYSEC-1.json", json.dumps(_osv("PYSEC-1", "PyPI", "numpy", versions=["1.0"])))
    result, report = _scan.scan(_components(), db, "release")
    assert result.status == "PASS" and report["findings"] == []


def test_scan_without_database_blocks_release_and_warns_development():
    rel, _ = _scan.scan(_components(), None, "release")
    dev, report = _scan.scan(_components(), None, "development")
    assert rel.status == "FAIL" and "not scanned" in rel.summary
    assert dev.status == "WARN" and "NOT a pass" in dev.summary and report["database"] is None


@pytest.mark.parametrize("content", ["not json", "[]", json.dumps([{"id": "X"}])])
def test_a_broken_database_is_an_error_never_a_clean_scan(tmp_path, content):
    db = tmp_path / "db.json"
    db.write_text(content)
    with pytest.raises(Z4Error, match="vulnerability database"):
        _scan.scan(_components(), db, "development")


def _rootfs(tmp_path) -> Path:
    root = tmp_path / "rootfs"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / _sbom.DPKG_STATUS).write_text(
        "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl (3.0.15-1~deb12u1)\n"
        "Version: 3.0.15-1~deb12u1\nDescription: x\n continued\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n"
        "Package: python3.11\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.11.2-6\n")
    meta = root / _sbom.SITE_PACKAGES / "PyYAML-6.0.1.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0.1\n\nbody")
    return root


def test_image_sbom_lists_debian_and_python_packages_from_the_image_files(tmp_path):
    doc = _sbom.image_sbom(_rootfs(tmp_path), "localhost/z4-train", DIGEST)
    comps = _sbom.components(doc)
    assert {(c["ecosystem"], c["name"], c["version"]) for c in comps} == {
        ("Debian", "libssl3", "3.0.15-1~deb12u1"), ("Debian", "python3.11", "3.11.2-6"), ("PyPI", "PyYAML", "6.0.1")}
    assert next(c for c in comps if c["name"] == "libssl3")["source"] == "openssl"
    assert doc["metadata"]["component"]["version"] == DIGEST
    assert doc["metadata"]["component"]["type"] == "container"


def test_image_sbom_refuses_a_tree_that_is_not_the_image(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(Z4Error, match="dpkg status"):
        _sbom.image_sbom(tmp_path / "empty", "x", DIGEST)


def _signed(tmp_path, signing_key, digest=DIGEST) -> Path:
    stmt = image_statement("localhost/z4-train", digest, {"git_sha": "0" * 40})
    bundle = tmp_path / "statement.sigstore.json"
    bundle.write_text(json.dumps(sign_image_statement(stmt, signing_key)))
    return bundle


def test_statement_round_trip_names_the_digest(tmp_path, signing_key):
    bundle = _signed(tmp_path, signing_key)
    doc = json.loads(bundle.read_text())
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert doc["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"
    stmt = verify_image_statement(bundle, signing_key.with_name(signing_key.stem + ".pub.pem"))
    assert named_digests(stmt) == {DIGEST}


def test_statement_tampered_payload_or_other_key_is_refused(tmp_path, signing_key):
    from z4_assets.core.packaging import keygen

    pub = signing_key.with_name(signing_key.stem + ".pub.pem")
    bundle = _signed(tmp_path, signing_key)
    doc = json.loads(bundle.read_text())
    stmt = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    stmt["subject"][0]["digest"]["sha256"] = OTHER.removeprefix("sha256:")  # point the statement elsewhere
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    bundle.write_text(json.dumps(doc))
    with pytest.raises(Z4Error, match="does not verify"):
        verify_image_statement(bundle, pub)
    _, other_pub = keygen(tmp_path / "other.pem")
    with pytest.raises(Z4Error, match="does not verify"):
        verify_image_statement(_signed(tmp_path, signing_key), other_pub)
    with pytest.raises(Z4Error, match="unsigned image"):
        verify_image_statement(tmp_path / "absent.json", pub)


def _package_with_image(tmp_path, signing_key, digest=DIGEST) -> Path:
    evidence = tmp_path / "build-image"
    evidence.mkdir()
    (evidence / "image.json").write_text(json.dumps({"digest": digest}))
    _signed(evidence, signing_key, digest)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    return evidence, pkg


def test_record_digest_check_accepts_none_and_a_signed_digest_only(tmp_path, signing_key):
    pub = signing_key.with_name(signing_key.stem + ".pub.pem")
    evidence, pkg = _package_with_image(tmp_path, signing_key)
    assert digest_problem("none: not running in the z4 training image", pkg, pub) is None
    # a made-up digest on a host run: no image evidence is copied, the check fails
    assert copy_image_evidence(evidence, OTHER, pkg) is None
    assert "named by no signed image statement" in digest_problem(OTHER, pkg, pub)
    assert copy_image_evidence(evidence, DIGEST, pkg) == DIGEST
    assert digest_problem(DIGEST, pkg, pub) is None
    assert "not the digest" in digest_problem(OTHER, pkg, pub)


def test_host_run_records_none_and_no_egress_claim(monkeypatch):
    from z4_assets.core.provenance import build_facts

    monkeypatch.delenv("Z4_CONTAINER_DIGEST", raising=False)
    facts = build_facts("deny-all")
    assert facts["container_digest"].startswith("none")
    assert facts["egress_policy"].startswith("none: host run") and "deny-all" in facts["egress_policy"]


def test_container_command_line_is_isolated_and_holds_no_secret_value(tmp_path, monkeypatch):
    from z4_assets.image._run import container_argv

    monkeypatch.setenv("Z4_PSEUDONYM_KEY", "s3cret-value")
    argv = container_argv("localhost/z4-train@" + DIGEST, DIGEST, ["python", "-m", "x"],
                          [(tmp_path / "factory", "rw"), (tmp_path / "z3", "ro")], tmp_path, "0" * 40)
    line = " ".join(argv)
    assert "--network=none" in argv and "--read-only" in argv and "--cap-drop=all" in argv
    assert f"{tmp_path / 'z3'}:{tmp_path / 'z3'}:ro" in argv
    assert "Z4_PSEUDONYM_KEY" in argv and "s3cret-value" not in line
    assert argv[argv.index("localhost/z4-train@" + DIGEST) + 1:] == ["python", "-m", "x"]


@pytest.mark.parametrize("filters", [True, False])  # False: the image's Python 3.11.2 has no tarfile filters
def test_package_extraction_refuses_members_outside_the_package(tmp_path, monkeypatch, filters):
    import io
    import tarfile

    from z4_assets.core.packaging import extract_tarball

    if not filters:
        monkeypatch.delattr(tarfile, "data_filter")
    for name in ("package/../../escape.txt", "/abs/escape.txt"):
        archive = tmp_path / "evil.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"bad"))
        with pytest.raises(Z4Error, match=r"not a normalized name|absolute or unprintable name"):
            extract_tarball(archive, tmp_path / "out")
        assert not (tmp_path / "escape.txt").exists()
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as tar:
        info = tarfile.TarInfo("package/a.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
    assert (extract_tarball(good, tmp_path / "ok") / "a.txt").read_text() == "ok"


def test_verify_checks_the_provenance_image_against_the_signed_statement(tmp_path):
    """`z4 verify`'s image check: the digest the provenance names must be the one image/'s statement names."""
    import shutil

    from z4_assets.core.files import atomic_write_json
    from z4_assets.core.packaging import IMAGE_EVIDENCE, PACKAGE_IMAGE_DIR
    from z4_assets.core.packaging._verify import _image
    from z4_assets_tests.k8s_api import DIGEST_IMAGE, signed_image_env

    env = signed_image_env(tmp_path / "keys")
    pkg = tmp_path / "package"
    (pkg / PACKAGE_IMAGE_DIR).mkdir(parents=True)
    shutil.copyfile(Path(env["Z4_IMAGE_EVIDENCE"]) / IMAGE_EVIDENCE["bundle"],
                    pkg / PACKAGE_IMAGE_DIR / IMAGE_EVIDENCE["bundle"])

    def provenance(digest_hex: str | None) -> None:
        deps = [{"uri": "sbom/sbom.json", "digest": {"sha256": "00" * 32}}]
        if digest_hex:
            deps.append({"uri": "oci://localhost/z4-train", "digest": {"sha256": digest_hex}})
        atomic_write_json(pkg / "provenance" / "provenance.intoto.json",
                          {"predicate": {"buildDefinition": {"resolvedDependencies": deps}}})

    provenance(DIGEST_IMAGE.split(":")[-1])
    assert "the image the signed statement in image/ names" in _image(pkg, env["Z4_SIGNING_PUBKEY"])
    provenance("cd" * 32)
    with pytest.raises(Z4Error, match="not the digest the signed image statement names"):
        _image(pkg, env["Z4_SIGNING_PUBKEY"])
    provenance(None)
    assert "container_digest none" in _image(pkg, env["Z4_SIGNING_PUBKEY"])
