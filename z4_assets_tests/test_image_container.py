"""The training image for real: built with `z4 image build` (mmdebstrap + podman; reused when its
inputs are unchanged), verified, refused when unsigned or re-tagged, no egress from inside, the
sample factory run inside it and its package verified offline.

The first build on a fresh machine takes about ten minutes (the root filesystem: Debian and the
lock); it is cached in build/image-work by the digest of its inputs, never skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from z4_assets.image import REPO, _podman

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "z4_assets.cli"]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("Z4_", "MLFLOW_", "DAGSTER_"))}
    env["PYTHONPATH"] = str(ROOT)
    return {**env, **extra}


@pytest.fixture(scope="module")
def image(tmp_path_factory, signing_key):
    """`z4 image build`, signed with the session's key; its evidence in a temp folder (after the suite's
    background build of the same inputs, if one was started: image_prebuild.py)."""
    from z4_assets_tests.image_prebuild import installed_before_any_build, installed_project, wait

    print(wait())
    installed_before = installed_before_any_build()
    evidence = tmp_path_factory.mktemp("image") / "evidence"
    env = _env(Z4_SIGNING_KEY=str(signing_key), Z4_IMAGE_EVIDENCE=str(evidence))
    proc = subprocess.run([*CLI, "image", "build", "--work-dir", str(ROOT / "build" / "image-work")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ref = proc.stdout.strip().splitlines()[-1]
    assert ref.startswith(f"{REPO}@sha256:")
    return {"ref": ref, "digest": ref.split("@")[1], "evidence": evidence, "env": env,
            "installed": (installed_before, installed_project()),
            "pub": str(signing_key.with_name(signing_key.stem + ".pub.pem")), "stdout": proc.stdout}


def test_the_build_leaves_the_running_environment_alone(image):
    """The project layer is a pip install into a staging root: it once uninstalled the editable install
    of whoever ran the build (and CI's), which broke every later subprocess importing z4_assets."""
    before, after = image["installed"]
    assert after == before


def test_build_is_non_root_and_its_evidence_names_the_digest(image):
    facts = json.loads((image["evidence"] / "image.json").read_text())
    assert facts["digest"] == image["digest"] and facts["user"] == "10001:10001"
    stmt = json.loads((image["evidence"] / "statement.intoto.json").read_text())
    assert stmt["subject"][0]["digest"]["sha256"] == image["digest"].removeprefix("sha256:")
    from z4_assets.image._rootfs import SOURCES

    assert stmt["predicate"]["debian_sources"] == list(SOURCES) == facts["debian_sources"]
    assert any(" bookworm-security " in line for line in SOURCES)  # the image carries Debian's security fixes
    sbom = json.loads((image["evidence"] / "sbom.cdx.json").read_text())
    purls = [c["purl"] for c in sbom["components"]]
    assert any(p.startswith("pkg:deb/debian/python3.11@") for p in purls)
    assert "pkg:pypi/torch@2.13.0+cpu" in purls and any(p.startswith("pkg:pypi/z4-model-factory@") for p in purls)
    assert not any(p.startswith("pkg:pypi/pip@") for p in purls)  # pip is removed from the image
    # development mode without a database: a loud warning, recorded as not scanned, never a pass
    assert "!!! image scan: WARN" in image["stdout"]
    assert json.loads((image["evidence"] / "scan.json").read_text())["status"] == "WARN"


def test_verify_accepts_the_signed_image(image):
    env = {**image["env"], "Z4_SIGNING_PUBKEY": image["pub"]}
    proc = subprocess.run([*CLI, "image", "verify", image["ref"]], env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and image["digest"] in proc.stdout, proc.stderr


def test_unsigned_image_is_refused(image, tmp_path):
    unsigned = tmp_path / "unsigned"
    shutil.copytree(image["evidence"], unsigned)
    (unsigned / "statement.sigstore.json").unlink()
    env = {**image["env"], "Z4_SIGNING_PUBKEY": image["pub"], "Z4_IMAGE_EVIDENCE": str(unsigned)}
    proc = subprocess.run([*CLI, "image", "verify", image["ref"]], env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "unsigned image" in proc.stderr


@pytest.fixture(scope="module")
def other_image(tmp_path_factory):
    """A tiny image that is not the training image (FROM scratch, one file)."""
    ctx = tmp_path_factory.mktemp("other")
    (ctx / "hello.txt").write_text("not the factory\n")
    (ctx / "Containerfile").write_text("FROM scratch\nCOPY hello.txt /\n")
    tag = f"{REPO}:retag-attack"
    _podman.build(ctx, ctx / "Containerfile", tag, 0)
    yield tag
    _podman.remove(tag)


def test_retagged_image_is_refused(image, other_image):
    env = {**image["env"], "Z4_SIGNING_PUBKEY": image["pub"]}
    proc = subprocess.run([*CLI, "image", "verify", other_image], env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "does not name" in proc.stderr and "re-tagged" in proc.stderr
    # and the runner refuses it too: Z4_IMAGE pointing at the re-tagged image, nothing starts
    proc = subprocess.run([*CLI, "run"], env={**env, "Z4_EXECUTION": "container", "Z4_IMAGE": other_image,
                                              "DAGSTER_HOME": str(image["evidence"].parent)},
                          capture_output=True, text=True, cwd=image["evidence"].parent)
    assert proc.returncode == 2 and "re-tagged" in proc.stderr


def _in_image(image, code: str, **env) -> subprocess.CompletedProcess:
    from z4_assets.image._run import container_argv

    argv = container_argv(image["ref"], image["digest"], ["python", "-c", code], [], Path("/tmp"), "0" * 40,
                          env={})
    extra = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    argv = [*argv[:-4], *extra, *argv[-4:]]
    return _podman.podman(*argv, what="podman run", check=False, timeout=300)


@pytest.fixture
def host_listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    yield srv.getsockname()[1]
    srv.close()


def test_no_socket_leaves_the_container(image, host_listener):
    socket.create_connection(("127.0.0.1", host_listener), timeout=3).close()  # the host can connect
    code = ("import socket,sys\nfor h,p in (('127.0.0.1',%d),('1.1.1.1',443)):\n"
            "  try:\n    socket.create_connection((h,p),timeout=3); print('OPEN',h); sys.exit(3)\n"
            "  except OSError as e: print('blocked',h,type(e).__name__)\n" % host_listener)
    out = _in_image(image, code)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "blocked 127.0.0.1 ConnectionRefusedError" in out.stdout and "blocked 1.1.1.1" in out.stdout
    observed = _in_image(image, "from z4_assets.core.egress import observed; print(observed('x'))",
                         Z4_CONTAINER_DIGEST=image["digest"])
    assert observed.stdout.startswith("deny-all (observed in the container: interfaces ['lo']"), observed.stderr


def test_the_image_runs_as_non_root_on_a_read_only_root(image):
    out = _in_image(image, "import os; print(os.getuid()); open('/opt/z4/x','w')")
    assert out.stdout.splitlines()[0] == "10001"
    assert "Read-only file system" in out.stderr
    sources = _in_image(image, "print(open('/etc/apt/sources.list').read())")
    assert "debian-security bookworm-security main" in sources.stdout, sources.stdout + sources.stderr


@pytest.fixture(scope="module")
def container_run(image, tmp_path_factory):
    """`Z4_EXECUTION=container z4 demo` in a fresh project folder, timed beside nothing else."""
    import time

    project = tmp_path_factory.mktemp("container_project")
    shutil.copy(ROOT / "dagster.yaml", project / "dagster.yaml")
    env = {**image["env"], "Z4_SIGNING_PUBKEY": image["pub"], "Z4_EXECUTION": "container",
           "Z4_IMAGE": image["ref"], "DAGSTER_HOME": str(project),
           "MLFLOW_TRACKING_URI": f"sqlite:///{project}/tracking/mlflow.db"}
    t0 = time.perf_counter()
    proc = subprocess.run([*CLI, "demo"], cwd=project, env=env, capture_output=True, text=True, timeout=1800)
    return {"proc": proc, "project": project, "env": env, "seconds": time.perf_counter() - t0}


def test_sample_factory_runs_in_the_image_and_its_package_verifies(image, container_run, tmp_path):
    proc, project = container_run["proc"], container_run["project"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"in the training image {image['digest']}" in proc.stdout
    tarball = max((project / "data" / "factory" / "runs").glob("*/package.tar.gz"), key=os.path.getmtime)
    ver = subprocess.run([*CLI, "verify", str(tarball), "--key", image["pub"]], env=container_run["env"],
                         capture_output=True, text=True)
    assert ver.returncode == 0 and "VERIFIED" in ver.stdout, ver.stdout + ver.stderr
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        prov = json.load(tar.extractfile("package/provenance/provenance.intoto.json"))
    assert {"package/image/sbom.cdx.json", "package/image/statement.sigstore.json"} <= names
    deps = prov["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert {"sha256": image["digest"].removeprefix("sha256:")} in [d["digest"] for d in deps if d["uri"].startswith("oci:")]
    record = max((project / "data" / "factory" / "runs").glob("*/record/run_record.json"), key=os.path.getmtime)
    tags = json.loads(record.read_text()).get("tags", {})
    assert tags["container_digest"] == image["digest"]
    assert tags["egress_policy"].startswith("deny-all (observed in the container")


def test_rebuild_of_a_container_trained_run_retrains_in_the_same_verified_image(image, container_run):
    project = container_run["project"]
    tarball = max((project / "data" / "factory" / "runs").glob("*/package.tar.gz"), key=os.path.getmtime)
    env = {k: v for k, v in container_run["env"].items() if k != "Z4_EXECUTION"}  # rebuild follows the package
    proc = subprocess.run([*CLI, "rebuild", str(tarball), "--key", image["pub"]], cwd=project, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert f"retraining inside the training image {image['digest']}" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0 and "IDENTICAL" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "package verified" in proc.stdout


def test_a_known_vulnerable_package_fails_the_lane_naming_it_and_the_image_stays_unsigned(image, tmp_path):
    evidence = tmp_path / "evidence"
    env = {**image["env"], "Z4_IMAGE_EVIDENCE": str(evidence)}
    proc = subprocess.run([*CLI, "image", "build", "--work-dir", str(ROOT / "build" / "image-work"),
                           "--vuln-db", str(Path(__file__).with_name("osv_recorded.json"))], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "image scan: FAIL" in proc.stdout and "PyPI PyYAML==6.0.3: Z4-TEST-2026-0001" in proc.stdout
    assert "Z4-TEST-2026-0002" not in proc.stdout  # the Debian record's fixed version is older than bookworm's
    scan = json.loads((evidence / "scan.json").read_text())
    assert scan["status"] == "FAIL" and scan["findings"] == ["PyPI PyYAML==6.0.3: Z4-TEST-2026-0001"]
    assert not (evidence / "statement.sigstore.json").exists()  # never signed, so never run
    verify = subprocess.run([*CLI, "image", "verify", image["ref"]], capture_output=True, text=True,
                            env={**env, "Z4_SIGNING_PUBKEY": image["pub"]})
    assert verify.returncode == 2 and "unsigned image" in verify.stderr


def test_release_mode_without_a_database_blocks(image, tmp_path):
    env = {**image["env"], "Z4_IMAGE_EVIDENCE": str(tmp_path / "evidence")}
    proc = subprocess.run([*CLI, "image", "build", "--mode", "release", "--work-dir",
                           str(ROOT / "build" / "image-work")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=3600)
    assert proc.returncode == 1 and "image scan: FAIL: not scanned" in proc.stdout, proc.stdout + proc.stderr


IMAGE_TOKEN_PIN = "2468"  # test token only  # pragma: allowlist secret


@pytest.fixture(scope="module")
def image_token(tmp_path_factory):
    """A SoftHSM2 token with a key pair made by `z4 keygen --pkcs11`; only subprocesses see it."""
    from z4_assets_tests.keystores import softhsm_tokens, token_uri

    folder = tmp_path_factory.mktemp("image-token")
    conf = softhsm_tokens(folder, {"imagesign": IMAGE_TOKEN_PIN}, export=False)
    (folder / "pin").write_text(IMAGE_TOKEN_PIN)
    env = _env(SOFTHSM2_CONF=str(conf), Z4_PKCS11_URI=token_uri("imagesign"), Z4_PKCS11_PIN_FILE=str(folder / "pin"))
    proc = subprocess.run([*CLI, "keygen", "--pkcs11", "--out", str(folder / "token.pub.pem")], env=env,
                          capture_output=True, text=True, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return {"env": env, "pub": folder / "token.pub.pem", "folder": folder}


def test_in_pkcs11_mode_the_image_is_signed_inside_the_token(image, image_token, tmp_path):
    """`z4 image build` with Z4_SIGNING_MODE=pkcs11: no key file; the statement verifies with the token's
    exported public key and not with the file key. A wrong PIN stops it before the build, in one line."""
    from z4_assets.core.packaging import public_key_fingerprint

    evidence = tmp_path / "evidence"
    env = {**image_token["env"], "Z4_SIGNING_MODE": "pkcs11", "Z4_IMAGE_EVIDENCE": str(evidence)}
    proc = subprocess.run([*CLI, "image", "build", "--work-dir", str(ROOT / "build" / "image-work")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == image["ref"] and IMAGE_TOKEN_PIN not in proc.stdout + proc.stderr
    bundle = json.loads((evidence / "statement.sigstore.json").read_text())
    assert "sha256:" + bundle["verificationMaterial"]["publicKey"]["hint"] == public_key_fingerprint(image_token["pub"])
    ok = subprocess.run([*CLI, "image", "verify", image["ref"]], capture_output=True, text=True,
                        env={**env, "Z4_SIGNING_PUBKEY": str(image_token["pub"])})
    assert ok.returncode == 0 and image["digest"] in ok.stdout, ok.stderr
    other = subprocess.run([*CLI, "image", "verify", image["ref"]], capture_output=True, text=True,
                           env={**env, "Z4_SIGNING_PUBKEY": image["pub"]})
    assert other.returncode == 2 and "does not verify" in other.stderr

    (image_token["folder"] / "wrong.pin").write_text("1357")
    wrong = {**env, "Z4_PKCS11_PIN_FILE": str(image_token["folder"] / "wrong.pin"),
             "Z4_IMAGE_EVIDENCE": str(tmp_path / "never")}
    proc = subprocess.run([*CLI, "image", "build", "--work-dir", str(ROOT / "build" / "image-work")], cwd=ROOT,
                          env=wrong, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "refused (wrong PIN?)" in proc.stderr, proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "1357" not in proc.stdout + proc.stderr
    assert "building" not in proc.stdout and not (tmp_path / "never").exists()
