"""deploy/ as an operator receives it: manifests valid offline, every image pinned by digest,
the Helm values in step with deploy/dagster.yaml, and egress closed but for the named services."""

from __future__ import annotations

import tomllib
from pathlib import Path
from urllib.parse import urlparse

import yaml

from z4_assets.core.k8s_policy import images_in, load_steps_policy, require_digest
from z4_assets.k8s.steps import DEFAULT_STEPS
from z4_assets_tests.k8s_api import kubernetes_validate

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))


def docs() -> list[dict]:
    return [d for path in MANIFESTS for d in yaml.safe_load_all(path.read_text()) if d]


def find(kind: str, name: str) -> dict:
    (doc,) = [d for d in docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def values() -> dict:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


def instance() -> dict:
    return yaml.safe_load((DEPLOY / "dagster.yaml").read_text())


def test_static_manifests_pass_kubernetes_validate_strict():
    proc = kubernetes_validate(MANIFESTS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(" passed for resource ") == len(docs()), proc.stdout
    kinds = {d["kind"] for d in docs()}
    assert {"Namespace", "ConfigMap", "PersistentVolumeClaim", "Service", "Deployment", "StatefulSet",
            "NetworkPolicy"} <= kinds


def test_every_image_in_deploy_is_pinned_by_digest():
    images = [(f"{m.name}: {path}", img) for m in MANIFESTS for d in yaml.safe_load_all(m.read_text()) if d
              for path, img in images_in(d)]
    v = values()
    pg = v["postgresql"]["image"]
    helm_images = [("values: postgresql.image", f"{pg['registry']}/{pg['repository']}:{pg['tag']}")]
    for where, spec in [("dagsterWebserver", v["dagsterWebserver"]["image"]),
                        ("dagsterDaemon", v["dagsterDaemon"]["image"]),
                        *[(f"user deployment {d['name']}", d["image"])
                          for d in v["dagster-user-deployments"]["deployments"]]]:
        assert not spec.get("tag"), f"{where}: a tag next to the digest would be ignored by the chart"
        helm_images.append((f"values: {where}", f"{spec['repository']}@{spec['digest']}"))
    assert len(images) >= 3 and len(helm_images) >= 4
    for where, image in images + helm_images:
        require_digest(image, where)


def test_the_helm_run_launcher_is_deploy_dagster_yaml_verbatim():
    custom = values()["runLauncher"]
    assert custom["type"] == "CustomRunLauncher"
    launcher = instance()["run_launcher"]
    assert custom["config"]["customRunLauncher"] == launcher
    assert launcher["module"] == "z4_assets.k8s.launcher" and launcher["class"] == "DigestPinnedK8sRunLauncher"


def test_postgres_settings_agree_everywhere():
    storage = instance()["storage"]["postgres"]["postgres_db"]
    assert storage == {"hostname": {"env": "DAGSTER_PG_HOST"}, "port": {"env": "DAGSTER_PG_PORT"},
                       "db_name": {"env": "DAGSTER_PG_DB"}, "username": {"env": "DAGSTER_PG_USERNAME"},
                       "password": {"env": "DAGSTER_PG_PASSWORD"}, "scheme": "postgresql+psycopg2"}
    env = find("ConfigMap", "z4-factory-env")["data"]
    # every pod gets the non-secret settings from the ConfigMap, the password from the Secret
    assert {v["env"] for v in storage.values() if isinstance(v, dict)} - set(env) == {"DAGSTER_PG_PASSWORD"}
    pg = values()["postgresql"]
    assert pg["postgresqlScheme"] == storage["scheme"]
    assert env["DAGSTER_PG_HOST"] == pg["postgresqlHost"]
    assert env["DAGSTER_PG_DB"] == pg["postgresqlDatabase"] and env["DAGSTER_PG_USERNAME"] == pg["postgresqlUsername"]
    assert int(env["DAGSTER_PG_PORT"]) == pg["service"]["port"] == 5432
    secret = instance()["run_launcher"]["config"]["postgres_password_secret"]
    assert values()["global"]["postgresqlSecretName"] == secret
    service = find("Service", "z4-postgres")
    assert env["DAGSTER_PG_HOST"].startswith(f"{service['metadata']['name']}.{service['metadata']['namespace']}.")
    assert service["spec"]["ports"][0]["port"] == 5432
    pg_env = {e["name"]: e for e in find("StatefulSet", "z4-postgres")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert pg_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "postgresql-password"}


def test_the_code_location_is_z4_assets_and_runs_on_the_k8s_executor():
    v = values()
    (dep,) = v["dagster-user-deployments"]["deployments"]
    args = dep["codeServerArgs"]
    assert args[args.index("-m") + 1] == "z4_assets.definitions"
    location = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]["code_location_name"]
    assert args[args.index("--location-name") + 1] == location == "z4_assets"
    (server,) = v["dagsterWebserver"]["workspace"]["servers"]
    assert server == {"host": dep["name"], "port": dep["port"], "name": location}
    env = find("ConfigMap", "z4-factory-env")["data"]
    assert env["Z4_EXECUTOR"] == "k8s"
    mount = next(m for m in instance()["run_launcher"]["config"]["volume_mounts"] if m["name"] == "steps")
    assert env["Z4_K8S_STEPS"] == f"{mount['mountPath']}/steps.yaml"
    for component in ("dagsterWebserver", "dagsterDaemon"):  # they run the launcher: need the ConfigMaps
        assert {"name": "z4-factory-env"} in v[component]["envConfigMaps"]
        assert any(m["name"] == "steps" and m["mountPath"] == mount["mountPath"] for m in v[component]["volumeMounts"])


def test_helm_component_pods_are_locked_down_and_valid(tmp_path):
    """The chart's pods, assembled from the values' k8s-shaped parts, pass strict validation."""
    v = values()
    (dep,) = v["dagster-user-deployments"]["deployments"]
    parts = {"webserver": v["dagsterWebserver"], "daemon": v["dagsterDaemon"], "user-code": dep}
    files = []
    for name, part in parts.items():
        sc = part["securityContext"]
        assert sc["runAsNonRoot"] and sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"]
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert {"cpu", "memory"} <= set(part["resources"]["limits"]) and part["resources"]["requests"]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "z4"},
               "spec": {"securityContext": part["podSecurityContext"], "volumes": part["volumes"],
                        "containers": [{"name": name, "image": f"{part['image']['repository']}@{part['image']['digest']}",
                                        "securityContext": sc, "resources": part["resources"],
                                        "volumeMounts": part["volumeMounts"],
                                        "envFrom": [{"configMapRef": c} for c in part["envConfigMaps"]]}]}}
        files.append(tmp_path / f"{name}.yaml")
        files[-1].write_text(yaml.safe_dump(pod))
    proc = kubernetes_validate(files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_factory_pods_have_no_egress_but_to_the_named_services():
    policy = find("NetworkPolicy", "z4-factory-egress")["spec"]
    selector = policy["podSelector"]["matchLabels"]
    assert selector == {"z4.io/workload": "factory"}
    # both kinds of factory pod carry the label the policy selects on
    assert instance()["run_launcher"]["config"]["labels"].items() >= selector.items()
    assert load_steps_policy(DEFAULT_STEPS).pod.labels.items() >= selector.items()
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"} and policy["ingress"] == []
    peers = {}
    for rule in policy["egress"]:
        (peer,) = rule["to"]
        assert "ipBlock" not in peer, "no address range may be opened for step pods"
        name = peer["podSelector"]["matchLabels"].get("app.kubernetes.io/name") or "dns"
        peers[name] = {p["port"] for p in rule["ports"]}
    assert peers == {"dns": {53}, "mlflow": {5000}, "z3": {443}, "z4-registry": {443, 5000}, "z4-postgres": {5432}}
    # the ports the policy opens are the ports the services listen on
    mlflow = find("Service", "mlflow")
    tracking = urlparse(find("ConfigMap", "z4-factory-env")["data"]["MLFLOW_TRACKING_URI"])
    assert tracking.hostname.startswith("mlflow.z4.") and tracking.port == mlflow["spec"]["ports"][0]["port"] == 5000
    assert find("Service", "mlflow")["spec"]["selector"] == {"app.kubernetes.io/name": "mlflow"}
    api = find("NetworkPolicy", "z4-run-worker-apiserver")["spec"]
    assert api["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "run_worker"
    assert api["policyTypes"] == ["Egress"]


def test_mlflow_is_backed_by_postgres_and_an_s3_store_through_secrets():
    spec = find("Deployment", "mlflow")["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["value"].startswith("postgresql://mlflow:$(MLFLOW_DB_PASSWORD)@z4-postgres.")
    assert "--serve-artifacts" in c["args"]
    assert c["args"][c["args"].index("--artifacts-destination") + 1].startswith("s3://")
    assert urlparse(env["MLFLOW_S3_ENDPOINT_URL"]["value"]).hostname.startswith("z4-artifact-store.z4.")
    for secret in ("MLFLOW_DB_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "value" not in env[secret] and env[secret]["valueFrom"]["secretKeyRef"]["name"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True and spec["securityContext"]["runAsNonRoot"]
