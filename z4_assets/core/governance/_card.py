"""model_card.md from the run's evidence, and the gate that says whether every section is filled."""

from __future__ import annotations

from z4_assets.core.gates import Gate, verdict_word
from z4_assets.core.stages import GOVERNANCE
from z4_assets.core.governance import _sections as s
from z4_assets.core.governance._escape import code, text
from z4_assets.core.governance._evidence import SECURITY_FILES, Evidence

PROVENANCE = ("dagster_run_id", "mlflow_run_id", "git_sha", "dataset_hash")


def _purpose(ev):
    c = ev.get("dataset_config")
    return [f"**Purpose.** {text(c['purpose'])}", "", f"**Intended use.** {text(c['intended_use'])}"]


def _out_of_scope(ev):
    return [f"- {text(x)}" for x in ev.get("dataset_config")["out_of_scope"]]


def _details(ev):
    from z4_assets.core.governance._model_sections import details

    return details(ev)


def _training_data(ev):
    m, contract, h = ev.get("snapshot_manifest"), ev.get("contract"), ev.get("hygiene_report")
    tr = m.get("time_range")
    when = f"{text(tr['column'])} from {text(tr['min'])} to {text(tr['max'])}" if tr else "no time column declared (recency unknown)"
    lines = [f"- Snapshot: {code(m['dataset_id'] + '@' + m['snapshot_id'])}, registered {text(m['snapshot_at'])}",
             f"- sha256 of the data: `{m['hash']}`; contract sha256 `{m['contract_hash']}`",
             f"- Rows: {m['row_count']}; time range: {when}",
             f"- Split ({text(h['split']['strategy'])}): {text(h['split']['counts'])}", "",
             "Sensitive attributes and their legal basis:", "",
             "| attribute | legal basis | reference | used as a feature |", "| --- | --- | --- | --- |"]
    for name, spec in (contract.get("sensitive") or {}).items():
        lines.append(f"| {text(name)} | {text(spec.get('legal_basis'))} | {text(spec.get('basis_reference', ''))} | "
                     f"{'yes' if spec.get('use_as_feature') else 'no'} |")
    return lines


def _features(ev) -> list[str]:
    return [c["name"] for c in ev.get("feature_spec")["columns"]]


def _shipped(ev, thresholds) -> dict:
    """Disparity -> (key, op, shipped default limit, limit in force): the defaults from the policy trace."""
    diff = {d["key"]: d for d in (ev.get("policy_trace") or {}).get("diff", [])}
    return {d: (key, op, diff[f"fairness.{key}"]["shipped"] if f"fairness.{key}" in diff else limit, limit)
            for d, (key, op, limit) in thresholds.items()}


def _limitations(ev, thresholds):
    """Every measured disparity past the SHIPPED default threshold is listed, gated or not."""
    c, rep, test = ev.get("dataset_config"), ev.get("fairness_report"), ev.get("model_metrics")["test"]
    lines = [f"- Stated by the data owner: {text(x)}" for x in c.get("limitations", [])]
    lines.append(f"- Discrimination on the test split is AUC {s.metric(test['auc'])}, KS {s.metric(test['ks'])}: "
                 "the score ranks risk and misranks many cases; it must not decide alone.")
    limits = _shipped(ev, thresholds)
    for section in ("attributes", "intersections"):
        for name, a in rep[section].items():
            small = [g for g, e in a["groups"].items() if e["status"] != "ok"]
            if small and section == "attributes":
                lines.append(f"- Too little test data to assess {', '.join(map(text, small))} ({text(name)}): "
                             "behaviour for these groups is unknown.")
            for d, v in a["disparities"].items():
                if d not in limits or v["value"] is None or isinstance(limits[d][2], bool):
                    continue
                _, op, default, in_force = limits[d]
                if not (v["value"] > default if op == "<=" else v["value"] < default):
                    continue
                gated = name in rep["gated_attributes"]
                how = ("gated" + (f" against this run's looser {op} {in_force}" if in_force != default else "")
                       if gated else "reported, not gated")
                lines.append(f"- {d} for {text(name)} is {s.metric(v['value'])} (shipped default {op} {default}; "
                             f"offending group {text(v['offending_group'])}): {how}.")
    excluded = [a for a, spec in (ev.get("contract").get("sensitive") or {}).items() if not spec.get("use_as_feature")]
    lines.append(f"- {', '.join(map(text, excluded)) or 'No attribute'} kept out of the model, but other features may act as proxies for them.")
    return lines


