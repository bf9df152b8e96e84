"""What a user sees: the real dagster-webserver after a real run, driven by Debian's Chromium."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from z4_assets.core.z3 import list_snapshots
from z4_assets_tests.servers import start_mlflow_server, stop_group, wait_http

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
        "--disable-background-networking", "--disable-component-update"]
SHOTS = Path(__file__).resolve().parents[1] / "data" / "screenshots"


@pytest.fixture(scope="module")
def webserver(demo_project):
    assert demo_project["proc"].returncode == 0, demo_project["proc"].stderr[-2000:]
    port = demo_project["ports"]["dagster"]  # the address the run's links were made with (Z4_DAGSTER_URL)
    log = open(demo_project["path"] / "webserver.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port),
                             "-w", "workspace.yaml"], cwd=demo_project["path"], env=demo_project["env"],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/server_info", proc, demo_project["path"] / "webserver.log", "dagster-webserver")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def partition(demo_project) -> str:
    """The snapshot `z4 demo` registered and trained (the oldest: a later test adds a blocked one)."""
    return list_snapshots(demo_project["path"] / "data" / "z3")[0].label


def _partition_page(base: str, asset: str, key: str) -> str:
    """The asset's page for one partition: its materialization and metadata for that snapshot."""
    return f"{base}/assets/{asset}?view=partitions&partition={quote(key, safe='')}"


def _sink_covering_all(graph) -> str:
    """The asset whose upstream lineage holds every other asset (the job's last step)."""
    keys = set(graph.get_all_asset_keys())

    def ancestors(key, seen):
        for parent in graph.get(key).parent_keys:
            if parent not in seen:
                seen.add(parent)
                ancestors(parent, seen)
        return seen

    for key in keys:
        if ancestors(key, {key}) == keys:
            return key.to_user_string()
    raise AssertionError("no asset has every other asset upstream")


def _open(page, url: str, wait_for: str) -> str:
    page.goto(url)
    skip = page.get_by_role("button", name="Skip")  # the community pop-up of a new profile
    page.get_by_text(wait_for).first.wait_for(timeout=60_000)
    if skip.count():
        skip.first.click()
    page.wait_for_timeout(1500)
    return page.inner_text("body")


def test_asset_graph_and_evidence_pages_show_every_asset_and_check(webserver, partition):
    from playwright.sync_api import sync_playwright

    from z4_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    assets = sorted(k.to_user_string() for k in graph.get_all_asset_keys())
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 2400, "height": 1200})

        text = _open(page, f"{webserver}/assets", "trained_model")
        for name in assets:
            assert name in text, f"catalog does not list {name}"

        last = _sink_covering_all(graph)
        page.goto(f"{webserver}/assets/{last}?view=lineage&lineageScope=upstream&lineageDepth={len(assets)}")
        page.get_by_text("z3_snapshot").first.wait_for(timeout=60_000)
        page.wait_for_timeout(4000)
        text = page.inner_text("body")
        page.screenshot(path=str(SHOTS / "asset_graph.png"))
        for name in assets:
            assert name in text, f"asset graph does not show {name}"

        by_asset: dict[str, list[str]] = {}
        for key in graph.asset_check_keys:
            by_asset.setdefault(key.asset_key.to_user_string(), []).append(key.name)
        for asset, names in sorted(by_asset.items()):
            text = _open(page, f"{webserver}/assets/{asset}?view=checks", sorted(names)[0])
            if asset == "hygiene_report":
                page.screenshot(path=str(SHOTS / "hygiene_checks.png"))
            for name in names:
                assert name in text, f"{asset}: check {name} not shown"
            assert f"Checks ({len(names)})" in text
            assert text.count("Succeeded") >= len(names), f"{asset}: not every check shows Succeeded"
            assert "Failed" not in text
            assert "This is a blocking asset check" in text and "threshold" in text and "measured" in text

        text = _open(page, _partition_page(webserver, "trained_model", partition), "state_dict_sha256")
        page.screenshot(path=str(SHOTS / "trained_model.png"), full_page=True)
        assert "mlflow_run_id" in text and "test_auc" in text and "lineage" in text
        assert partition in text and "Materialized (1)" in text and "Failed (0)" in text
        browser.close()
    assert (SHOTS / "asset_graph.png").stat().st_size > 20_000


# asset -> (metadata key of the inline plot, file name of the PNG the path entry points at)
PLOTS = {"hygiene_report": ("drift_per_feature_image", "drift_per_feature.png"),
         "adversarial_eval": ("robustness_curve_image", "robustness_curve.png"),
         "fairness_report": ("plot_AGE_image", "fairness_AGE.png")}


