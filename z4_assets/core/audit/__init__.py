"""Z9's view of the factory: every decision as a CloudEvents audit event and every stage as OpenLineage
run events, appended to a local hash-chained file that is also the spool for HTTP delivery.

An event is written to the chain before anything else is tried; delivery to Z9 (Z4_AUDIT_URL,
OPENLINEAGE_URL) follows in chain order with bounded retries and a time budget, so a run never
fails or waits on Z9: what was not delivered stays queued for the next flush (`z4 audit flush`).
Emitting never raises into the caller's decision: a chain that cannot be written is reported to
the caller's warning callback and the run goes on (the decision's own evidence is in the run folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from z4_assets.core.audit._chain import Verdict
from z4_assets.core.audit._delivery import LINEAGE_TYPE, Report, Sink
from z4_assets.core.audit._events import EVENT_TYPES, OIDC_SUBJECT_ENV, Actor, RunIds, trace_id_for
from z4_assets.core.audit._lineage import output as lineage_output
from z4_assets.core.audit._lineage import run_event, snapshot_input
from z4_assets.core.run_folder import AUDIT

DOWN_PAUSE = 30.0  # seconds a run's stages leave a sink alone after it was found down
HEAD_TAG, CHAIN_TAG = "z9.audit_head", "z9.audit_chain"  # MLflow tags: the head a run saw, and of which chain

__all__ = ["AuditTrail", "Actor", "RunIds", "CHAIN_TAG", "HEAD_TAG", "EVENT_TYPES", "OIDC_SUBJECT_ENV", "LINEAGE_TYPE", "Report",
           "Verdict", "trace_id_for", "lineage_output", "run_event", "snapshot_input"]


@dataclass(frozen=True)
class AuditTrail:
    """The factory's audit stream: the chain under DIRECTORY, and the HTTP sinks when their URLs are set."""

    directory: Path
    audit_url: str = ""
    openlineage_url: str = ""
    oidc_subject: str = ""
    retries: int = 3
    budget_seconds: float = 10.0

    def _path(self, role: str) -> Path:
        return Path(self.directory) / AUDIT[role]

    @property
    def chain(self) -> Path:
        return self._path("chain")

    def actor(self) -> Actor:
        return Actor.current(self.oidc_subject)

    def ids(self, **kwargs) -> RunIds:
        return RunIds(actor=self.actor(), **kwargs)

    def emit(self, kind: str, data: dict, ids: RunIds, subject: str = "") -> dict:
        """Build one event and chain it; returns the chained event. The API other stages call (e.g.
        issue 20's lease revocation: `trail.emit("lease.revoked", {...}, trail.ids(dagster_run_id=...))`)."""
        return self.emit_many([(kind, data, subject)], ids)[0]

    def emit_many(self, items: list[tuple[str, dict, str]], ids: RunIds, at=None) -> list[dict]:
        """Chain several events in one write. AT: when they happened, if not now (a stage's start,
        held until the snapshot it reads, and so its ids, is known)."""
        from z4_assets.core.audit._chain import append
        from z4_assets.core.audit._events import build

        Path(self.directory).mkdir(parents=True, exist_ok=True)
        events = [build(kind, data, ids, subject, at) for kind, data, subject in items]
        return append(self.chain, self._path("head"), self._path("lock"), events)

    def sinks(self) -> list[Sink]:
        out = []
        if self.audit_url:
            out.append(Sink("audit", self.audit_url, lineage=False))
        if self.openlineage_url:
            out.append(Sink("lineage", _lineage_endpoint(self.openlineage_url), lineage=True))
        return out

    def flush(self, budget_seconds: float | None = None, during_run: bool = False) -> list[Report]:
        """Deliver what is queued to every configured sink, in chain order; never raises for a sink down.

        DURING_RUN: a sink found down less than DOWN_PAUSE seconds ago is not tried again (a stage
        does not pay the retries of the one before it); `z4 audit flush` always tries."""
        import time

        from z4_assets.core.audit._delivery import deliver

        reports = []
        for sink in self.sinks():
            down = self._path(f"deliver_lock_{sink.name}").with_suffix(".down")
            if during_run and down.exists() and time.time() - down.stat().st_mtime < DOWN_PAUSE:
                reports.append(Report(sink.name, error=f"{sink.name} sink down at the last attempt; not retried "
                                                       f"for {DOWN_PAUSE:.0f} s"))
                continue
            report = deliver(self.chain, sink, self._cursor(sink), self._path(f"rejected_{sink.name}"),
                             self._path(f"deliver_lock_{sink.name}"), retries=self.retries,
                             budget=self.budget_seconds if budget_seconds is None else budget_seconds)
            if report.error:
                down.touch()
            else:
                down.unlink(missing_ok=True)
            reports.append(report)
        return reports

    def head(self) -> str:
        """The digest of the chain's last event, as its head file names it ("none" before the first)."""
        from z4_assets.core.audit._chain import Head

        head = Head.read(self._path("head"))
        return f"{head.seq}:{head.digest}" if head else "none"

    def queued(self) -> dict[str, int]:
        """Events not yet delivered, per configured sink (an empty dict: no sink configured)."""
        from z4_assets.core.audit._delivery import pending

        return {sink.name: pending(self.chain, self._cursor(sink), sink) for sink in self.sinks()}

    def _cursor(self, sink: Sink) -> Path:
        return self._path(f"cursor_{sink.name}")

    def chain_id(self) -> str:
        """Which chain a recorded head belongs to (MLflow tag z9.audit_chain): its file's absolute
        path, so the heads of another factory root sharing the MLflow experiment are told apart."""
        return str(self.chain.resolve())

    def verify(self, anchors: list[tuple[str, str]] | None = None) -> Verdict:
        """The chain walked (core/audit/_chain.verify); with ANCHORS, (where, "seq:digest") heads
        recorded outside it, also checked against them (the verdict's note says how many)."""
        from dataclasses import replace

        from z4_assets.core.audit._chain import check_anchors, verify

        v = verify(self.chain, self._path("head"))
        if anchors is None:
            return v
        checked, problems = check_anchors(self.chain, anchors)
        note = "; ".join(x for x in (v.note, f"{checked} head(s) recorded outside the chain agree"
                                     if not problems else "") if x)
        return replace(v, ok=v.ok and not problems, problems=v.problems + problems, note=note)

    @classmethod
    def from_settings(cls, settings, env=None) -> AuditTrail:
        """The CLI's trail: the URLs are read here, at the point of use (they may carry credentials)."""
        import os

        from z4_assets.core.run_folder import FactoryRoot
        from z4_assets.core.settings import AUDIT_URL_ENV, OPENLINEAGE_URL_ENV

        env = os.environ if env is None else env
        return cls(FactoryRoot(settings.factory_root).audit, env.get(AUDIT_URL_ENV, ""),
                   env.get(OPENLINEAGE_URL_ENV, ""), settings.actor_oidc_subject)

    def events(self, dagster_run_id: str | None = None) -> list[dict]:
        """The chain's events (of one Dagster run when given), in order."""
        import json

        from z4_assets.core.audit._chain import read_from

        out = []
        for _, line in read_from(self.chain, 0):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if dagster_run_id is None or event.get("dagsterrunid") == dagster_run_id:
                out.append(event)
        return out

    def remember_mlflow_run(self, dagster_run_id: str, mlflow_run_id: str) -> None:
        """So the next stage's first events (a new process) name the MLflow run without asking MLflow."""
        from z4_assets.core.files import atomic_write_text
        from z4_assets.core.run_folder import check_run_id

        atomic_write_text(Path(self.directory) / AUDIT["runs"] / check_run_id(dagster_run_id), mlflow_run_id)

    def mlflow_run_of(self, dagster_run_id: str) -> str:
        from z4_assets.core.run_folder import check_run_id

        try:
            return (Path(self.directory) / AUDIT["runs"] / check_run_id(dagster_run_id)).read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return ""


def _lineage_endpoint(url: str) -> str:
    """OPENLINEAGE_URL is the server's base (as the OpenLineage client reads it): events go to /api/v1/lineage."""
    base = url.rstrip("/")
    return base if base.endswith("/api/v1/lineage") else base + "/api/v1/lineage"
