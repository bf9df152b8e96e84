"""What a user sees: the real dagster-webserver after a real run, driven by Debian's Chromium."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from z4_assets.core.z3 import list_snapshots
from z4_assets_tests.servers import free_port, wait_http

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
        "--disable-background-networking", "--disable-component-update"]
SHOTS = Path(__file__).resolve().parents[1] / "data" / "screenshots"


@pytest.fixture(scope="module")
def webserver(demo_project):
    assert demo_project["proc"].returncode == 0, demo_project["proc"].stderr[-2000:]
    port = free_port()
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
    """The one snapshot `z4 demo` registered and trained: its partition key."""
    (ref,) = list_snapshots(demo_project["path"] / "data" / "z3")
    return ref.label


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
