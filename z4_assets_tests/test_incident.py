"""Runbooks for every gate, and one incident per blocked or crashed run, delivered to a real receiver."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from z4_assets.core.incident import CRASH, GATE, TIMEOUT, build_incident, classify, open_incident, post_json
from z4_assets.core.run_folder import RunFolder
from z4_assets.core.runbooks import FAILURE_KINDS, ROOT, failure_runbook, gate_runbook
from z4_assets.core.stages import all_gate_names
from z4_assets.jobs import cleanup_job
from z4_assets.sensors.failures import cleanup_on_failure
from z4_assets_tests.conftest import with_duplicate_rows, check_metadata, check_verdicts, run_factory
from z4_assets_tests.servers import free_port

ENTRY = ("**Means:**", "**Check first", "**Fix", "Exception")


def _anchors(md: Path) -> dict[str, str]:
    """heading anchor (GitHub's rule for these plain headings) -> the entry's text."""
    parts = re.split(r"^## (.+)$", md.read_text(), flags=re.M)
    return {re.sub(r"[^a-z0-9_ -]", "", h.strip().lower()).replace(" ", "-"): " ".join(body.split())
            for h, body in zip(parts[1::2], parts[2::2])}


def resolves(link: str) -> str:
    path, _, anchor = link.partition("#")
    anchors = _anchors(ROOT / path)
    assert anchor in anchors, f"{link}: no heading {anchor!r} in {path}"
    return anchors[anchor]


def test_every_gate_of_the_stage_table_and_every_failure_kind_has_a_runbook_entry():
    assert len(all_gate_names()) == 36
    for gate in all_gate_names():
        body = resolves(gate_runbook(gate))
        assert body.startswith("**Means:**") and "Check first" in body and "Fix" in body and \
            ("Exception" in body or "as [" in body), (gate, body)
    for kind in FAILURE_KINDS:
        body = resolves(failure_runbook(kind))
        assert all(e in body for e in ENTRY), (kind, body)
    with pytest.raises(AssertionError):  # the check itself can fail
        resolves("docs/runbooks/security.md#no_such_gate")


class Receiver:
    """A real HTTP receiver on 127.0.0.1 that answers 503 to its first FAIL_FIRST posts (REFUSE: 400 to all)."""

    def __init__(self, fail_first: int = 0, refuse: bool = False):
        self.bodies, self.attempts, self.fail_first, self.auth = [], 0, fail_first, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                outer.attempts += 1
                outer.auth.append(self.headers.get("Authorization"))
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if refuse or outer.attempts <= outer.fail_first:
                    self.send_response(400 if refuse else 503)
                    self.end_headers()
                    return
                outer.bodies.append((self.headers["Idempotency-Key"], json.loads(body)))
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/issues"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver(fail_first=2)
    yield r
    r.close()


def _cleanup(instance, run_id, resources):
    (entry,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(sensor_name=cleanup_on_failure.name, dagster_event=entry.dagster_event,
                                                 dagster_instance=instance, dagster_run=instance.get_run_by_id(run_id))
    request = cleanup_on_failure(context)
    return cleanup_job.execute_in_process(run_config=request.run_config, resources=resources, instance=instance,
                                          tags=request.tags, raise_on_error=False)


def test_a_blocked_run_opens_exactly_one_incident_delivered_to_the_receiver(
        sample_df, register, factory_resources, instance, receiver, monkeypatch):
    monkeypatch.setenv("Z4_INCIDENT_URL", receiver.url)
    ref = register(with_duplicate_rows(sample_df.iloc[:6000]))
    failed = run_factory(factory_resources, partition=ref.label, instance=instance)
    assert not failed.success and check_verdicts(failed)["duplicate_rows"] is False
    meta = check_metadata(failed, "duplicate_rows")
    assert meta["runbook"] == "docs/runbooks/hygiene.md#duplicate_rows"
    resolves(meta["runbook"])

    assert _cleanup(instance, failed.run_id, factory_resources).success
    assert _cleanup(instance, failed.run_id, factory_resources).success  # a second cleanup of the same run

    assert receiver.attempts == 3 and len(receiver.bodies) == 1, "2 refused + 1 delivered, then nothing more"
    key, posted = receiver.bodies[0]
    assert key == f"z4-incident-{failed.run_id}"
    folder = factory_resources["storage"].folder(failed.run_id)
    record = json.loads((folder.run_dir / "incident" / "incident.json").read_text())
    assert record["delivery"]["status"] == "delivered" and record["delivery"]["attempts"] == 3
    assert {k: v for k, v in record.items() if k != "delivery"} == {k: v for k, v in posted.items() if k != "delivery"}
    assert (record["kind"], record["gate"], record["snapshot"], record["run_id"]) == \
        (GATE, "duplicate_rows", ref.label, failed.run_id)
    assert record["measured"] == meta["measured"] and record["threshold"] == meta["threshold"]
    assert record["runbook"] == meta["runbook"]
    assert "hygiene/hygiene_report.json" in record["evidence"]
    assert all((folder.run_dir / e).is_file() for e in record["evidence"])
    assert record["links"]["dagster_run"].endswith(f"/runs/{failed.run_id}")
    assert [g["gate"] for g in record["gates"]] == [g for g, ok in check_verdicts(failed).items() if not ok]


def test_a_crashed_run_opens_a_crash_incident_without_a_receiver(sample_df, register, factory_resources, instance,
                                                                 monkeypatch):
    monkeypatch.delenv("Z4_INCIDENT_URL", raising=False)
    ref = register(sample_df.iloc[:500])
    failed = run_factory(factory_resources, partition=f"no_such_dataset@{ref.snapshot_id}", instance=instance)
    assert not failed.success
    assert _cleanup(instance, failed.run_id, factory_resources).success
    record = json.loads((factory_resources["storage"].folder(failed.run_id).run_dir / "incident" /
                         "incident.json").read_text())
    assert record["kind"] == CRASH and record["gate"] is None and record["measured"] is None
    assert record["step_errors"][0]["step"] == "z3_snapshot"
    assert "unknown dataset id 'no_such_dataset'" in record["step_errors"][0]["message"]
    assert record["runbook"] == "docs/runbooks/failures.md#crash" and record["delivery"]["status"] == "not configured"
    resolves(record["runbook"])


def test_a_receiver_that_is_down_gets_bounded_attempts_and_the_record_stays(tmp_path):
    folder = RunFolder(tmp_path, "r1")
    url = f"http://127.0.0.1:{free_port()}/issues"  # nothing listens
    record = build_incident(folder, "d@s", [{"step": "x", "error_class": "StepTimedOut", "message": "m"}], {})
    assert record["kind"] == TIMEOUT and record["runbook"] == "docs/runbooks/failures.md#time-out"
    out, new = open_incident(folder, record, url, attempts=3, backoff=0.01)
    assert new and out["delivery"]["status"] == "failed" and out["delivery"]["attempts"] == 3
    assert json.loads((tmp_path / "runs" / "r1" / "incident" / "incident.json").read_text())["kind"] == TIMEOUT
    again, new = open_incident(folder, record, url, attempts=3, backoff=0.01)
    assert not new and again == out, "one incident per run: a second call returns the first"


def test_a_refused_record_is_not_retried_and_credentials_never_reach_the_record():
    r = Receiver(refuse=True)
    try:
        url = r.url.replace("http://", "http://user:s3cret@")
        out = post_json(url, {"run_id": "r"}, attempts=4, backoff=0.01, timeout=5)
    finally:
        r.close()
    assert out["status"] == "failed" and out["attempts"] == 1 and out["errors"] == ["HTTP 400"]
    assert r.attempts == 1 and r.auth == ["Basic dXNlcjpzM2NyZXQ="]  # pragma: allowlist secret (sent once, as a header)
    assert "s3cret" not in json.dumps(out) and out["to"].startswith("http://***@127.0.0.1")  # pragma: allowlist secret


def test_classify_prefers_a_gate_then_a_time_out_then_a_crash():
    gate = {"gate": "drift"}
    assert classify([gate], [{"error_class": "StepTimedOut"}]) == GATE
    assert classify([], [{"error_class": "StepTimedOut"}]) == TIMEOUT
    assert classify([], [{"error_class": "ValueError", "message": "boom"}]) == CRASH