def _safeguards(ev):
    c, rep, contract = ev.get("dataset_config"), ev.get("fairness_report"), ev.get("contract")
    gates = {k: ev.get(k) for k in ("snapshot_gates", "hygiene_gates", "model_gates")}
    gates["fairness_gates"] = rep["gates"]
    every = [g for gs in gates.values() for g in gs]
    passed = sum(verdict_word(g) == "pass" for g in every)
    short = [g["name"] for g in every if verdict_word(g).startswith("insufficient")]
    total = len(every)
    sensitive = contract.get("sensitive") or {}
    used = set(_features(ev))
    kept_out = [a for a in sensitive if a not in used]
    lines = [f"- Blocking gates: {passed} of {total} passed before this card was written "
             f"({', '.join(f'{k}: {len(v)}' for k, v in gates.items())}); any failure stops the factory."
             + (f" Decided on too little evidence, allowed by the policy: {', '.join(short)}." if short else "")
             + _loosened_note(ev),
             f"- Sensitive attributes kept out of the model's inputs: {', '.join(map(text, kept_out)) or 'none'} "
             f"(checked against feature_spec.json).",
             f"- Tamper evidence: data and contract re-hashed against the manifest "
             f"(snapshot_hash gate); model digest `{ev.get('model_config')['state_dict_sha256'][:16]}...`.",
             "- Reproducible training: fixed seeds, deterministic kernels and pinned threads."]
    return lines + [f"- Stated by the data owner: {text(x)}" for x in c.get("safeguards", [])]


def _loosened_note(ev) -> str:
    loose = (ev.get("policy_trace") or {}).get("loosened_gates") or []
    return (f" **Loosened or disabled by this run's policy (not the shipped defaults): {', '.join(loose)}**;"
            " see Policy in force." if loose else "")


def _policy(ev):
    t = ev.get("policy_trace")
    lines = [f"- Policy file: `{t['source']}`", f"- Effective policy sha256 (canonical JSON): `{t['digest']}`",
             f"- Shipped defaults sha256: `{t['shipped_digest']}`",
             "- The whole effective policy is in `governance/policy_trace.json` (signed with the package).", ""]
    if not t["overridden"]:
        return lines + ["The shipped defaults, unchanged."]
    lines += [f"**Overridden: {len(t['diff'])} key(s) differ from the shipped defaults.**"]
    if t["loosened_gates"]:
        lines += ["", f"**Gates loosened or disabled: {', '.join(t['loosened_gates'])}.** A pass of these gates is "
                  "a pass against a lower bar than the factory's defaults."]
    lines += ["", "| key | shipped default | in force | effect | gates |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {d['key']} | `{d['shipped']}` | `{d['effective']}` | {d['effect']} | {', '.join(d['gates']) or '-'} |"
              for d in t["diff"]]
    return lines


def _gdpr(ev):
    contract, c = ev.get("contract"), ev.get("dataset_config")
    columns, used = list(contract["columns"]), _features(ev)
    sensitive = contract.get("sensitive") or {}
    leaked = [a for a in used if a in sensitive and not sensitive[a].get("use_as_feature")]
    idc = contract.get("id_column")
    basis = next((g for g in ev.get("snapshot_gates") if g["name"] == "legal_basis"),
                 {"passed": False, "summary": "not in snapshot/gates.json"})
    bases = "; ".join(text(f"{a}: {v.get('legal_basis')} ({v.get('basis_reference', '')})") for a, v in sensitive.items())
    return ["| item | status | evidence |", "| --- | --- | --- |",
            f"| Data minimisation (GDPR art. 5(1)(c), LGPD art. 6 III) | {'met' if not leaked and idc not in used else 'NOT met'} | "
            f"{len(used)} of {len(columns)} declared columns feed the model; id column {code(idc)} "
            f"{'is' if idc in used else 'is not'} a feature; protected attributes used as features: "
            f"{', '.join(map(text, leaked)) or 'none'} |",
            f"| Purpose limitation (GDPR art. 5(1)(b), LGPD art. 6 I) | stated | purpose: {text(c['purpose'])} "
            f"Out of scope: {len(c['out_of_scope'])} uses listed above |",
            f"| Legal basis (GDPR art. 6 and 9, LGPD art. 7 and 11) | {'met' if basis['passed'] else 'NOT met'} | "
            f"legal_basis gate {text(basis['summary'])}; {bases} |"]


def _provenance(ev, ids):
    m = ev.get("snapshot_manifest")
    return ["| identifier | value |", "| --- | --- |",
            *(f"| {k} | {code(ids[k])} |" for k in PROVENANCE),
            f"| git_dirty | {code(ids.get('git_dirty', 'unknown'))} |",
            f"| snapshot | {code(m['dataset_id'] + '@' + m['snapshot_id'])} |",
            f"| contract_hash | {code(m['contract_hash'])} |",
            f"| state_dict_sha256 | {code(ev.get('model_config')['state_dict_sha256'])} |"]


