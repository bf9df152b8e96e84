"""The tools the factory starts for its own work (cyclonedx-py for the package's SBOM, git for the
code version) get its environment without the secrets: a vault-read MLflow password, the token PIN,
the pseudonymisation key or an audit URL with credentials never reach another process's environ."""

from __future__ import annotations

import subprocess

import pytest

from z4_assets.core.settings import SECRET_ENV, child_env

CANARY = "z4canary-child-env-7f1d"


@pytest.fixture
def spawned(monkeypatch):
    """Every child the code under test starts: its argv and the environment it was given (None: it
    inherits this process's whole environment). The child itself is not run."""
    seen = []

    def spy(argv, **kw):
        seen.append((list(argv), kw.get("env")))
        if kw.get("check"):
            raise subprocess.CalledProcessError(1, argv, "", "spied: not run")
        return subprocess.CompletedProcess(argv, 1, "", "spied: not run")

    for name in SECRET_ENV:
        monkeypatch.setenv(name, f"{CANARY}-{name}")
    monkeypatch.setattr(subprocess, "run", spy)
    return seen


def _clean(env) -> bool:
    return env is not None and not any(CANARY in v for v in env.values())


def test_cyclonedx_gets_no_secret(spawned, tmp_path):
    from z4_assets.core.errors import Z4Error
    from z4_assets.core.sbom import generate_sbom

    with pytest.raises(Z4Error, match="cyclonedx-py failed"):
        generate_sbom(tmp_path / "sbom.json")  # no cache: it must start cyclonedx-py
    (argv, env), = spawned
    assert "cyclonedx_py" in argv and _clean(env), sorted(k for k in (env or {}) if k in SECRET_ENV)
    assert env["PATH"], "the rest of the environment is kept"


def test_git_gets_no_secret(spawned):
    from z4_assets.core.provenance import _git

    assert _git("rev-parse", "HEAD") is None  # the spy's exit code 1 (check=True)
    (argv, env), = spawned
    assert argv[0] == "git" and _clean(env)


def test_child_env_drops_exactly_the_secret_variables():
    env = {"PATH": "/usr/bin", "HOME": "/root", **{k: "x" for k in SECRET_ENV}}
    assert child_env(env) == {"PATH": "/usr/bin", "HOME": "/root"}
