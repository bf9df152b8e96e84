"""The real Job spec of every asset step, through the k8s executor's own code path, validated
offline with kubernetes-validate --strict; the security fields, sizes and ttl it must carry;
and the digest rule refusing tagged images before any Job reaches the API."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

from z4_assets.core.k8s_policy import container_security_context, load_steps_policy
from z4_assets.core.z3 import parse_snapshot_key, snapshot_key
from z4_assets.k8s.steps import DEFAULT_STEPS, asset_steps
from z4_assets.partitions import snapshots
from z4_assets_tests.k8s_api import DIGEST_IMAGE, K8S_VERSION, FakeKubeAPI, kubernetes_validate, signed_image_env

ROOT = Path(__file__).resolve().parents[1]
DEPLOY_DAGSTER_YAML = ROOT / "deploy" / "dagster.yaml"


def k8s_factory_job():
    """Every asset of the Definitions on the z4_k8s executor (module level, so reconstructable)."""
    from z4_assets.definitions import defs
    from z4_assets.k8s.executor import z4_k8s_executor

    job = dg.define_asset_job("model_factory_k8s", selection=dg.AssetSelection.all(),
                              executor_def=z4_k8s_executor)
    return dg.Definitions(assets=list(defs.assets), resources=defs.resources,
                          jobs=[job]).resolve_job_def("model_factory_k8s")


def step_keys() -> dict[str, list[dg.AssetKey]]:
    """Op name -> asset keys, for every executable asset of the Definitions."""
    from z4_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    return {a.node_def.name: list(a.keys) for a in graph.assets_defs if a.is_executable}


def instance_home(tmp: Path, api: FakeKubeAPI) -> Path:
    """A Dagster home whose run launcher is deploy/dagster.yaml's, pointed at the fake API."""
    launcher = copy.deepcopy(yaml.safe_load(DEPLOY_DAGSTER_YAML.read_text())["run_launcher"])
    launcher["config"].update(load_incluster_config=False,
                              kubeconfig_file=str(api.kubeconfig(tmp / "kubeconfig.yaml")))
    (tmp / "dagster.yaml").write_text(yaml.safe_dump({
        "storage": {"sqlite": {"base_dir": str(tmp / "storage")}},
        "run_launcher": launcher, "telemetry": {"enabled": False},
        # launch at submission (no daemon here), as the queued coordinator's daemon would
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}}))
    return tmp


# the partition each step run trains, as `z4 snapshot tags` names one (no step gets as far as reading it)
PARTITION = snapshot_key("taiwan_credit_default", "20260101T000000000000Z-0123456789ab")


def launch_steps(instance, steps: list[str], execution: dict) -> list[dg.ExecuteJobResult]:
    keys = step_keys()
    instance.add_dynamic_partitions(snapshots.name, [PARTITION])
    return [dg.execute_job(dg.reconstructable(k8s_factory_job), instance=instance,
                           run_config={"execution": {"config": execution}}, tags={"dagster/partition": PARTITION},
                           asset_selection=keys[step]) for step in steps]


@pytest.fixture(autouse=True, scope="module")
def _signed_image(tmp_path_factory):
    """The launcher and executor run only a digest the factory's signed image statement names."""
    import os

    env = signed_image_env(tmp_path_factory.mktemp("signed_image"))
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    """One run per asset step; the fake API records the step's Job and refuses it (403)."""
    tmp = tmp_path_factory.mktemp("k8s-render")
    with FakeKubeAPI(status=403) as api, dg.DagsterInstance.from_config(str(instance_home(tmp, api))) as inst:
        steps = sorted(step_keys())
        results = launch_steps(inst, steps, {"job_image": DIGEST_IMAGE})
        jobs = api.jobs()
    assert not any(r.success for r in results)  # each run stops at the refused Job
    by_step = {j["metadata"]["labels"]["dagster/op"]: j for j in jobs}
    files = []
    for step, job in by_step.items():
        files.append(tmp / f"step-{step}.yaml")
        files[-1].write_text(yaml.safe_dump(job))
    return {"steps": steps, "jobs": by_step, "files": files, "posted": len(jobs)}


