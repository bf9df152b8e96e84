"""The printed table: medians, ratios, and every target with its verdict."""

from __future__ import annotations

FACTORY_RATIO_MAX = 1.2      # issue: orchestrated / bare wall time
HASH_RATIO_MIN = 0.9         # issue: project sha256_file / bare hashlib throughput
HYGIENE_STAGE_1M_MAX_S = 30  # issue: validation + hygiene at 1M rows
GROWTH_MAX = 1.25            # ours: per-row cost at the largest size / at the previous size


def target(measured: float | None, op: str, threshold: float) -> dict:
    if measured is None:
        return {"measured": None, "op": op, "threshold": threshold, "verdict": "n/a"}
    ok = measured <= threshold if op == "<=" else measured >= threshold
    return {"measured": measured, "op": op, "threshold": threshold, "verdict": "PASS" if ok else "MISS"}


def targets(results: dict) -> dict:
    out = {}
    if "factory" in results:
        out["factory_ratio"] = target(results["factory"]["ratio_dagster_over_bare"], "<=", FACTORY_RATIO_MAX)
    if "hashing" in results:
        out["hash_ratio"] = target(results["hashing"]["ratio_project_over_hashlib"], ">=", HASH_RATIO_MIN)
    if "hygiene" in results:
        sizes = {s["rows"]: s for s in results["hygiene"]["sizes"]}
        at_1m = sizes.get(1_000_000, {}).get("stage_s", {}).get("median")
        out["hygiene_stage_1m"] = target(at_1m, "<=", HYGIENE_STAGE_1M_MAX_S)
        out["hygiene_growth"] = target(results["hygiene"]["growth_per_row_largest_over_previous"],
                                       "<=", GROWTH_MAX)
    return out


def _line(label: str, value: str, goal: dict | None = None, note: str = "") -> str:
    text = f"  {label:<38} {value:>12}"
    if goal:
        text += f"   target {goal['op']} {goal['threshold']:<5} {goal['verdict']}"
    return text + (f"   {note}" if note else "")


BUSY_MACHINE_CORES = 0.25    # other processes' average use above which a section is flagged


def _background(section: dict) -> str:
    cores = section.get("background_cores")
    if cores is None:
        return ""
    text = f"other processes used {cores:.2f} cores meanwhile"
    return text + ("  ** BUSY MACHINE: times inflated, rerun when idle **" if cores > BUSY_MACHINE_CORES else "")


def _s(spread: dict) -> str:
    return f"{spread['median']:.2f} s"


