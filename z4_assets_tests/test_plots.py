"""Evidence plots: the drift figure, byte-stable PNGs and the metadata that shows them in the UI."""

from __future__ import annotations

import base64
import json
import re
import struct

import pytest

from z4_assets.core.hygiene import _drift_plot as drift_plot
from z4_assets.core.errors import Z4Error
from z4_assets.core.hygiene._checks import run_hygiene
from z4_assets.core.run_folder import FILES, RunFolder
from z4_assets.core.tracking import artifact_download_url
from z4_assets.core.validation import conform_dtypes
from z4_assets.evidence import MAX_INLINE_BYTES, image_markdown, plot_metadata
from z4_assets_tests.servers import free_port, start_mlflow_server, stop_group, wait_http

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every PNG chunk; fails on a truncated file."""
    assert png[:8] == PNG_MAGIC
    pos, out = 8, []
    while pos < len(png):
        (length,), kind = struct.unpack(">I", png[pos:pos + 4]), png[pos + 4:pos + 8]
        out.append((kind, png[pos + 8:pos + 8 + length]))
        pos += 12 + length
    assert pos == len(png) and out[-1][0] == b"IEND"
    return out


@pytest.fixture(scope="module")
def shifted(sample_df, contract, policy):
    """A baseline from 6000 sample rows, and a copy with LIMIT_BAL scaled and AGE shifted against it."""
    base = conform_dtypes(sample_df.head(6000), contract)
    accepted = run_hygiene(base, contract, policy, None)
    moved = base.copy()
    moved["LIMIT_BAL"] = moved["LIMIT_BAL"] * 1.5
    moved["AGE"] = moved["AGE"] + 3
    result = run_hygiene(moved, contract, policy, {"snapshot": "base@1", **accepted.profile})
    return {"base": base, "accepted": accepted, "moved": moved, "result": result}


def _folder(root, stage: str = "hygiene"):
    """A stage's evidence folder (core/run_folder names its files) in a run under ROOT."""
    return RunFolder(root, "plots-run").stage(stage)


def _drift_gate(result):
    return next(g for g in result.gates if g.name == "drift")


def test_drift_plot_flags_the_moved_features_and_is_byte_stable(shifted, contract, policy, tmp_path):
    result = shifted["result"]
    gate = _drift_gate(result)
    assert not gate.passed
    folder = _folder(tmp_path / "a")
    files = drift_plot.write_drift_plot(shifted["moved"], contract, result.split, gate.details,
                                        policy.hygiene, folder)
    again = drift_plot.write_drift_plot(shifted["moved"], contract, result.split, gate.details,
                                        policy.hygiene, _folder(tmp_path / "b"))
    png = files["drift_plot"].read_bytes()
    assert files == {"drift_plot": folder.drift_plot, "drift_data": folder.drift_data,  # the names run_folder gives
                     "drift_distributions": folder.drift_distributions}
    assert files["drift_plot"].name == FILES["hygiene"]["drift_plot"] == "drift_per_feature.png"
    assert png == again["drift_plot"].read_bytes()
    chunks = _chunks(png)
    kinds = [k for k, _ in chunks]
    assert b"tEXt" not in kinds and b"tIME" not in kinds  # no software version, no timestamp
    width, height = struct.unpack(">II", chunks[0][1][:8])
    assert width > 300 and height > 300
    assert len(png) <= MAX_INLINE_BYTES

    data = json.loads(files["drift_data"].read_text())
    assert data["flagged"] == ["AGE", "LIMIT_BAL"]
    assert set(data["features"][:2]) == {"AGE", "LIMIT_BAL"}  # most drifted first
    gated = next(s for s in data["series"] if s["gated"])
    assert gated["baseline"] == "base@1" and gated["name"] == drift_plot.BASELINE
    psi = dict(zip(data["features"], gated["psi"]))
    assert psi["LIMIT_BAL"] == gate.details["per_feature"]["LIMIT_BAL"]["psi"] > policy.hygiene.drift_psi_max
    assert max(v for f, v in psi.items() if f not in data["flagged"]) <= policy.hygiene.drift_psi_max
    assert len(data["features"]) == len(contract.candidate_features) and data["omitted"] == 0

    # per flagged feature, the reference and current distribution over the gate's own bins
    assert [d["feature"] for d in data["distributions"]] == sorted(data["flagged"], key=lambda f: -psi[f])
    limit = next(d for d in data["distributions"] if d["feature"] == "LIMIT_BAL")
    assert limit["labels"] == gate.details["per_feature"]["LIMIT_BAL"]["bins"]["labels"]
    assert limit["labels"][0].startswith("< ") and limit["labels"][-1].startswith("> ")  # the tails are bins
    assert limit["reference"][-1] == 0 < limit["current"][-1]  # x1.5: some rows now above the old maximum
    assert sum(limit["reference"]) == pytest.approx(1, abs=1e-4) and limit["comparison"] == drift_plot.BASELINE
    dist = files["drift_distributions"].read_bytes()
    assert dist == again["drift_distributions"].read_bytes() and _chunks(dist)[0][0] == b"IHDR"
    assert len(dist) <= MAX_INLINE_BYTES


