"""Scale-out on Kubernetes: one pod per step, every image pinned by digest, every pod locked down.

Local runs are untouched: `model_factory` keeps the in-process executor unless Z4_EXECUTOR=k8s
(set by the Helm values in deploy/), and nothing here imports dagster-k8s until then.
"""

from z4_assets.core.errors import Z4Error
from z4_assets.core.settings import Settings


def factory_executor():
    """The in-process executor (the embedded default), or the digest-pinned k8s executor."""
    import dagster as dg

    mode = Settings.from_env().executor
    if mode == "in_process":
        return dg.in_process_executor
    if mode == "k8s":
        from z4_assets.k8s.executor import z4_k8s_executor

        return z4_k8s_executor
    raise Z4Error(f"Z4_EXECUTOR={mode!r}: expected in_process (default) or k8s")
