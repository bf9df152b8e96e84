"""The pod policy as plain Python: the digest rule, quantities, and deploy/steps.yaml itself."""

from __future__ import annotations

from decimal import Decimal

import pytest
import yaml

from z4_assets.core.errors import Z4Error
from z4_assets.core.k8s_policy import (check_step_names, images_in, load_steps_policy, parse_quantity,
                                       per_step_k8s_config, require_digest, run_worker_k8s_config,
                                       step_k8s_config)
from z4_assets.k8s.steps import DEFAULT_STEPS, asset_steps

HEX = "0123456789abcdef" * 4


@pytest.mark.parametrize("image", [
    f"registry.example.com/z4/z4-model-factory@sha256:{HEX}",
    f"localhost:5000/z4@sha256:{HEX}",                 # a registry port is not a tag
    f"docker.io/library/postgres:17@sha256:{HEX}",     # tag + digest: the digest decides
])
def test_images_pinned_by_digest_pass(image):
    assert require_digest(image, "test") == image


@pytest.mark.parametrize("image, problem", [
    ("registry.example.com/z4/app:latest", "mutable tag 'latest'"),
    ("registry.example.com/z4/app:v1.2.3", "mutable tag 'v1.2.3'"),
    ("localhost:5000/z4", "has no digest"),
    ("app", "has no digest"),
    (f"app@sha256:{HEX.upper()}", "is not sha256:<64"),
    ("app@sha512:0a1b2c", "is not sha256:<64"),
    (f"app@sha256:{HEX[:-1]}", "is not sha256:<64"),
    ("", "no container image is configured"),
    (None, "no container image is configured"),
])
def test_anything_else_is_refused_with_a_clear_line(image, problem):
    with pytest.raises(Z4Error) as e:
        require_digest(image, "run_launcher.config.job_image")
    msg = str(e.value)
    assert msg.startswith("run_launcher.config.job_image: ") and problem in msg
    assert "pinned by digest" in msg and "@sha256:<64 hex digits>" in msg and "\n" not in msg


def test_images_in_finds_nested_images_and_nothing_else():
    doc = {"container_config": {"image": "a:1", "image_pull_policy": "Always"},
           "pod_spec_config": {"containers": [{"name": "s", "image": "b@sha256:" + HEX}],
                               "init_containers": [{"image": "c"}]}, "job_image": "d:2"}
    assert sorted(images_in(doc)) == [("container_config.image", "a:1"), ("job_image", "d:2"),
                                      ("pod_spec_config.containers[0].image", "b@sha256:" + HEX),
                                      ("pod_spec_config.init_containers[0].image", "c")]


@pytest.mark.parametrize("value, expected", [("500m", Decimal("0.5")), ("2", 2), (2, 2), ("1.5", Decimal("1.5")),
                                             ("512Mi", 512 * 2**20), ("4Gi", 4 * 2**30), ("1G", 10**9)])
def test_quantities(value, expected):
    assert parse_quantity(value, "x") == expected


@pytest.mark.parametrize("value", ["2 cores", "-1", "1.5.2", "Gi", "1gi"])
def test_bad_quantities_are_named(value):
    with pytest.raises(Z4Error, match="is not a Kubernetes quantity"):
        parse_quantity(value, "steps.yaml: limits.cpu")


def test_the_shipped_steps_file_loads_and_names_only_asset_steps():
    from z4_assets.definitions import defs

    policy = load_steps_policy(DEFAULT_STEPS)
    check_step_names(policy, set(asset_steps(defs)), str(DEFAULT_STEPS))
    assert policy.ttl_seconds_after_finished > 0 and policy.pod.read_only_root_filesystem
    assert "/tmp" in policy.pod.scratch


def test_a_misspelled_step_name_is_refused():
    policy = load_steps_policy(DEFAULT_STEPS)
    known = set(policy.steps)
    policy.steps["trained_modle"] = policy.steps["trained_model"]
    with pytest.raises(Z4Error, match=r"^deploy/steps.yaml: steps \['trained_modle'\] are not asset steps"):
        check_step_names(policy, known, "deploy/steps.yaml")


def _write(tmp_path, mutate) -> str:
    doc = yaml.safe_load(DEFAULT_STEPS.read_text())
    mutate(doc)
    path = tmp_path / "steps.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["steps"]["trained_model"]["requests"].update(memory="3Gi"), "requests.memory 3Gi must be > 0 and <= limits.memory"),
    (lambda d: d["defaults"]["limits"].pop("cpu"), "defaults: needs both requests.cpu and limits.cpu"),
    (lambda d: d["run_worker"]["limits"].update(cpu="two"), "run_worker: limits.cpu: 'two' is not a Kubernetes quantity"),
    (lambda d: d["steps"]["z3_snapshot"].update(cpus=1), "steps.z3_snapshot.cpus: Extra inputs are not permitted"),
    (lambda d: d.pop("ttl_seconds_after_finished"), "ttl_seconds_after_finished: Field required"),
    (lambda d: d.update(ttl_seconds_after_finished=0), "ttl_seconds_after_finished: Input should be greater than 0"),
    (lambda d: d["pod"].update(run_as_user=0), "pod.run_as_user: Input should be greater than 0"),
    (lambda d: d["pod"]["scratch"].pop("/tmp"), "needs a /tmp entry in pod.scratch"),
    (lambda d: d["steps"]["trained_model"].update(volumes=[{"name": "x", "image": {"reference": "y"}},
                                                           {"name": "z", "image": "busybox:1.36"}]),
     "steps.trained_model.volumes[1].image: image 'busybox:1.36' is refused"),
])
def test_a_broken_steps_file_is_one_line_naming_the_file(tmp_path, mutate, message):
    path = _write(tmp_path, mutate)
    with pytest.raises(Z4Error) as e:
        load_steps_policy(path)
    assert str(e.value).startswith(path) and message in str(e.value), str(e.value)


def test_a_missing_or_non_mapping_steps_file(tmp_path):
    with pytest.raises(Z4Error, match="steps file not found"):
        load_steps_policy(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(Z4Error, match="expected a mapping"):
        load_steps_policy(tmp_path / "list.yaml")


def test_run_pod_keeps_its_api_token_and_step_pods_do_not():
    policy = load_steps_policy(DEFAULT_STEPS)
    run = run_worker_k8s_config(policy)
    step = step_k8s_config(policy)
    per_op = per_step_k8s_config(policy, ["trained_model", "not_in_the_file"])
    assert run["pod_spec_config"]["automount_service_account_token"] is True
    assert step["pod_spec_config"]["automount_service_account_token"] is False
    assert all(c["pod_spec_config"]["automount_service_account_token"] is False for c in per_op.values())
    assert run["container_config"]["resources"]["limits"] == {k: str(v) for k, v in policy.run_worker.limits.items()}
    # an op the file does not list still gets the defaults' size and the security contexts
    assert per_op["not_in_the_file"]["container_config"]["resources"]["limits"] == \
        {k: str(v) for k, v in policy.defaults.limits.items()}
    assert per_op["not_in_the_file"]["container_config"]["security_context"]["read_only_root_filesystem"] is True


def test_gpu_limit_only_where_configured(tmp_path):
    path = _write(tmp_path, lambda d: d["steps"]["trained_model"].update(gpu=2, gpu_resource="amd.com/gpu"))
    per_op = per_step_k8s_config(load_steps_policy(path), ["trained_model", "hygiene_report"])
    assert per_op["trained_model"]["container_config"]["resources"]["limits"]["amd.com/gpu"] == "2"
    assert "amd.com/gpu" not in per_op["hygiene_report"]["container_config"]["resources"]["limits"]