def test_evidence_plots_open_as_images_on_the_partition_pages(webserver, partition):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1800, "height": 1200})
        for asset, (key, png) in PLOTS.items():
            text = _open(page, _partition_page(webserver, asset, partition), key)
            assert partition in text, f"{asset}: the page is not the partition's"
            assert png in text, f"{asset}: no metadata entry with the path of {png}"
            page.locator("tr", has_text=key).last.get_by_text("[Show Markdown]").click()
            dialog = page.get_by_role("dialog")
            img = dialog.locator("img").first
            img.wait_for(timeout=30_000)
            page.wait_for_function("e => e.complete", arg=img.element_handle(), timeout=30_000)
            width, height, src = img.evaluate("e => [e.naturalWidth, e.naturalHeight, e.src.slice(0, 22)]")
            assert src == "data:image/png;base64,", f"{asset}: {key} is not an inline PNG"
            assert width > 300 and height > 200, f"{asset}: {key} did not load ({width}x{height})"
            dialog.screenshot(path=str(SHOTS / f"{asset}_plot.png"))
            page.screenshot(path=str(SHOTS / f"{asset}_page.png"))  # the metadata table behind the plot
            dialog.get_by_role("button", name="Close").click()
            dialog.wait_for(state="hidden")
        browser.close()
    for asset in PLOTS:
        assert (SHOTS / f"{asset}_plot.png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def mlflow_ui(demo_project):
    """A real `mlflow server` over the demo's store, at the address its links were made with (Z4_MLFLOW_URL)."""
    home, port = demo_project["path"], demo_project["ports"]["mlflow"]
    proc = start_mlflow_server(home, port, home / "mlflow-server.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc, home / "mlflow-server.log", "mlflow server")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_group(proc)


@pytest.fixture(scope="module")
def blocked(demo_project, partition):
    """A second snapshot of the sample with 5% of its rows duplicated (new ids), through `z4 run`:
    duplicate_rows blocks it at hygiene, and `z4 run` launches the cleanup job for it."""
    import re

    import numpy as np
    import pandas as pd

    from z4_assets.cli.runs import SAMPLE

    home, env = demo_project["path"], demo_project["env"]
    df = pd.read_csv(SAMPLE / "data.csv")
    dup = df.sample(frac=0.05, random_state=3).copy()
    dup["ID"] = np.arange(len(df) + 1, len(df) + 1 + len(dup))
    pd.concat([df, dup]).to_csv(home / "dupes.csv", index=False)
    cli = [sys.executable, "-m", "z4_assets.cli"]
    add = subprocess.run([*cli, "snapshot", "add", "--dataset-id", "taiwan_credit_default", "--contract",
                          str(SAMPLE / "contract.yaml"), "--dataset-config", str(SAMPLE / "dataset.yaml"),
                          str(home / "dupes.csv")], cwd=home, env=env, capture_output=True, text=True, timeout=300)
    assert add.returncode == 0, add.stdout + add.stderr
    key = list_snapshots(home / "data" / "z3")[-1].label
    assert key != partition
    run = subprocess.run([*cli, "run", "--dataset-id", "taiwan_credit_default", "--snapshot-id", key.split("@")[1]],
                         cwd=home, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    run_id = re.search(r"run (\S+) failed: cleaning it up", run.stdout).group(1)
    return {"partition": key, "run_id": run_id}


def _browser(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=ARGS)


def test_a_blocked_runs_page_and_the_catalog_show_the_gate_and_its_measured_value(webserver, blocked, partition):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 2000, "height": 1300})
        text = _open(page, f"{webserver}/runs/{blocked['run_id']}", "RUN_FAILURE")
        page.screenshot(path=str(SHOTS / "blocked_run.png"))
        assert f"BLOCKED: hygiene_report of {blocked['partition']} did not pass 1 gate(s)" in text
        assert "duplicate_rows FAIL: measured 0.04873, must be <= 0.01" in text, text[-3000:]
        assert "DagsterAssetCheckFailedError" not in text

        # the catalog: the snapshot's verdict page names the gate, its measured value and threshold
        text = _open(page, _partition_page(webserver, "verdict", blocked["partition"]), "decision_summary")
        page.screenshot(path=str(SHOTS / "blocked_verdict_metadata.png"), full_page=True)
        assert "BLOCKED (hygiene_report)" in text and blocked["partition"] in text
        page.locator("tr", has_text="verdict").filter(has_text="[Show Markdown]").first.get_by_text(
            "[Show Markdown]").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Verdict: BLOCKED by hygiene_report").wait_for(timeout=30_000)
        shown = dialog.inner_text()
        dialog.screenshot(path=str(SHOTS / "blocked_verdict_page.png"))
        assert "duplicate_rows" in shown and "0.04873" in shown and "0.01" in shown and "offending: ids" in shown
        assert "skipped: hygiene_report did not pass in this run" in shown
        dialog.get_by_role("button", name="Close").click()

        # the blocking asset reads differently from the ones skipped because of it, for that partition
        text = _open(page, _partition_page(webserver, "hygiene_report", blocked["partition"]), "Latest materialization")
        page.screenshot(path=str(SHOTS / "blocked_hygiene_partition.png"), full_page=True)
        assert f"Run\n{blocked['run_id'][:8]}" in text and "did not materialize" not in text  # materialized, checks failed
        text = _open(page, _partition_page(webserver, "trained_model", blocked["partition"]), "Latest materialization")
        page.screenshot(path=str(SHOTS / "skipped_trained_model_partition.png"), full_page=True)
        assert f"Run {blocked['run_id'][:8]} failed, and did not materialize this asset." in text
        browser.close()


def _metadata_link(page, key: str) -> str:
    """The href of a URL metadata entry KEY on the open page."""
    row = page.locator("tr", has=page.get_by_text(key, exact=True)).first
    return row.locator("a[href^='http']").first.get_attribute("href")


def test_the_verdict_pages_links_open_their_targets(webserver, mlflow_ui, partition, blocked, demo_project):
    from mlflow.tracking import MlflowClient
    from playwright.sync_api import sync_playwright

    client = MlflowClient(f"sqlite:///{demo_project['path'] / 'mlflow.db'}")
    (version,) = client.search_model_versions("name = 'z4-taiwan_credit_default'")
    mlflow_run = client.get_run(version.run_id)
    dagster_run = mlflow_run.data.tags["dagster.run_id"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 2000, "height": 1300})
        text = _open(page, _partition_page(webserver, "verdict", partition), "decision_summary")
        page.screenshot(path=str(SHOTS / "verdict_page.png"), full_page=True)
        assert "PROMOTED" in text
        links = {k: _metadata_link(page, k) for k in ("dagster_run_url", "mlflow_run_url", "registry_version_url",
                                                      "mlflow_runs_url")}
        assert links["dagster_run_url"] == f"{webserver}/runs/{dagster_run}"
        assert links["mlflow_run_url"].startswith(mlflow_ui) and links["registry_version_url"].startswith(mlflow_ui)

        target = browser.new_page(viewport={"width": 2000, "height": 1300})
        text = _open(target, links["dagster_run_url"], "RUN_SUCCESS")
        target.screenshot(path=str(SHOTS / "link_dagster_run.png"))
        assert dagster_run[:8] in text and "model_factory" in text and partition in text

        text = _open(target, links["mlflow_run_url"], mlflow_run.info.run_name)
        target.screenshot(path=str(SHOTS / "link_mlflow_run.png"))
        assert "Verdict: PROMOTED" in text  # its description; and it links back to the Dagster run
        back = target.locator(f"a[href='{webserver}/runs/{dagster_run}']")
        assert back.count() >= 1, "the MLflow run's description does not link its Dagster run"

        text = _open(target, links["registry_version_url"], "Decision: PASS")
        target.screenshot(path=str(SHOTS / "link_registry_version.png"))
        assert f"Version {version.version}" in text and version.tags["package_sha256"] in text
        assert target.locator(f"a[href='{webserver}/runs/{dagster_run}']").count() >= 1

        text = _open(target, links["mlflow_runs_url"], mlflow_run.info.run_name)
        assert "Training runs" in text  # a model-training experiment opens on its runs, not on traces
        browser.close()


