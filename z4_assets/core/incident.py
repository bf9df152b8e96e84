"""The incident record: a blocked, crashed or timed-out run says what stopped it, with its evidence,
its runbook, its run and its snapshot, once.

It is written into the run's folder (runs/<id>/incident/incident.json, atomically, never twice: a
second call for the same run returns the first record) and, when an incident URL is configured,
POSTed as a JSON issue with bounded retries and backoff. The delivery outcome is written back
into the record; a receiver that is down never loses the record and never multiplies it.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from z4_assets.core.files import atomic_write_json
from z4_assets.core.run_folder import FILES, RunFolder
from z4_assets.core.runbooks import failure_runbook, gate_runbook
from z4_assets.core.stages import STAGES

GATE, CRASH, TIMEOUT, REVOCATION, VERIFICATION = "gate", "crash", "time-out", "revocation-failure", \
    "verification-failure"


def failed_gates(folder: RunFolder) -> list[dict]:
    """Every gate that did not let the run through, from each stage's gates.json, in pipeline order."""
    out = []
    for s in (s for s in STAGES if s.gates):
        path = folder.stage(s.folder, create=False).gates
        if not path.is_file():
            continue
        for g in json.loads(path.read_text(encoding="utf-8")):
            if not g.get("passed", False):
                evidence = sorted(f"{s.folder}/{name}" for name in FILES[s.folder].values()
                                  if (folder.run_dir / s.folder / name).is_file())
                out.append({"stage": s.name, "gate": g["name"], "verdict": g.get("verdict"),
                            "measured": g.get("value"), "threshold": g.get("threshold"),
                            "comparison": g.get("comparison"), "summary": g.get("summary"),
                            "evidence": evidence, "runbook": gate_runbook(g["name"])})
    return out


def classify(gates: list[dict], step_errors: list[dict]) -> str:
    """What ended the run: a gate (verification failure when it is the package check), else a
    time-out or a crash of a step (STEP_ERRORS: {step, error_class, message})."""
    if gates:
        return VERIFICATION if gates[0]["gate"] == "package_verified" else GATE
    if any(e.get("error_class") == "StepTimedOut" or "timed out after" in (e.get("message") or "")
           for e in step_errors):
        return TIMEOUT
    return CRASH


def build_incident(folder: RunFolder, partition: str, step_errors: list[dict], links: dict,
                   revocation_failed: list[str] | None = None) -> dict:
    gates = failed_gates(folder)
    blocking = [g for g in gates if g["gate"] != "cleanup_complete"]
    kind = classify(gates, step_errors)
    if revocation_failed and not blocking and not step_errors:
        kind = REVOCATION
    first = gates[0] if gates else None
    record = {
        "schema": "z4.incident/1",
        "title": (f"{partition}: blocked by {first['gate']} ({first['verdict']})" if first
                  else f"{partition}: run {kind} ({(step_errors[0]['step'] if step_errors else 'cleanup')})"),
        "kind": kind, "run_id": folder.run_id, "snapshot": partition,
        "opened_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "gate": first["gate"] if first else None,
        "measured": first["measured"] if first else None,
        "threshold": first["threshold"] if first else None,
        "gates": gates, "step_errors": step_errors,
        "revocation_failed": revocation_failed or [],
        "runbook": first["runbook"] if first and kind == GATE else failure_runbook(kind),
        "evidence": sorted({e for g in gates for e in g["evidence"]}),
        "run_folder": str(folder.run_dir), "links": links,
    }
    return record


def open_incident(folder: RunFolder, record: dict, url: str = "", attempts: int = 4, backoff: float = 0.5,
                  timeout: float = 5.0) -> tuple[dict, bool]:
    """Write RECORD as the run's incident unless it has one (returned, False); POST it to URL."""
    path = folder.stage("incident", create=True).incident
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8")), False
    atomic_write_json(path, {**record, "delivery": {"status": "pending" if url else "not configured"}})
    if url:
        record = {**record, "delivery": post_json(url, record, attempts, backoff, timeout)}
        atomic_write_json(path, record)
    else:
        record = {**record, "delivery": {"status": "not configured"}}
    return record, True


def post_json(url: str, record: dict, attempts: int, backoff: float, timeout: float) -> dict:
    """POST with up to ATTEMPTS tries, waiting BACKOFF * 2**n between them; a 4xx other than 408/429
    is not retried (the receiver refused the record: retrying cannot help)."""
    import urllib.error
    import urllib.request

    from z4_assets.core.tracking import redact_uri

    import base64
    import http.client
    from urllib.parse import unquote, urlsplit, urlunsplit

    body = json.dumps(record, default=str).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": f"z4-incident-{record['run_id']}"}
    parts = urlsplit(url)
    target = url
    if parts.username is not None:  # user:token@ becomes a Basic header: urllib sends no userinfo
        token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        target = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    errors = []
    for n in range(attempts):
        req = urllib.request.Request(target, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # nosec B310 # operator-set URL
                return {"status": "delivered", "http_status": resp.status, "attempts": n + 1,
                        "to": redact_uri(url)}
        except urllib.error.HTTPError as e:
            errors.append(f"HTTP {e.code}")
            if 400 <= e.code < 500 and e.code not in (408, 429):
                break
        except (urllib.error.URLError, OSError) as e:
            errors.append(type(getattr(e, "reason", e)).__name__)
        except (ValueError, http.client.HTTPException) as e:  # a malformed URL: retrying cannot help
            errors.append(type(e).__name__)
            break
        if n + 1 < attempts:
            time.sleep(backoff * 2 ** n)
    return {"status": "failed", "attempts": len(errors), "errors": errors, "to": redact_uri(url)}
