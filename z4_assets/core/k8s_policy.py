"""Kubernetes pod policy for factory steps: images pinned by digest, locked-down pods, sized per asset.

Plain Python (no Dagster, no kubernetes client): the run launcher, the step executor and `z4 k8s
render` all call it, so one rule refuses a mutable image tag wherever a pod could be created.
The output dictionaries use the snake_case keys that dagster-k8s expects in `container_config`,
`pod_spec_config` and `job_spec_config`.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from z4_assets.core.errors import Z4Error

DIGEST_RE = re.compile(r"^(?P<name>[a-z0-9][^\s@]*)@sha256:[0-9a-f]{64}$")
IMAGE_KEYS = ("image", "job_image")
HOW_TO_PIN = ("use <repository>@sha256:<64 hex digits> (the digest `crane digest IMAGE` or "
              "`docker buildx imagetools inspect IMAGE` prints)")


def require_digest(image: str | None, where: str) -> str:
    """The image unchanged if it is pinned by digest; otherwise a Z4Error naming where it came from."""
    if not image or not str(image).strip():
        raise Z4Error(f"no container image is configured; images must be pinned by digest, {HOW_TO_PIN}", where)
    image = str(image).strip()
    if DIGEST_RE.match(image):
        return image
    tail = image.rsplit("/", 1)[-1]
    if "@" in tail:
        problem = f"its digest {tail.split('@', 1)[1]!r} is not sha256:<64 lowercase hex digits>"
    elif ":" in tail:
        problem = f"it uses the mutable tag {tail.split(':', 1)[1]!r}"
    else:
        problem = "it has no digest (an untagged image means :latest)"
    raise Z4Error(f"image {image!r} is refused: {problem}; images must be pinned by digest, "
                  f"{HOW_TO_PIN}", where)


def images_in(obj: Any, path: str = "") -> list[tuple[str, str]]:
    """Every (path, value) under an `image` or `job_image` key in nested dicts and lists."""
    found: list[tuple[str, str]] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            here = f"{path}.{key}" if path else str(key)
            if key in IMAGE_KEYS and isinstance(value, str):
                found.append((here, value))
            else:
                found.extend(images_in(value, here))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            found.extend(images_in(value, f"{path}[{i}]"))
    return found


def require_digests_in(obj: Any, where: str) -> None:
    """Refuse any image nested anywhere in a configuration (container overrides, sidecars)."""
    for path, image in images_in(obj):
        require_digest(image, f"{where}: {path}")


# --- Quantities -------------------------------------------------------------------------------

_SUFFIX = {"": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
           "P": 10**15, "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
           "Pi": 2**50, "Ei": 2**60}
_QUANTITY_RE = re.compile(r"^(?P<num>\d+(\.\d+)?)(?P<suffix>m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def parse_quantity(value: object, where: str) -> Decimal:
    """A Kubernetes quantity ("500m", "2", "4Gi") as a number, or a Z4Error naming it."""
    m = _QUANTITY_RE.match(str(value).strip())
    if not m:
        raise Z4Error(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 2, 512Mi, 4Gi)", where)
    try:
        return Decimal(m["num"]) * Decimal(_SUFFIX[m["suffix"] or ""])
    except InvalidOperation as e:  # pragma: no cover - the regex admits only decimals
        raise Z4Error(f"{value!r}: {e}", where) from e


# --- The steps file ---------------------------------------------------------------------------

class StepSpec(BaseModel):
    """Pod size and extras for one asset step (or the defaults every step starts from)."""

    model_config = ConfigDict(extra="forbid")
    requests: dict[str, str | int] = Field(default_factory=dict, description="cpu, memory, ...")
    limits: dict[str, str | int] = Field(default_factory=dict, description="cpu, memory, ...")
    gpu: int = Field(0, ge=0, description="GPUs as a limit of gpu_resource; 0 = none")
    active_deadline_seconds: int | None = Field(None, gt=0, description="the pod's Job is killed after this; "
                                                "a backstop above the policy's step time-out (runs)")
    gpu_resource: str = Field("nvidia.com/gpu", description="extended resource name of the GPU")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    volumes: list[dict[str, Any]] = Field(default_factory=list, description="extra pod volumes")
    volume_mounts: list[dict[str, Any]] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)


class PodSecurity(BaseModel):
    """What every step pod runs as; the scratch emptyDirs make a read-only root usable."""

    model_config = ConfigDict(extra="forbid")
    run_as_user: int = Field(10001, gt=0)
    run_as_group: int = Field(10001, gt=0)
    fs_group: int = Field(10001, gt=0)
    read_only_root_filesystem: bool = True
    scratch: dict[str, str] = Field(default_factory=lambda: {"/tmp": "1Gi"},  # nosec B108 # an emptyDir mount path
                                    description="mount path -> emptyDir sizeLimit")
    image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"
    automount_service_account_token: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    volumes: list[dict[str, Any]] = Field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = Field(default_factory=list)


class StepsPolicy(BaseModel):
    """deploy/steps.yaml: one place for every step pod's size, security and lifetime."""

    model_config = ConfigDict(extra="forbid")
    ttl_seconds_after_finished: int = Field(gt=0)
    backoff_limit: int = Field(0, ge=0)
    pod: PodSecurity = Field(default_factory=PodSecurity)
    run_worker: StepSpec = Field(description="the run pod, which only orchestrates the step pods")
    defaults: StepSpec = Field(description="every step pod, unless steps.<op name> says otherwise")
    steps: dict[str, StepSpec] = Field(default_factory=dict)

    def resolved(self, step: str) -> StepSpec:
        """The defaults with this step's overrides on top (requests/limits merged key by key)."""
        over = self.steps.get(step)
        if over is None:
            return self.defaults
        merged = self.defaults.model_dump()
        for key, value in over.model_dump(exclude_unset=True).items():
            merged[key] = {**merged[key], **value} if key in ("requests", "limits") else value
        return StepSpec(**merged)