def _evidence_rule(blocks: dict[str, bool]) -> list[str]:
    """What the policy does with a gate that had too little evidence to decide, per family of gates."""
    if not blocks:
        return []
    stops = [k for k, v in blocks.items() if v]
    lets = [k for k, v in blocks.items() if not v]
    return [f"- Too little evidence to decide (INSUFFICIENT EVIDENCE: too small a test split or group, or a "
            f"confidence interval on both sides of a threshold) stops the model for: {', '.join(stops) or 'none'}"
            + (f"; is shown but does not stop it for: {', '.join(lets)}" if lets else "") + " (policy)."]


def sections(thresholds: dict, sufficiency: dict | None = None) -> list[tuple[str, tuple[str, ...], object]]:
    """(title, evidence pieces it needs, renderer) in card order."""
    return [
        ("Model details", ("dataset_config", "model_config"), _details),
        ("Purpose and intended use", ("dataset_config",), _purpose),
        ("Out-of-scope uses", ("dataset_config",), _out_of_scope),
        ("Training data", ("snapshot_manifest", "contract", "hygiene_report"), _training_data),
        ("Data hygiene", ("snapshot_gates", "hygiene_report", "hygiene_gates"), s.hygiene),
        ("Performance", ("model_metrics", "model_gates"), s.performance),
        ("Fairness", ("fairness_report",), s.fairness),
        ("Security", (), s.security),
        ("Limitations and risks", ("dataset_config", "fairness_report", "model_metrics", "contract"),
         lambda ev: _limitations(ev, thresholds)),
        ("Safeguards", ("dataset_config", "fairness_report", "contract", "feature_spec", "model_config",
                        "snapshot_gates", "hygiene_gates", "model_gates"),
         lambda ev: _safeguards(ev) + _evidence_rule(sufficiency or {})),
        ("Policy in force", ("policy_trace",), _policy),
        ("LGPD/GDPR checklist", ("contract", "dataset_config", "feature_spec", "snapshot_gates"), _gdpr),
    ]


def _runbooks() -> list[str]:
    """Every gate's runbook entry (in the factory's source tree, docs/runbooks/), for whoever reads a FAIL."""
    from z4_assets.core.runbooks import FAILURE_KINDS, failure_runbook, gate_runbook
    from z4_assets.core.stages import all_gate_names

    return ["## Runbooks", "", "What a failed gate means, what to check first, how to fix it and who decides "
            "an exception (paths in the factory's source tree):", "", "| gate or failure | runbook |", "| --- | --- |",
            *(f"| {g} | {code(gate_runbook(g))} |" for g in all_gate_names()),
            *(f"| {k} | {code(failure_runbook(k))} |" for k in FAILURE_KINDS), ""]


def render_card(ev: Evidence, ids: dict, thresholds: dict, sufficiency: dict | None = None) -> tuple[str, Gate]:
    """(model_card.md text, model_card_complete gate). Missing evidence is named in both. SUFFICIENCY:
    gate family -> whether an insufficient-evidence verdict blocks it (the policy's)."""
    missing = dict(ev.missing)
    if "policy_trace" not in ev.pieces:
        missing.setdefault("policy_trace", "the effective policy's trace was not given")
    for k in PROVENANCE:
        v = ids.get(k) or ""
        if not v or v.startswith("unknown"):
            missing[f"provenance.{k}"] = f"not known ({v or 'empty'})"
    name = (ev.get("dataset_config") or {}).get("model_name", "unnamed model")
    out = [f"# Model card: {text(name)}", "",
           "Generated by the z4 model factory from the evidence of one run; every figure below is read "
           "from a file that run wrote. Missing evidence is marked **MISSING EVIDENCE**.", ""]
    status = {}
    for title, needs, render in sections(thresholds, sufficiency) + [("Provenance", ("snapshot_manifest", "model_config"),
                                                         lambda e: _provenance(e, ids))]:
        lacking = [n for n in needs if n not in ev.pieces]
        if title == "Security":
            lacking = [n for n in SECURITY_FILES if n in missing]
        if title == "Provenance":
            lacking += [k for k in missing if k.startswith("provenance.")]
        out += [f"## {title}", ""]
        if lacking:
            out += [f"**MISSING EVIDENCE:** {code(n)} ({text(missing.get(n, 'not found'))})" for n in lacking]
            status[title] = "missing: " + ", ".join(lacking)
        else:
            out += render(ev)
            status[title] = "filled"
        out.append("")
    out += _runbooks()
    names = sorted(missing)
    gate = GOVERNANCE.gate.model_card_complete.compare(len(names), "<=", 0,
                   "evidence pieces missing from the model card" + (f" ({', '.join(names)})" if names else ""),
                   {"missing": missing, "sections": status, "sources": ev.sources})
    return "\n".join(out), gate