def container(job: dict) -> dict:
    (c,) = job["spec"]["template"]["spec"]["containers"]
    return c


def test_every_asset_step_is_rendered_once(rendered):
    assert set(rendered["steps"]) == set(asset_steps(_defs()))
    assert rendered["posted"] == len(rendered["steps"]) and set(rendered["jobs"]) == set(rendered["steps"])
    parse_snapshot_key(PARTITION)  # a key the factory accepts


def test_every_asset_step_is_one_partitioned_factory_stage():
    """The steps the k8s executor launches are the stage table's assets, all of the snapshot partitions."""
    from z4_assets.core.stages import STAGES

    graph = _defs().resolve_asset_graph()
    assert set(asset_steps(_defs())) == {s.asset for s in STAGES}
    for key in graph.get_all_asset_keys():
        assert graph.get(key).partitions_def == snapshots, key.to_user_string()


def test_rendered_step_jobs_pass_kubernetes_validate_strict(rendered):
    proc = kubernetes_validate(rendered["files"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("passed for resource job/") == len(rendered["files"]), proc.stdout
    assert f"against version {K8S_VERSION.rsplit('.', 1)[0]}" in proc.stdout


def test_strict_validation_catches_a_misspelled_security_field(rendered, tmp_path):
    job = copy.deepcopy(next(iter(rendered["jobs"].values())))
    container(job)["securityContext"]["runAsNonroot"] = True  # typo: must be rejected
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(job))
    proc = kubernetes_validate([bad])
    assert proc.returncode != 0 and "runAsNonroot" in proc.stdout + proc.stderr


def test_every_step_pod_is_locked_down(rendered):
    for step, job in rendered["jobs"].items():
        pod = job["spec"]["template"]["spec"]
        c = container(job)
        assert c["image"] == DIGEST_IMAGE, step
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] > 0, step
        assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False, step
        assert sc["readOnlyRootFilesystem"] is True, step
        assert sc["capabilities"] == {"drop": ["ALL"]}, step
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, step
        assert pod["securityContext"]["runAsNonRoot"] is True, step
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, step
        assert pod["automountServiceAccountToken"] is False, step
        assert pod["restartPolicy"] == "Never", step