def _close_assistant(page) -> None:
    close = page.get_by_role("button", name="Close")
    if close.count():
        close.first.click()


def test_the_mlflow_runs_view_shows_the_decision_column(mlflow_ui, blocked):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 2400, "height": 1300})
        text = _open(page, f"{mlflow_ui}/#/experiments/1/runs", "z4-taiwan_credit_default")
        assert "policy_decision" in text  # the experiment's description says which columns to add
        _close_assistant(page)
        page.get_by_role("button", name="Columns").click()
        for name in ("policy_decision", "z4.blocked_by", "dagster_partition"):
            page.get_by_placeholder("Search columns").fill(name)
            page.locator(f"span[title='{name}']").first.click()
        page.keyboard.press("Escape")
        header = page.get_by_role("columnheader", name="policy_decision")
        header.first.wait_for(timeout=30_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(SHOTS / "mlflow_runs_decision_column.png"))
        cells = page.get_by_role("gridcell")
        texts = {cells.nth(i).inner_text().strip() for i in range(cells.count())}
        assert {"PASS", "FAIL", "duplicate_rows", blocked["partition"]} <= texts, sorted(texts)[:40]
        browser.close()


def test_the_fairness_plot_on_its_page_carries_the_threshold_lines(webserver, partition):
    import base64
    import io

    import numpy as np
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from z4_assets.core.fairness._plots import THRESHOLD_COLOUR

    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1800, "height": 1200})
        _open(page, _partition_page(webserver, "fairness_report", partition), "plot_AGE_image")
        page.locator("tr", has_text="plot_AGE_image").last.get_by_text("[Show Markdown]").click()
        img = page.get_by_role("dialog").locator("img").first
        img.wait_for(timeout=30_000)
        src = img.get_attribute("src")
        page.get_by_role("dialog").screenshot(path=str(SHOTS / "fairness_plot_thresholds.png"))
        browser.close()
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")).astype(int)
    rgb = np.array([int(THRESHOLD_COLOUR[i:i + 2], 16) for i in (1, 3, 5)])
    red = (np.abs(pixels - rgb).max(axis=-1) <= 12)
    rows = np.flatnonzero(red.sum(axis=1) > 60)  # a horizontal line across a panel: many pixels on one row
    assert len(rows) >= 5, f"threshold lines found on {len(rows)} rows"
