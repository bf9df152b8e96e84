"""`z4 audit verify [--against-mlflow] | flush | show RUN_ID`: the audit chain checked (against the heads
MLflow recorded, when asked), delivered by hand, read as a table."""

from __future__ import annotations

from z4_assets.core.settings import Settings


def trail():
    from z4_assets.core.audit import AuditTrail

    return AuditTrail.from_settings(Settings.from_env())


def emit(kind: str, data: dict, dagster_run_id: str = "", dataset: str = "", subject: str = "",
         z1_correlation_id: str = "") -> None:
    """One event from a CLI command (snapshot registered, verify, load, retention), chained and, when
    a sink is set, delivered (bounded). Never changes the command's outcome: a failure is one line."""
    import sys

    try:
        t = trail()
        t.emit(kind, data, t.ids(dagster_run_id=dagster_run_id, dataset=dataset,
                                 z1_correlation_id=z1_correlation_id), subject)
        for r in t.flush(budget_seconds=5.0, during_run=True):
            if r.error:
                print(f"z4: audit: {r.error}; {r.queued} event(s) queued (`z4 audit flush`)", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - the audit never changes what the command decided
        print(f"z4: audit: event {kind} not written ({type(e).__name__})", file=sys.stderr)


def file_digest(path) -> str | None:
    """sha256 of a file named on the command line (None: not a readable file)."""
    from z4_assets.core.files import sha256_file

    try:
        return sha256_file(path)
    except OSError:
        return None


def mlflow_anchors(settings, chain_id: str) -> tuple[list[tuple[str, str]], int]:
    """The audit heads the runs in the factory's MLflow experiment recorded for this chain, and how many
    heads of other chains (another factory root sharing the experiment) were left out. A run recorded
    before heads named their chain counts as this chain's. Read only: no experiment is created. An
    MLflow that cannot be read, or has no such experiment, is one line (Z4Error), never a pass."""
    from mlflow.tracking import MlflowClient

    from z4_assets.core.audit import CHAIN_TAG, HEAD_TAG
    from z4_assets.core.errors import Z4Error
    from z4_assets.core.tracking import default_tracking_uri, redact_uri

    uri = settings.mlflow_tracking_uri or default_tracking_uri()
    try:
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(settings.mlflow_experiment)
        if exp is None:
            raise Z4Error(f"no MLflow experiment {settings.mlflow_experiment!r} at {redact_uri(uri)}: no recorded "
                          "audit heads to compare the chain with (MLFLOW_TRACKING_URI, Z4_MLFLOW_EXPERIMENT)")
        out, other, token = [], 0, None
        while True:
            page = client.search_runs([exp.experiment_id], filter_string=f"tags.`{HEAD_TAG}` != ''",
                                      max_results=1000, page_token=token)
            for r in page:
                if r.data.tags.get(CHAIN_TAG, chain_id) != chain_id:
                    other += 1
                else:
                    out.append((f"MLflow run {r.info.run_id}", r.data.tags[HEAD_TAG]))
            token = page.token
            if not token:
                return out, other
    except Z4Error:
        raise
    except Exception as e:  # noqa: BLE001 - an unreachable or refusing server: one line, no traceback
        raise Z4Error(f"cannot read the recorded audit heads from MLflow at {redact_uri(uri)} "
                      f"({type(e).__name__})") from None


def _verify(args) -> int:
    t = trail()
    anchors, other = mlflow_anchors(Settings.from_env(), t.chain_id()) if args.against_mlflow else (None, 0)
    v = t.verify(anchors)
    if anchors == [] and v.events:
        from z4_assets.core.errors import Z4Error

        raise Z4Error(f"no run in MLflow recorded a head of this chain ({v.events} events): nothing to compare "
                      "it with (the right MLFLOW_TRACKING_URI and Z4_MLFLOW_EXPERIMENT?)")
    if other:
        print(f"({other} head(s) in MLflow belong to another factory root's chain: not compared)")
    if v.ok:
        print(f"audit chain intact: {v.events} events, head {t.head()}" + (f" ({v.note})" if v.note else ""))
        return 0
    print(f"audit chain BROKEN ({v.events} lines read): {t.chain}")
    for p in v.problems:
        print(f"  - {p}")
    return 1


def _flush(args) -> int:
    t = trail()
    if not t.sinks():
        print("no sink set (Z4_AUDIT_URL, OPENLINEAGE_URL): the events stay in the local chain")
        return 0
    failed = False
    for r in t.flush(budget_seconds=args.budget):
        failed |= bool(r.error)
        print(f"{r.sink}: delivered {r.delivered}, rejected {r.rejected}, still queued {r.queued} "
              f"in {r.seconds:.2f} s" + (f" ({r.error})" if r.error else ""))
    return 1 if failed else 0


def _cell(value, width: int = 60) -> str:
    text = str(value).replace("\n", " ").replace("|", "/")
    return text if len(text) <= width else text[:width - 1] + "…"


def _what(e: dict) -> str:
    d, kind = e.get("data") or {}, e["type"].removeprefix("io.z4.factory.")
    if kind == "gate.evaluated":
        measured = "not measured" if d.get("measured") is None else d.get("measured")
        return f"{d.get('stage')}: {d.get('gate')} {d.get('verdict')} ({measured} {d.get('comparison')} {d.get('threshold')})"
    if kind == "snapshot.read":
        return (f"{d.get('reader')} read {d.get('rows')} rows for '{d.get('purpose')}': {d.get('decision')}"
                f"; pseudonymised {d.get('pseudonymised') or 'none'}")
    if kind == "lineage.run":
        return f"{d.get('stage')}: OpenLineage {d.get('state')}"
    if kind in ("stage.started", "stage.completed", "stage.crashed"):
        extra = d.get("error") or (f"blocked by {d['blocked_by']}" if d.get("blocked_by") else "")
        return f"{d.get('stage')}" + (f": {extra}" if extra else "")
    return ", ".join(f"{k}={v}" for k, v in d.items() if k != "ids" and v not in (None, "", []))


def _show(args) -> int:
    t = trail()
    events = t.events(args.run_id)
    if not args.all:
        events = [e for e in events if e["type"] not in ("io.z4.factory.lineage.run", "io.z4.factory.stage.started")]
    if not events:
        print(f"no audit events for run {args.run_id} in {t.chain}")
        return 1
    first = events[0]
    print(f"run {args.run_id}  dataset {first.get('dataset')}  mlflow {events[-1].get('mlflowrunid')}  "
          f"trace {first['traceparent'].split('-')[1]}  z1 {first.get('z1correlationid')}")
    rows = [("seq", "time", "actor", "event", "what")]
    for e in events:
        rows.append((str(e.get("z4seq")), e["time"][11:23], f"{e['actor']} ({e['actorkind']})",
                     e["type"].removeprefix("io.z4.factory."), _cell(_what(e), args.width)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for n, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    return 0


def add_parsers(sub) -> None:
    audit = sub.add_parser("audit", help="the audit chain: verify it, deliver it to Z9, show a run's trail")
    verbs = audit.add_subparsers(dest="verb", required=True)
    v = verbs.add_parser("verify", help="check the local chain: an edited, removed or reordered event fails")
    v.add_argument("--against-mlflow", action="store_true",
                   help="also check the chain against the head every run recorded in MLflow (z9.audit_head): "
                        "catches a chain and head file rewritten together")
    v.set_defaults(func=_verify)
    f = verbs.add_parser("flush", help="deliver the queued events to Z4_AUDIT_URL / OPENLINEAGE_URL now")
    f.add_argument("--budget", type=float, default=600.0, help="stop after this many seconds (the rest stays queued)")
    f.set_defaults(func=_flush)
    s = verbs.add_parser("show", help="a run's trail as a table: reads, gate verdicts, signing, promotion, cleanup")
    s.add_argument("run_id")
    s.add_argument("--all", action="store_true", help="also the stage starts and the OpenLineage events")
    s.add_argument("--width", type=int, default=90)
    s.set_defaults(func=_show)