def test_writable_paths_are_emptydirs_or_volumes_and_mounts_resolve(rendered):
    for step, job in rendered["jobs"].items():
        pod = job["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = container(job)["volumeMounts"]
        paths = [m["mountPath"] for m in mounts]
        assert len(paths) == len(set(paths)), f"{step}: duplicate mount paths {paths}"
        assert all(m["name"] in volumes for m in mounts), step
        tmp = next(m for m in mounts if m["mountPath"] == "/tmp")
        assert "emptyDir" in volumes[tmp["name"]] and volumes[tmp["name"]]["emptyDir"]["sizeLimit"], step


def test_sizes_ttl_and_labels_come_from_the_steps_file(rendered):
    policy = load_steps_policy(DEFAULT_STEPS)
    for step, job in rendered["jobs"].items():
        want = policy.resolved(step)
        res = container(job)["resources"]
        assert res["requests"] == {k: str(v) for k, v in want.requests.items()}, step
        assert res["limits"] == {k: str(v) for k, v in want.limits.items()}, step
        assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(res["limits"])
        assert job["spec"]["ttlSecondsAfterFinished"] == policy.ttl_seconds_after_finished, step
        assert job["spec"]["backoffLimit"] == policy.backoff_limit == 0, step
        labels = job["spec"]["template"]["metadata"]["labels"]
        assert labels["z4.io/workload"] == "factory" and labels["app.kubernetes.io/component"] == "step_worker"
    distinct = {json.dumps(container(j)["resources"], sort_keys=True) for j in rendered["jobs"].values()}
    assert len(distinct) > 1, "every step got the same size: per-asset sizing is not applied"


def test_only_the_signing_step_mounts_the_private_key_and_no_secret_is_inlined(rendered):
    for step, job in rendered["jobs"].items():
        pod = job["spec"]["template"]["spec"]
        items = [i["key"] for v in pod["volumes"] if "secret" in v for i in v["secret"].get("items", [])]
        assert ("signing.pem" in items) == (step == "signed_package"), step
        env = {e["name"]: e for e in container(job)["env"]}
        assert "value" not in env["DAGSTER_PG_PASSWORD"]  # from the Secret, never inlined
        assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "dagster-postgresql-secret"
        assert {"configMapRef": {"name": "z4-factory-env"}} in container(job)["envFrom"]


def test_only_the_steps_that_read_rows_mount_the_pseudonymisation_key(rendered):
    readers = {"hygiene_report", "trained_model", "adversarial_eval", "fairness_report"}
    for step, job in rendered["jobs"].items():
        pod = job["spec"]["template"]["spec"]
        items = [i["key"] for v in pod["volumes"] if "secret" in v for i in v["secret"].get("items", [])]
        assert ("pseudonym.key" in items) == (step in readers), step


def test_gpu_limit_node_selector_and_tolerations_when_configured(tmp_path, monkeypatch):
    doc = yaml.safe_load(DEFAULT_STEPS.read_text())
    doc["steps"]["trained_model"].update(gpu=1, node_selector={"nvidia.com/gpu.present": "true"},
                                         tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists",
                                                       "effect": "NoSchedule"}])
    steps = tmp_path / "steps.yaml"
    steps.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("Z4_K8S_STEPS", str(steps))
    with FakeKubeAPI() as api, dg.DagsterInstance.from_config(str(instance_home(tmp_path, api))) as inst:
        launch_steps(inst, ["trained_model", "hygiene_report"], {"job_image": DIGEST_IMAGE})
        jobs = {j["metadata"]["labels"]["dagster/op"]: j for j in api.jobs()}
    train = jobs["trained_model"]
    assert container(train)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert train["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert train["spec"]["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert "nvidia.com/gpu" not in container(jobs["hygiene_report"])["resources"]["limits"]
    out = tmp_path / "gpu.yaml"
    out.write_text(yaml.safe_dump(train))
    proc = kubernetes_validate([out])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("execution, expected", [
    ({"job_image": "registry.example.com/z4/z4-model-factory:latest"}, "mutable tag 'latest'"),
    ({"job_image": "registry.example.com/z4/z4-model-factory:1.4.2"}, "mutable tag '1.4.2'"),
    ({"job_image": "registry.example.com/z4/z4-model-factory"}, "has no digest"),
    ({"job_image": "registry.example.com/z4/z4-model-factory@sha256:abc"}, "not sha256:<64"),
    ({}, "no container image is configured"),
    ({"job_image": DIGEST_IMAGE, "per_step_k8s_config": {"trained_model": {
        "container_config": {"image": "registry.example.com/z4/other:latest"}}}},
     "per_step_k8s_config.trained_model.container_config.image"),
])
def test_a_tagged_image_is_refused_before_any_job_is_created(tmp_path, execution, expected):
    from z4_assets.core.errors import Z4Error

    with FakeKubeAPI() as api, dg.DagsterInstance.from_config(str(instance_home(tmp_path, api))) as inst:
        with pytest.raises(Z4Error) as refused:
            launch_steps(inst, ["z3_snapshot"], execution)
        (run,) = inst.get_runs()
        events = [r.dagster_event.event_type_value for r in inst.all_logs(run.run_id) if r.dagster_event]
    assert expected in str(refused.value) and "pinned by digest" in str(refused.value)
    assert api.posted == []  # nothing reached the API
    assert run.status != dg.DagsterRunStatus.SUCCESS and "STEP_START" not in events


def test_the_executor_guards_its_api_client(tmp_path):
    """Pins the dagster-k8s internals the executor relies on (the guard on _api_client)."""
    from z4_assets.k8s.executor import z4_k8s_executor
    from z4_assets.k8s.guard import DigestGuardedClient

    with FakeKubeAPI() as api, dg.DagsterInstance.from_config(str(instance_home(tmp_path, api))) as inst:
        ctx = dg.InitExecutorContext(job=dg.reconstructable(k8s_factory_job), executor_def=z4_k8s_executor,
                                     executor_config={"job_image": DIGEST_IMAGE, "retries": {"enabled": {}}},
                                     instance=inst)
        executor = z4_k8s_executor.executor_creation_fn(ctx)
    assert isinstance(executor._step_handler._api_client, DigestGuardedClient)


def test_the_guard_refuses_a_tagged_sidecar_in_the_final_body():
    import kubernetes

    from z4_assets.core.errors import Z4Error
    from z4_assets.k8s.guard import DigestGuardedClient

    calls = []

    class Inner:
        def create_namespaced_job_with_retries(self, body, namespace):
            calls.append(body)

    job = kubernetes.client.V1Job(metadata=kubernetes.client.V1ObjectMeta(name="dagster-step-x"), spec=
                                  kubernetes.client.V1JobSpec(template=kubernetes.client.V1PodTemplateSpec(
                                      spec=kubernetes.client.V1PodSpec(containers=[
                                          kubernetes.client.V1Container(name="dagster", image=DIGEST_IMAGE),
                                          kubernetes.client.V1Container(name="proxy", image="envoy:v1")]))))
    guard = DigestGuardedClient(Inner(), "k8s executor")
    with pytest.raises(Z4Error, match=r"containers\[1\].image.*mutable tag 'v1'"):
        guard.create_namespaced_job_with_retries(body=job, namespace="z4")
    assert calls == []
    job.spec.template.spec.containers.pop()
    guard.create_namespaced_job_with_retries(body=job, namespace="z4")
    assert calls == [job]


@dg.asset(op_tags={"dagster-k8s/config": {"container_config": {"security_context": {
    "allowPrivilegeEscalation": True, "readOnlyRootFilesystem": False, "runAsNonRoot": False}}}})
def loosened():
    """An asset whose op tag tries to switch the step pod's hardening off."""
    return 1


def loosened_job():
    from z4_assets.k8s.executor import z4_k8s_executor

    return dg.Definitions(assets=[loosened], jobs=[dg.define_asset_job("loosened", executor_def=z4_k8s_executor)]
                          ).resolve_job_def("loosened")


def test_an_op_tag_cannot_loosen_the_step_pod(tmp_path):
    with FakeKubeAPI() as api, dg.DagsterInstance.from_config(str(instance_home(tmp_path, api))) as inst:
        dg.execute_job(dg.reconstructable(loosened_job), instance=inst,
                       run_config={"execution": {"config": {"job_image": DIGEST_IMAGE}}})
        (job,) = api.jobs()
    policy = load_steps_policy(DEFAULT_STEPS)
    sc = container(job)["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True
    assert container_security_context(policy)["allow_privilege_escalation"] is False


def _defs():
    from z4_assets.definitions import defs

    return defs


def test_the_executor_refuses_a_digest_the_signed_statement_does_not_name(tmp_path):
    other = DIGEST_IMAGE.split("@")[0] + "@sha256:" + "cd" * 32
    with FakeKubeAPI(status=201) as api, dg.DagsterInstance.from_config(str(instance_home(tmp_path, api))) as inst:
        results = launch_steps(inst, ["trained_model"], {"job_image": other})
        posted = list(api.posted)
        logs = " ".join(str(r) for r in inst.all_logs(results[0].run_id))
    assert posted == [] and not results[0].success
    assert "the factory's signed image statement names" in logs