def render(results: dict) -> str:
    m, cfg, goals = results["machine"], results["config"], results["targets"]
    lines = [(f"z4 benchmarks: medians of {cfg['repeats']} repeats{' (--quick)' if cfg['quick'] else ''}; "
              f"{m['cpus']} cpus, python {m['python']}, load {m['load_avg_at_start'][0]:.2f} at start")]
    if "factory" in results:
        f = results["factory"]
        lines += ["", "[1] orchestrated vs bare: the factory's stages on the 30k sample (fresh interpreters)",
                  f"  stages: {', '.join(f['stages'])}; dagster side: {' '.join(f['command'][3:5])}"
                  + ("" if set(f["job_assets"]) == set(f["stages"]) else
                     f" --select (in-process; model_factory also has "
                     f"{', '.join(a for a in f['job_assets'] if a not in f['stages'])})"),
                  f"  {_background(f)}",
                  _line("python -c 'pass'", _s(f["python_startup_s"])),
                  _line("python -c 'import z4_assets.definitions'", _s(f["definitions_import_s"])),
                  _line("bare script (wall)", _s(f["bare_s"]),
                        note=f"range {f['bare_s']['min']:.2f}-{f['bare_s']['max']:.2f}; "
                             f"cpu {f['bare_cpu_s']:.2f} s; in-script work {f['bare_in_script_work_s']:.2f} s"),
                  _line(f"dagster {' '.join(f['command'][3:5])} (wall)", _s(f["dagster_s"]),
                        note=f"range {f['dagster_s']['min']:.2f}-{f['dagster_s']['max']:.2f}; "
                             f"cpu {f['dagster_cpu_s']:.2f} s; steps {f['dagster_steps_s']:.2f} s"),
                  _line("ratio dagster / bare (medians)", f"{f['ratio_dagster_over_bare']:.2f}",
                        goals["factory_ratio"]),
                  _line("ratio, median of adjacent pairs", f"{f['pairwise_ratio_median']:.2f}",
                        note="(informative; less sensitive to drifting load)"),
                  _line("ratio of cpu seconds", f"{f['dagster_cpu_s'] / f['bare_cpu_s']:.2f}",
                        note="(informative; insensitive to other processes)"),
                  (f"  same work: steps equal={f['same_steps']}, run files equal={f['same_files']}, "
                   f"model digest equal={f['same_model_digest']}, "
                   f"mlflow params/metrics/tags/artifacts equal={f['same_mlflow_counts']}, "
                   f"all gates passed={f['all_gates_passed']}")]
    if "hashing" in results:
        h = results["hashing"]
        g = h["gb_per_s"]
        lines += ["", f"[2] sha256 throughput: {h['bytes'] / (1 << 30):.2f} GiB random file, page cache warm",
                  f"  {_background(h)}",
                  _line("z4_assets.core.files.sha256_file", f"{g['project']:.2f} GB/s"),
                  _line("hashlib.file_digest", f"{g['hashlib']:.2f} GB/s")]
        if "sha256sum" in g:
            lines.append(_line(h["sha256sum_version"], f"{g['sha256sum']:.2f} GB/s"))
        lines.append(_line("ratio project / hashlib", f"{h['ratio_project_over_hashlib']:.2f}", goals["hash_ratio"]))
        if "ratio_project_over_sha256sum" in h:
            lines.append(_line("ratio project / sha256sum", f"{h['ratio_project_over_sha256sum']:.2f}",
                               note="(informative)"))
        lines.append(f"  digests agree={h['digests_agree']}")
    if "hygiene" in results:
        lines += ["", "[3] hygiene scaling (one interpreter per size; stage = validate + hygiene vs baseline)",
                  f"  {_background(results['hygiene'])}",
                  (f"  {'rows':>9} {'conform':>8} {'validate':>9} {'hyg(none)':>10} {'hyg(base)':>10} "
                   f"{'stage':>7} {'s/1M rows':>10} {'peak RSS':>10}  gates")]
        for s in results["hygiene"]["sizes"]:
            t = s["seconds"]
            gates = "ok" if s["contract_passed"] and not s["hygiene_failed_gates"] else \
                f"failed: {s['hygiene_failed_gates'] or 'contract'}"
            lines.append(f"  {s['rows']:>9,} {t['conform']['median']:>7.2f}s {t['validate']['median']:>8.2f}s "
                         f"{t['hygiene_no_baseline']['median']:>9.2f}s {t['hygiene_baseline']['median']:>9.2f}s "
                         f"{s['stage_s']['median']:>6.2f}s {s['stage_s_per_1m_rows']:>9.2f}s "
                         f"{s['peak_rss_mib']:>6.0f} MiB  {gates}")
        gr = goals["hygiene_growth"]
        growth = "n/a" if gr["measured"] is None else f"{gr['measured']:.2f}"
        lines.append(_line("s/1M rows: largest / previous size", growth, gr))
        st = goals["hygiene_stage_1m"]
        lines.append(_line("stage at 1M rows", "n/a" if st["measured"] is None else f"{st['measured']:.2f} s", st,
                           note="" if st["measured"] is not None else "(1M rows not measured)"))
    counts = {v: sum(1 for g in goals.values() if g["verdict"] == v) for v in ("PASS", "MISS", "n/a")}
    lines += ["", "targets: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n)
              + f"; total {results['total_seconds']:.0f} s"]
    return "\n".join(lines)