def load_steps_policy(path: str | Path) -> StepsPolicy:
    """Read and check the steps file; any problem is one Z4Error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise Z4Error("steps file not found (set Z4_K8S_STEPS to deploy/steps.yaml)", path)
    try:
        doc = yaml.safe_load(path.read_text())
        policy = StepsPolicy(**(doc or {}))
    except yaml.YAMLError as e:
        raise Z4Error(f"not valid YAML: {e}", path) from e
    except ValidationError as e:
        err = e.errors()[0]
        raise Z4Error(f"{'.'.join(map(str, err['loc']))}: {err['msg']}", path) from e
    except TypeError as e:
        raise Z4Error(f"expected a mapping at the top level: {e}", path) from e
    _check_resources(policy.run_worker, f"{path}: run_worker")
    _check_resources(policy.defaults, f"{path}: defaults")
    for step in policy.steps:
        _check_resources(policy.resolved(step), f"{path}: steps.{step}")
    if policy.pod.read_only_root_filesystem and "/tmp" not in policy.pod.scratch:  # nosec B108 # mount path
        raise Z4Error("pod.read_only_root_filesystem needs a /tmp entry in pod.scratch", path)
    require_digests_in(doc, str(path))
    return policy


def _check_resources(spec: StepSpec, where: str) -> None:
    for kind in ("cpu", "memory"):
        if kind not in spec.requests or kind not in spec.limits:
            raise Z4Error(f"needs both requests.{kind} and limits.{kind}", where)
        req = parse_quantity(spec.requests[kind], f"{where}: requests.{kind}")
        lim = parse_quantity(spec.limits[kind], f"{where}: limits.{kind}")
        if req <= 0 or req > lim:
            raise Z4Error(f"requests.{kind} {spec.requests[kind]} must be > 0 and <= "
                          f"limits.{kind} {spec.limits[kind]}", where)


def check_step_names(policy: StepsPolicy, known: set[str], where: str) -> None:
    """A steps.<name> entry that is no asset step is a typo that would silently size nothing."""
    unknown = sorted(set(policy.steps) - known)
    if unknown:
        raise Z4Error(f"steps {unknown} are not asset steps of the definitions "
                      f"(known: {sorted(known)})", where)


# --- dagster-k8s configuration -----------------------------------------------------------------

def _volume_name(mount_path: str) -> str:
    return "scratch-" + (re.sub(r"[^a-z0-9]+", "-", mount_path.lower()).strip("-") or "root")


def _resources(spec: StepSpec) -> dict[str, dict[str, str]]:
    limits = {k: str(v) for k, v in spec.limits.items()}
    if spec.gpu:
        limits[spec.gpu_resource] = str(spec.gpu)
    return {"requests": {k: str(v) for k, v in spec.requests.items()}, "limits": limits}


def container_security_context(policy: StepsPolicy) -> dict[str, Any]:
    pod = policy.pod
    return {"run_as_non_root": True, "run_as_user": pod.run_as_user, "run_as_group": pod.run_as_group,
            "allow_privilege_escalation": False, "privileged": False,
            "read_only_root_filesystem": pod.read_only_root_filesystem,
            "capabilities": {"drop": ["ALL"]}, "seccomp_profile": {"type": "RuntimeDefault"}}


def pod_security_context(policy: StepsPolicy) -> dict[str, Any]:
    pod = policy.pod
    return {"run_as_non_root": True, "run_as_user": pod.run_as_user, "run_as_group": pod.run_as_group,
            "fs_group": pod.fs_group, "seccomp_profile": {"type": "RuntimeDefault"}}


def _pod_config(policy: StepsPolicy, spec: StepSpec, automount: bool) -> dict[str, Any]:
    pod = policy.pod
    scratch_volumes = [{"name": _volume_name(p), "empty_dir": {"size_limit": size}}
                       for p, size in pod.scratch.items()]
    scratch_mounts = [{"name": _volume_name(p), "mount_path": p} for p in pod.scratch]
    pod_spec: dict[str, Any] = {
        "security_context": pod_security_context(policy),
        "automount_service_account_token": automount,
        "volumes": [*scratch_volumes, *pod.volumes, *spec.volumes],
    }
    if spec.node_selector:
        pod_spec["node_selector"] = spec.node_selector
    if spec.tolerations:
        pod_spec["tolerations"] = spec.tolerations
    return {
        "container_config": {
            "image_pull_policy": pod.image_pull_policy,
            "resources": _resources(spec),
            "security_context": container_security_context(policy),
            "volume_mounts": [*scratch_mounts, *pod.volume_mounts, *spec.volume_mounts],
            "env": [{"name": k, "value": v} for k, v in {**pod.env, **spec.env}.items()],
        },
        "pod_spec_config": pod_spec,
        "pod_template_spec_metadata": {"labels": dict(pod.labels)},
        "job_spec_config": {"ttl_seconds_after_finished": policy.ttl_seconds_after_finished,
                            "backoff_limit": policy.backoff_limit,
                            **({"active_deadline_seconds": spec.active_deadline_seconds}
                               if spec.active_deadline_seconds else {})},
    }


def run_worker_k8s_config(policy: StepsPolicy) -> dict[str, Any]:
    """The run pod: locked down like the steps, sized by `run_worker`, with the API token the
    k8s executor needs to create the step Jobs."""
    return _pod_config(policy, policy.run_worker, automount=True)


def step_k8s_config(policy: StepsPolicy) -> dict[str, Any]:
    """What every step pod gets (the executor's `step_k8s_config`), sized with `defaults`."""
    return _pod_config(policy, policy.defaults, automount=policy.pod.automount_service_account_token)


def per_step_k8s_config(policy: StepsPolicy, op_names: list[str]) -> dict[str, dict[str, Any]]:
    """Per op (the executor's `per_step_k8s_config`, merged last): the step's size, its extras,
    and the security contexts again, so an op's `dagster-k8s/config` tag cannot loosen them."""
    out: dict[str, dict[str, Any]] = {}
    for op in op_names:
        spec = policy.resolved(op)
        over = policy.steps.get(op, StepSpec())
        container: dict[str, Any] = {"resources": _resources(spec),
                                     "security_context": container_security_context(policy)}
        pod_spec: dict[str, Any] = {"security_context": pod_security_context(policy),
                                    "automount_service_account_token": policy.pod.automount_service_account_token}
        if over.volume_mounts:
            container["volume_mounts"] = over.volume_mounts
        if over.env:
            container["env"] = [{"name": k, "value": v} for k, v in over.env.items()]
        if over.volumes:
            pod_spec["volumes"] = over.volumes
        if spec.node_selector:
            pod_spec["node_selector"] = spec.node_selector
        if spec.tolerations:
            pod_spec["tolerations"] = spec.tolerations
        out[op] = {"container_config": container, "pod_spec_config": pod_spec}
        if spec.active_deadline_seconds:
            out[op]["job_spec_config"] = {"ttl_seconds_after_finished": policy.ttl_seconds_after_finished,
                                          "backoff_limit": policy.backoff_limit,
                                          "active_deadline_seconds": spec.active_deadline_seconds}
    return out