def test_without_a_baseline_the_plot_shows_test_against_train_and_flags_nothing(shifted, contract, policy,
                                                                                 tmp_path):
    accepted = shifted["accepted"]
    gate = _drift_gate(accepted)
    assert gate.details == {"baseline": None, "method": "factory"}
    assert gate.verdict == "INSUFFICIENT_EVIDENCE" and gate.value is None and gate.passed  # measured nothing
    files = drift_plot.write_drift_plot(shifted["base"], contract, accepted.split, gate.details,
                                        policy.hygiene, _folder(tmp_path))
    data = json.loads(files["drift_data"].read_text())
    assert [s["name"] for s in data["series"]] == [drift_plot.SPLIT]
    assert data["flagged"] == [] and data["over_threshold_split"] == []
    assert all(v is not None and 0 <= v < 0.05 for v in data["series"][0]["psi"])  # a random split barely drifts
    assert _chunks(files["drift_plot"].read_bytes())[0][0] == b"IHDR"


def test_figure_data_orders_caps_and_flags_on_kl_too(tmp_path):
    gated = {f"f{i:02d}": {"psi": i / 100, "kl": 0.0} for i in range(50)}
    gated["f03"]["kl"] = 0.9  # PSI low, KL over its threshold: the gate fails on it
    split = {"f49": {"psi": 0.4, "kl": 0.0}}
    data = drift_plot.figure_data(gated, split, psi_max=0.25, kl_max=0.25, baseline_label="d@1")
    assert data["features"][:2] == ["f49", "f48"] and len(data["features"]) == drift_plot.MAX_FEATURES
    assert "f03" in data["features"][:25] and "f25" not in data["features"][:25]  # every flagged one first
    assert data["omitted"] == 50 - drift_plot.MAX_FEATURES
    assert data["flagged"] == sorted([f"f{i:02d}" for i in range(26, 50)] + ["f03"])
    assert data["over_threshold_split"] == ["f49"]
    assert data["series"][1]["psi"][:2] == [0.4, None]  # f48 has no split value
    png = drift_plot.render(data, tmp_path / "capped.png").read_bytes()  # None and a capped list still draw
    assert _chunks(png)[0][0] == b"IHDR" and len(png) <= MAX_INLINE_BYTES


