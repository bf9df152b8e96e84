"""A real HTTP receiver standing in for Z9 (audit endpoint and OpenLineage endpoint), run as its own
process so a test can SIGKILL it: it validates every event it gets and appends it, fsynced, to a
JSON-lines file before answering.

    python -m z4_assets_tests.audit_receiver PORT OUT_FILE

POST /events            a CloudEvent (structured JSON): validated against the CloudEvents 1.0 JSON
                        schema and parsed by the cloudevents package; 400 when invalid
POST /api/v1/lineage    an OpenLineage RunEvent: validated against the OpenLineage 2-0-2 JSON schema
                        and the schema facet's own schema; 400 when invalid
Each line written: {"path", "valid", "error", "body"}. The schemas are the vendored spec files in
z4_assets_tests/specs/ (no network).
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SPECS = Path(__file__).resolve().parent / "specs"


def validators():
    import jsonschema
    from referencing import Registry, Resource

    ol = json.loads((SPECS / "openlineage" / "OpenLineage.json").read_text())
    facets = {name: json.loads((SPECS / "openlineage" / f"{name}.json").read_text())
              for name in ("SchemaDatasetFacet", "ErrorMessageRunFacet", "ParentRunFacet")}
    registry = Registry().with_resources(
        [(ol["$id"], Resource.from_contents(ol))] + [(f["$id"], Resource.from_contents(f)) for f in facets.values()])
    ce = json.loads((SPECS / "cloudevents" / "cloudevents.json").read_text())
    fmt = jsonschema.FormatChecker()
    run_event = jsonschema.Draft202012Validator({"$ref": ol["$id"] + "#/$defs/RunEvent"}, registry=registry,
                                                format_checker=fmt)
    facet_validators = {
        "schema": jsonschema.Draft202012Validator({"$ref": facets["SchemaDatasetFacet"]["$id"] + "#/$defs/SchemaDatasetFacet"},
                                                  registry=registry, format_checker=fmt),
        "errorMessage": jsonschema.Draft202012Validator(
            {"$ref": facets["ErrorMessageRunFacet"]["$id"] + "#/$defs/ErrorMessageRunFacet"}, registry=registry),
        "parent": jsonschema.Draft202012Validator(
            {"$ref": facets["ParentRunFacet"]["$id"] + "#/$defs/ParentRunFacet"}, registry=registry),
    }
    return jsonschema.Draft7Validator(ce, format_checker=fmt), run_event, facet_validators


def check_cloudevent(body: bytes, ce_validator) -> dict:
    from cloudevents.core.formats.json import JSONFormat

    doc = json.loads(body)
    ce_validator.validate(doc)
    JSONFormat().read(None, body)  # the cloudevents package's own v1.0 validation of attributes
    if doc.get("specversion") != "1.0":
        raise ValueError("specversion is not 1.0")
    return doc


def check_lineage(body: bytes, run_event, facet_validators) -> dict:
    doc = json.loads(body)
    run_event.validate(doc)
    for name, facet in (doc["run"].get("facets") or {}).items():
        if name in facet_validators:
            facet_validators[name].validate(facet)
    for ds in doc.get("inputs", []) + doc.get("outputs", []):
        if "schema" in (ds.get("facets") or {}):
            facet_validators["schema"].validate(ds["facets"]["schema"])
    return doc


def main(port: int, out: str) -> None:
    ce_validator, run_event, facet_validators = validators()
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            error = ""
            try:
                if self.path == "/events":
                    doc = check_cloudevent(body, ce_validator)
                elif self.path == "/api/v1/lineage":
                    doc = check_lineage(body, run_event, facet_validators)
                else:
                    raise ValueError(f"unknown path {self.path}")
            except Exception as e:  # noqa: BLE001 - any invalid event is recorded and refused
                doc, error = body.decode(errors="replace"), f"{type(e).__name__}: {str(e)[:300]}"
            line = json.dumps({"path": self.path, "valid": not error, "error": error, "body": doc}) + "\n"
            os.write(fd, line.encode())
            os.fsync(fd)
            self.send_response(400 if error else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
