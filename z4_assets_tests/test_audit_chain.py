"""The local audit chain and its delivery (issue 19), on their own: every way of rewriting history is
caught by verify, and delivery is ordered, bounded and loses nothing."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from z4_assets.core.audit import AuditTrail
from z4_assets_tests.audit_helpers import Receiver, audit_events, free_port


def _trail(tmp_path, n=20, url="") -> AuditTrail:
    trail = AuditTrail(tmp_path / "audit", audit_url=url, retries=2)
    ids = trail.ids(dagster_run_id="0f6d3c1e-5b7a-4c2e-9d11-8a3b2c1d0e9f", dataset="ds@s1")
    for i in range(n):
        trail.emit("gate.evaluated", {"gate": f"g{i}", "verdict": "PASS", "measured": i}, ids)
    return trail


def _lines(trail):
    return trail.chain.read_bytes().splitlines(keepends=True)


def test_an_untouched_chain_verifies(tmp_path):
    v = _trail(tmp_path).verify()
    assert v.ok and v.events == 20 and v.problems == []


@pytest.mark.parametrize("tamper,expected", [
    ("edit_middle", "does not follow"), ("remove_middle", "missing events"), ("swap", "does not follow"),
    ("edit_last", "head names"), ("remove_last", "head names"), ("duplicate", "reordered or repeated"),
    ("insert_foreign", "not a chained event"),
])
def test_every_rewrite_of_history_is_caught(tmp_path, tamper, expected):
    trail = _trail(tmp_path)
    lines = _lines(trail)
    if tamper == "edit_middle":
        lines[7] = lines[7].replace(b'"measured":7', b'"measured":8')
    elif tamper == "remove_middle":
        del lines[7]
    elif tamper == "swap":
        lines[7], lines[8] = lines[8], lines[7]
    elif tamper == "edit_last":
        lines[-1] = lines[-1].replace(b'"PASS"', b'"FAIL"')
    elif tamper == "remove_last":
        lines = lines[:-1]
    elif tamper == "duplicate":
        lines.insert(8, lines[7])
    elif tamper == "insert_foreign":
        lines.insert(3, b'{"type":"io.z4.factory.model.promoted"}\n')
    trail.chain.write_bytes(b"".join(lines))
    v = trail.verify()
    assert not v.ok and any(expected in p for p in v.problems), v.problems


def test_an_edit_with_recomputed_digests_still_breaks_at_the_head(tmp_path):
    """An attacker who edits an event and recomputes every digest after it, but cannot rewrite the head."""
    from z4_assets.core.audit._chain import GENESIS, PREV, encode, line_digest

    trail = _trail(tmp_path)
    events = [json.loads(x) for x in _lines(trail)]
    events[5]["data"]["verdict"] = "FAIL"
    prev, out = GENESIS, []
    for e in events:
        e[PREV] = prev
        line = encode(e)
        prev = line_digest(line)
        out.append(line)
    trail.chain.write_bytes(b"".join(out))
    v = trail.verify()
    assert not v.ok and any("head names" in p for p in v.problems), v.problems


def _forge(trail, edit) -> None:
    """Rewrite the chain AND its head consistently: EDIT(events) changes the history, every digest after
    it is recomputed and the head file rewritten, so the chain alone verifies."""
    from z4_assets.core.audit._chain import GENESIS, PREV, SEQ, Head, _write_head, encode, line_digest

    events = edit([json.loads(x) for x in _lines(trail)])
    prev, out = GENESIS, []
    for i, e in enumerate(events, start=1):
        e[PREV], e[SEQ] = prev, i
        line = encode(e)
        prev = line_digest(line)
        out.append(line)
    trail.chain.write_bytes(b"".join(out))
    _write_head(trail._path("head"), Head(len(out), prev, sum(len(x) for x in out)))


@pytest.mark.parametrize("forgery,expected", [
    ("edit", "is not the one MLflow run r1 recorded"), ("truncate", "the chain has no event 20"),
])
def test_a_chain_rewritten_with_its_head_verifies_alone_but_not_against_recorded_heads(tmp_path, forgery, expected):
    trail = _trail(tmp_path)
    recorded = [("MLflow run r1", trail.head()), ("MLflow run r0", "none")]  # what each run tagged
    assert trail.verify(recorded).ok and "1 head(s) recorded outside the chain agree" in trail.verify(recorded).note

    def edit(events):
        if forgery == "edit":
            events[5]["data"]["verdict"] = "FAIL"
            return events
        return events[:-3]

    _forge(trail, edit)
    assert trail.verify().ok, "the limit of a chain checked alone: a consistent rewrite verifies"
    v = trail.verify(recorded)
    assert not v.ok and any(expected in p for p in v.problems), v.problems
    bad = trail.verify([("MLflow run r2", "12:not-a-digest")])
    assert not bad.ok and "is not seq:sha256" in bad.problems[0]


def test_a_writer_that_died_mid_line_leaves_a_named_torn_line_and_later_events_chain(tmp_path):
    trail = _trail(tmp_path, n=3)
    with open(trail.chain, "ab") as f:
        f.write(b'{"id":"half-writ')
    trail.emit("stage.started", {"stage": "x"}, trail.ids(dagster_run_id="r"))
    v = trail.verify()
    assert not v.ok and any("line 4: not a chained event" in p for p in v.problems), v.problems
    assert v.events == 5 and json.loads(_lines(trail)[-1])["z4seq"] == 4


def test_concurrent_writers_keep_one_chain(tmp_path):
    """Every step of a run is its own process; here threads of one process hit the same lock file."""
    trail = AuditTrail(tmp_path / "audit")
    ids = trail.ids(dagster_run_id="r")
    threads = [threading.Thread(target=lambda k=k: [trail.emit("stage.started", {"k": k, "i": i}, ids)
                                                   for i in range(25)]) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    v = trail.verify()
    assert v.ok and v.events == 100


def test_a_sink_that_is_down_costs_bounded_time_and_keeps_everything_queued(tmp_path):
    trail = _trail(tmp_path, url=f"http://127.0.0.1:{free_port()}/events")  # nothing listens there
    started = time.monotonic()
    (report,) = trail.flush()
    assert time.monotonic() - started < 3 and report.error and report.delivered == 0
    assert trail.queued() == {"audit": 20}
    started = time.monotonic()
    (again,) = trail.flush(during_run=True)  # a run's next stage does not pay the retries again
    assert time.monotonic() - started < 0.5 and "not retried" in again.error


def test_a_sink_that_accepts_and_never_answers_is_cut_off_by_the_timeout(tmp_path):
    with socket.socket() as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(16)
        trail = _trail(tmp_path, n=3, url=f"http://127.0.0.1:{black_hole.getsockname()[1]}/events")
        trail = AuditTrail(trail.directory, trail.audit_url, retries=2)
        started = time.monotonic()
        (report,) = trail.flush()
        took = time.monotonic() - started
    assert report.error and report.queued == 3 and took < 2 * 2.0 + 1.5, took


def test_delivery_is_in_order_once_and_refusals_are_kept_not_retried(tmp_path):
    receiver = Receiver(free_port(), tmp_path / "got.jsonl").start()
    try:
        trail = _trail(tmp_path, n=5, url=receiver.audit_url)
        # a sixth event of another run: one chain for every run, delivered in the order it was written
        trail.emit("gate.evaluated", {"gate": "g5"}, trail.ids(dagster_run_id="r"))
        lines = _lines(trail)
        assert trail.flush()[0].delivered == 6
        got = audit_events(receiver.records())
        assert [e["id"] for e in got] == [json.loads(x)["id"] for x in lines]
        assert trail.flush()[0].delivered == 0 and len(receiver.records()) == 6
    finally:
        receiver.kill()


def test_a_permanent_refusal_is_logged_and_does_not_block_the_queue(tmp_path):
    receiver = Receiver(free_port(), tmp_path / "got.jsonl").start()
    try:
        trail = AuditTrail(tmp_path / "audit", audit_url=receiver.audit_url.replace("/events", "/wrong"))
        trail.emit("stage.started", {"stage": "x"}, trail.ids(dagster_run_id="r"))
        trail.emit("stage.started", {"stage": "y"}, trail.ids(dagster_run_id="r"))
        (report,) = trail.flush()
        assert report.rejected == 2 and report.delivered == 0 and trail.queued() == {"audit": 0}
        refused = [json.loads(x) for x in (tmp_path / "audit" / "rejected.audit.jsonl").read_text().splitlines()]
        assert [r["status"] for r in refused] == [400, 400]
    finally:
        receiver.kill()


def test_unknown_event_types_are_refused(tmp_path):
    trail = AuditTrail(tmp_path / "audit")
    with pytest.raises(ValueError, match="unknown audit event type"):
        trail.emit("model.smuggled", {}, trail.ids())
    assert not trail.chain.exists()


def test_actor_is_the_oidc_subject_when_given_else_the_os_user(tmp_path):
    assert AuditTrail(tmp_path, oidc_subject="repo:bank/z4:ref:refs/heads/main").actor().kind == "oidc_subject"
    assert AuditTrail(tmp_path).actor().kind == "os_user"


def test_the_other_sinks_events_never_move_a_down_sinks_cursor(tmp_path):
    """Found by the SIGKILL test: lineage events after an undelivered audit event advanced the audit
    cursor past it (lost). A sink that is down stops its flush where it is."""
    port = free_port()
    trail = AuditTrail(tmp_path / "audit", audit_url=f"http://127.0.0.1:{port}/events",
                       openlineage_url=f"http://127.0.0.1:{port}", retries=1)
    ids = trail.ids(dagster_run_id="0f6d3c1e-5b7a-4c2e-9d11-8a3b2c1d0e9f", dataset="ds@s1")
    from z4_assets.core.audit._lineage import run_event

    for i in range(3):
        trail.emit("gate.evaluated", {"gate": f"g{i}"}, ids)
        trail.emit("lineage.run", {"state": "START", "stage": f"s{i}",
                                   "run_event": run_event("START", ids.dagster_run_id, f"s{i}", [], [])}, ids)
    reports = trail.flush()
    assert all(r.error for r in reports) and trail.queued() == {"audit": 3, "lineage": 3}
    receiver = Receiver(port, tmp_path / "got.jsonl").start()
    try:
        assert [r.delivered for r in trail.flush()] == [3, 3]
        records = receiver.records()
        assert all(r["valid"] for r in records) and len(records) == 6
        assert [e["data"]["gate"] for e in audit_events(records)] == ["g0", "g1", "g2"]
    finally:
        receiver.kill()


def test_a_spent_time_budget_leaves_the_rest_queued_without_marking_the_sink_down(tmp_path):
    receiver = Receiver(free_port(), tmp_path / "got.jsonl").start()
    try:
        trail = _trail(tmp_path, n=30, url=receiver.audit_url)
        (report,) = trail.flush(budget_seconds=0.0)
        assert report.delivered == 0 and report.queued == 30 and not report.error
        assert trail.flush(during_run=True)[0].delivered == 30  # not paused as a down sink would be
    finally:
        receiver.kill()


def test_a_chain_file_replaced_by_a_symlink_is_never_written_through(tmp_path):
    trail = _trail(tmp_path, n=2)
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_bytes(trail.chain.read_bytes())
    trail.chain.unlink()
    trail.chain.symlink_to(elsewhere)
    before = elsewhere.read_bytes()
    with pytest.raises(OSError):
        trail.emit("stage.started", {"stage": "x"}, trail.ids(dagster_run_id="r"))
    assert elsewhere.read_bytes() == before


def test_heads_recorded_for_another_factory_roots_chain_are_not_compared(tmp_path):
    """Two factory roots may share an MLflow experiment: a head names its chain (z9.audit_chain) and
    `z4 audit verify --against-mlflow` compares only this chain's (and those recorded before heads
    named a chain)."""
    from z4_assets.cli.audit import mlflow_anchors
    from z4_assets.core.audit import CHAIN_TAG, HEAD_TAG
    from z4_assets.core.settings import Settings
    from z4_assets.core.tracking import RunRecorder

    trail = _trail(tmp_path)
    settings = Settings(mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", mlflow_experiment="z4-anchors")
    rec = RunRecorder(settings.mlflow_tracking_uri, settings.mlflow_experiment)
    tags = {"ours": {HEAD_TAG: trail.head(), CHAIN_TAG: trail.chain_id()},
            "older": {HEAD_TAG: trail.head()},
            "theirs": {HEAD_TAG: "3:" + "e" * 64, CHAIN_TAG: "/elsewhere/audit/events.jsonl"},
            "none": {}}
    ids = {name: rec.client.create_run(rec.experiment_id, run_name=name, tags=t).info.run_id for name, t in tags.items()}
    anchors, other = mlflow_anchors(settings, trail.chain_id())
    assert other == 1 and sorted(a[0] for a in anchors) == sorted(f"MLflow run {ids[n]}" for n in ("ours", "older"))
    assert trail.verify(anchors).ok


def test_against_mlflow_that_cannot_be_compared_is_one_line_never_a_pass(tmp_path):
    """An unreachable MLflow (its password never printed), a missing experiment, an experiment with no
    recorded head for a chain that has events: exit 2 and one line each, never "intact"."""
    import os
    import subprocess
    import sys

    from z4_assets.core.tracking import RunRecorder
    from z4_assets_tests.audit_helpers import free_port

    _trail(tmp_path / "factory", n=3)
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    RunRecorder(db, "z4-empty")  # an experiment in which no run recorded a head
    base = {k: v for k, v in os.environ.items() if not k.startswith(("Z4_", "MLFLOW_"))}
    base.update(Z4_FACTORY_ROOT=str(tmp_path / "factory"), MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    cases = {f"http://z9:pw-7c1e@127.0.0.1:{free_port()}": ("z4-model-factory", "cannot read the recorded audit heads"),  # pragma: allowlist secret
             db: ("z4-absent", "no MLflow experiment 'z4-absent'"),
             db + " ": ("z4-empty", "no run in MLflow recorded a head of this chain (3 events)")}
    for uri, (experiment, expected) in cases.items():
        proc = subprocess.run([sys.executable, "-m", "z4_assets.cli", "audit", "verify", "--against-mlflow"],
                              env={**base, "MLFLOW_TRACKING_URI": uri.strip(), "Z4_MLFLOW_EXPERIMENT": experiment},
                              capture_output=True, text=True, cwd=tmp_path, timeout=120)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("z4: ")]
        assert proc.returncode == 2 and len(errors) == 1 and expected in errors[0], proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr and "pw-7c1e" not in proc.stdout + proc.stderr
        assert "intact" not in proc.stdout
