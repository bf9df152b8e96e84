"""Links between the Dagster UI and the MLflow UI, built from the two base URLs in the settings.

A link never carries credentials: a base URL with user:password@ is shown and linked without them.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"   # where `mlflow ui` listens by default


def _base(url: str) -> str:
    from z4_assets.core.tracking import redact_uri

    return redact_uri(url).replace("***@", "").rstrip("/")


def mlflow_ui_base(mlflow_url: str, tracking_uri: str) -> str:
    """The MLflow UI: the setting, else an http(s) tracking server (it serves the UI), else `mlflow ui`'s default."""
    if mlflow_url:
        return _base(mlflow_url)
    if urlsplit(tracking_uri or "").scheme in ("http", "https"):
        return _base(tracking_uri)
    return DEFAULT_MLFLOW_UI


def dagster_run_url(dagster_url: str, run_id: str) -> str:
    return f"{_base(dagster_url)}/runs/{quote(run_id, safe='')}"


def dagster_asset_url(dagster_url: str, asset: str, partition: str) -> str:
    """An asset's page opened on one partition (its materialization, checks and metadata for that snapshot)."""
    return f"{_base(dagster_url)}/assets/{quote(asset, safe='')}?view=partitions&partition={quote(partition, safe='')}"


def mlflow_run_url(mlflow_ui: str, experiment_id: str, run_id: str) -> str:
    return f"{_base(mlflow_ui)}/#/experiments/{quote(str(experiment_id), safe='')}/runs/{quote(run_id, safe='')}"


def mlflow_experiment_url(mlflow_ui: str, experiment_id: str) -> str:
    return f"{_base(mlflow_ui)}/#/experiments/{quote(str(experiment_id), safe='')}/runs"


def registry_version_url(mlflow_ui: str, model: str, version: str | int) -> str:
    return f"{_base(mlflow_ui)}/#/models/{quote(model, safe='')}/versions/{quote(str(version), safe='')}"


VERDICT_ASSET = "verdict"   # the Dagster asset holding each snapshot's verdict page (z4_assets/verdict_page.py)


def run_description(partition: str, dagster_url: str, dagster_run_id: str, job_name: str) -> str:
    """An MLflow run's description (Markdown): clickable links to its Dagster run and the snapshot's verdict page."""
    verdict = dagster_asset_url(dagster_url, VERDICT_ASSET, partition)
    return (f"**{job_name}** on snapshot `{partition}`  \n"
            f"Dagster run: [{dagster_run_id}]({dagster_run_url(dagster_url, dagster_run_id)})  \n"
            f"Verdict page: [{VERDICT_ASSET} of {partition}]({verdict})")