def test_existing_evidence_plots_render_byte_stable(tmp_path):
    from z4_assets.core.fairness._plots import plot_attribute
    from z4_assets.core.security._evasion import plot_curve

    curve = {"rows": 100, "gate_epsilon": 0.1, "clean": {"accuracy": 0.8, "auc": 0.75},
             "curve": [{"epsilon": e, "fgsm_accuracy": 0.8 - e, "pgd_accuracy": 0.8 - 2 * e,
                        "fgsm_auc": 0.75 - e, "pgd_auc": 0.75 - 2 * e} for e in (0.05, 0.1, 0.2)]}
    plot_curve(curve, tmp_path / "a.png")
    plot_curve(curve, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    group = {m: 0.6 for m in ("auc", "ks", "selection_rate", "tpr", "fpr", "precision")}
    group.update({f"{m}_ci": [0.5, 0.7] for m in group})
    assessed = {"groups": {"SEX=1": {"status": "ok", "count": 900, **group},
                           "SEX=2": {"status": "insufficient", "count": 3}}}
    first = plot_attribute("SEX", assessed, _folder(tmp_path / "x", "fairness"), 0.95)
    one = first.read_bytes()
    two = plot_attribute("SEX", assessed, _folder(tmp_path / "y", "fairness"), 0.95).read_bytes()
    assert first == _folder(tmp_path / "x", "fairness").dir / "fairness_SEX.png"  # in the fairness folder
    assert one == two and b"tEXt" not in [k for k, _ in _chunks(one)]


def test_image_markdown_is_a_data_uri_of_the_file_and_respects_the_size_bound(shifted, contract, policy,
                                                                               tmp_path):
    result = shifted["result"]
    png = drift_plot.write_drift_plot(shifted["moved"], contract, result.split, _drift_gate(result).details,
                                      policy.hygiene, _folder(tmp_path))["drift_plot"]
    md = image_markdown(png, "Drift per feature").value
    m = re.fullmatch(r"\*\*Drift per feature\*\*\n\n"
                     r"!\[Drift per feature\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", md)
    assert m, md[:200]
    assert base64.b64decode(m.group(1), validate=True) == png.read_bytes()

    small = image_markdown(png, "Drift", max_bytes=1000).value
    assert "data:image" not in small and str(png) in small and "inline limit" in small

    not_png = tmp_path / "plot.png"
    not_png.write_text("hello")
    with pytest.raises(Z4Error, match=r"plot\.png: not a PNG"):
        image_markdown(not_png, "x")


def test_plot_metadata_keeps_the_path_and_adds_the_image_and_the_link(tmp_path):
    from z4_assets.core.plots import figure, save_png

    with figure(figsize=(2, 2)) as (fig, ax):
        ax.plot([0, 1], [0, 1])
        path = save_png(fig, tmp_path / "p.png", 50)
    url = artifact_download_url("http://user:secret@127.0.0.1:5000/", "abc123", "reports/hygiene/p.png")
    assert url == "http://127.0.0.1:5000/get-artifact?path=reports%2Fhygiene%2Fp.png&run_uuid=abc123"
    meta = plot_metadata("drift", path, "Drift", url)
    assert set(meta) == {"drift", "drift_image", "drift_mlflow"}
    assert meta["drift"].value == str(path) and meta["drift_mlflow"].value == url
    assert "data:image/png;base64," in meta["drift_image"].value
    assert set(plot_metadata("drift", path, "Drift", None)) == {"drift", "drift_image"}
    assert artifact_download_url("sqlite:///tmp/mlflow.db", "abc123", "p.png") is None


def test_the_mlflow_link_opens_the_logged_plot_on_a_real_server(tmp_path):
    """A real `mlflow server` on 127.0.0.1: the link in the metadata returns the PNG's bytes."""
    import urllib.request

    from z4_assets.core.plots import figure, save_png
    from z4_assets.resources.tracking import StageRecord

    with figure(figsize=(2, 2)) as (fig, ax):
        ax.bar([0, 1], [1, 2])
        png = save_png(fig, tmp_path / "evidence" / "drift_per_feature.png", 50)
    port = free_port()
    proc = start_mlflow_server(tmp_path, port, tmp_path / "mlflow.log")
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{uri}/health", proc, tmp_path / "mlflow.log", "mlflow server")
        from z4_assets.core.tracking import RunRecorder

        recorder = RunRecorder(uri, "plots")
        run_id = recorder.client.create_run(recorder.experiment_id).info.run_id
        record = StageRecord(recorder, run_id)
        record.artifacts(png.parent, "reports/hygiene")
        url = record.artifact_url("reports/hygiene/drift_per_feature.png")
        meta = plot_metadata("drift_per_feature", png, "Drift", url)
        with urllib.request.urlopen(meta["drift_per_feature_mlflow"].value, timeout=30) as resp:
            assert resp.read() == png.read_bytes()
    finally:
        stop_group(proc)
