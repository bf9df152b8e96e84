"""Lockfile consistency: every dependency pinned with hashes, and the pins match pyproject.toml.

An unpinned line, a missing hash, a pyproject requirement the lock does not satisfy or a runtime
pin that differs from the test lock makes the installed environment differ from the one tested.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from z4_assets.buildlane.result import FAIL, PASS, LaneResult

RUNTIME_LOCK = "requirements.lock"
TEST_LOCK = "requirements-test.lock"
TEST_EXTRAS = ("test", "ci")
# torch must be the CPU wheel: any other build pulls several GB of CUDA libraries.
LOCAL_LABELS = {"torch": "cpu"}
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})\b")


@dataclass
class Pin:
    name: str
    version: str
    hashes: frozenset[str]
    line: int


def parse_lock(path: Path) -> tuple[dict[str, Pin], list[str]]:
    """Pins by canonical name, and one problem string per line that is not `name==version --hash...`."""
    pins: dict[str, Pin] = {}
    problems: list[str] = []
    logical: list[tuple[int, str]] = []
    buf, start = "", 0
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not buf:
            start = n
        if text.endswith("\\"):
            buf += text[:-1] + " "
            continue
        buf += text
        if buf.strip():
            logical.append((start, buf.strip()))
        buf = ""
    for n, entry in logical:
        where = f"{path.name}:{n}"
        if entry.startswith("-"):
            problems.append(f"{where}: option line not allowed in a lock ({entry.split()[0]})")
            continue
        spec = entry.split(" --hash", 1)[0].strip()
        hashes = frozenset(_HASH.findall(entry))
        try:
            req = Requirement(spec)
        except InvalidRequirement:
            problems.append(f"{where}: not a requirement: {spec[:60]}")
            continue
        pinned = [s for s in req.specifier if s.operator == "=="]
        if req.url or len(req.specifier) != 1 or not pinned or "*" in pinned[0].version:
            problems.append(f"{where}: {req.name} is not pinned with == ({spec[:60]})")
            continue
        if not hashes:
            problems.append(f"{where}: {req.name}=={pinned[0].version} has no --hash=sha256")
        name = canonicalize_name(req.name)
        if name in pins:
            problems.append(f"{where}: {req.name} pinned twice")
        pins[name] = Pin(name, pinned[0].version, hashes, n)
    return pins, problems


def declared_requirements(pyproject: Path, extras: tuple[str, ...] = ()) -> list[Requirement]:
    doc = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    reqs = list(doc.get("dependencies", []))
    for extra in extras:
        reqs += doc.get("optional-dependencies", {}).get(extra, [])
    return [Requirement(r) for r in reqs]


def check_against_pyproject(pins: dict[str, Pin], reqs: list[Requirement], lock: str) -> list[str]:
    problems = []
    for req in reqs:
        if req.marker is not None and not req.marker.evaluate():
            continue
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            problems.append(f"{lock}: {req.name} is in pyproject.toml but not locked (run .ci/relock)")
        elif not req.specifier.contains(pin.version, prereleases=True):
            problems.append(
                f"{lock}: {req.name}=={pin.version} does not satisfy pyproject.toml's "
                f"'{req.specifier}' (run .ci/relock)"
            )
    for name, label in LOCAL_LABELS.items():
        pin = pins.get(name)
        try:
            local = Version(pin.version).local if pin else label
        except InvalidVersion:
            local = None
        if local != label:
            problems.append(f"{lock}: {name}=={pin.version} is not the +{label} build")
    return problems


def check_locks(root: Path) -> LaneResult:
    """The lock gate: both lockfiles parse, are fully pinned and hashed, and agree with pyproject."""
    pyproject = root / "pyproject.toml"
    problems: list[str] = []
    parsed = {}
    for lock, extras in ((RUNTIME_LOCK, ()), (TEST_LOCK, TEST_EXTRAS)):
        path = root / lock
        if not path.is_file():
            problems.append(f"{path}: lockfile missing (run .ci/relock)")
            continue
        pins, bad = parse_lock(path)
        parsed[lock] = pins
        problems += bad
        problems += check_against_pyproject(pins, declared_requirements(pyproject, extras), lock)
    if len(parsed) == 2:
        test = parsed[TEST_LOCK]
        for name, pin in parsed[RUNTIME_LOCK].items():
            other = test.get(name)
            if other is None or (other.version, other.hashes) != (pin.version, pin.hashes):
                found = f"{other.version}" if other else "absent"
                problems.append(
                    f"{RUNTIME_LOCK}:{pin.line}: {name}=={pin.version} differs from "
                    f"{TEST_LOCK} ({found}): the shipped environment is not the tested one"
                )
    if problems:
        return LaneResult("lock", FAIL, f"{len(problems)} lockfile problem(s): {problems[0]}", problems)
    counts = ", ".join(f"{k} {len(v)} pins" for k, v in parsed.items())
    return LaneResult(
        "lock", PASS, f"every dependency pinned with sha256, matching pyproject.toml ({counts})"
    )
