"""Markdown "headline numbers" table from a result folder: ``python -m benchmarks.headline DIR``.

Reads the JSON files the benchmarks wrote (missing ones are left out) and prints one row per
headline figure, for the README.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks._common import _fmt


def _load(d: Path, name: str):
    p = d / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else None


def headline_rows(d: Path) -> list[tuple[str, str, str]]:
    """``(what, measured, goal / reference)`` triples."""
    rows = []
    ts = _load(d, "training_step")
    if ts:
        rows.append(("dense f32 matmul peak (same run)", f"{ts['matmul_peak']['flop_per_s'] / 1e9:.1f} GFLOP/s", "MFU denominator"))
        if "stream_bandwidth" in ts:  # results from before 2026-12-04 have none
            sb = ts["stream_bandwidth"]
            rows.append(("stream triad bandwidth (same run)", f"{sb['bytes_per_s'] / 1e9:.1f} GB/s in place, "
                         f"{sb['fresh_output_bytes_per_s'] / 1e9:.1f} GB/s into a fresh buffer", "bandwidth-fraction denominator"))
        for r in ts["rows"]:
            best = min(x for x in (r["step_ms"], r.get("fused_step_ms")) if x is not None)
            what = (f"P-DL baseline step, {r['nodes']}×{r['samples']} (5×10 MLP, AD, 400 colloc.)" if r["model"] == "pdl"
                    else f"EAND-ARN {r['model']} step, {r['case']} {r['nodes']}×{r['samples']}")
            goal = "≤ 1 GB; vs TensorFlow: see pdl_peer" if r["model"] == "pdl" else ""
            traffic = (f"{_fmt(r['gbyte_per_step'])} GB accessed, {100 * r['bw_fraction']:.0f} % of stream bandwidth "
                       f"({r['bound']}-bound), " if r.get("bound") else "")
            rows.append((what, f"{_fmt(best)} ms, {_fmt(r['gflop_per_step'])} GFLOP, MFU {100 * r['mfu']:.0f} %, {traffic}"
                               f"compile {_fmt(r['compile_s'])} s, peak RSS {_fmt(r['peak_rss_mb'])} MB", goal))
    peer = _load(d, "pdl_peer")
    if peer and peer.get("rows"):
        rows.append(("P-DL baseline vs TensorFlow peer (one interleaved run)",
                     "; ".join(f"{r['implementation']} {_fmt(r['ms_per_iter'])} ms, {_fmt(r['peak_rss_mb'])} MB"
                               for r in peer["rows"])
                     + f" — peer's best ÷ our best {_fmt(peer['summary']['peer_best_over_ours_median'])}×", "≥ 3×, ≤ 1 GB"))
    nd = _load(d, "nd_vs_ad")
    if nd:
        for r in nd["rows"]:
            rows.append((f"ND vs AD, {r['network']}, {r['what']} + grad ({r['points']} points)",
                         f"{_fmt(r['speedup'])}× faster ({_fmt(r['nd_ms'])} vs {_fmt(r['ad_ms'])} ms), "
                         f"{_fmt(r['ad_gflop'] / max(r['nd_gflop'], 1e-12))}× fewer FLOPs, temp "
                         f"{_fmt(r['nd_temp_mb'])} vs {_fmt(r['ad_temp_mb'])} MB", "≥ 5×"))
    sl = _load(d, "sparse_laplacian")
    if sl:
        s = sl["summary"]
        rows.append(("L @ U log-log slope vs n (segment_sum / BCOO / BCSR / dense)",
                     " / ".join(_fmt(s.get(f"loglog_slope_{f}")) for f in ("segment_sum", "bcoo", "bcsr", "dense")),
                     "≈ 1 sparse"))
        big = max(r["nodes"] for r in sl["rows"])
        at = {r["form"]: r["ms"] for r in sl["rows"] if r["nodes"] == big}
        rows.append((f"L @ U at {big} nodes × 661", ", ".join(f"{k} {_fmt(v)} ms" for k, v in at.items()), ""))
    tk = _load(d, "tikhonov_sweep")
    if tk:
        s = tk["summary"]
        rows.append(("Tikhonov-2, 50 λ, GSVD vs numpy solve per λ (f32)",
                     f"{_fmt(s.get('speedup_diag_float32'))}× (diagnostics + 1 solution), "
                     f"{_fmt(s.get('speedup_all_float32'))}× (all solutions); max rel. diff {_fmt(s.get('max_rel_diff_float32'))}",
                     "≥ 20×"))
    bt = _load(d, "batch_throughput")
    if bt and bt["rows"]:
        for method in dict.fromkeys(r["method"] for r in bt["rows"]):
            rs = [r for r in bt["rows"] if r["method"] == method]
            rows.append((f"solve_batch {method} patients/s (B = {', '.join(str(r['batch']) for r in rs)})",
                         ", ".join(_fmt(r["patients_per_s"]) for r in rs), "grows with B"))
    elif bt:
        rows.append(("solve_batch", "; ".join(bt.get("notes", [])), ""))
    bem = _load(d, "bem")
    if bem:
        rows.append(("BEM transfer_matrix (heart = torso nodes)",
                     ", ".join(f"{r['heart_nodes']}: {_fmt(r['s'])} s / {_fmt(r['peak_rss_mb'])} MB" for r in bem["rows"]), ""))
    mem = _load(d, "memory")
    if mem:
        rows.append(("EAND-ARN short run peak RSS (nodes×samples)",
                     ", ".join(f"{r['nodes']}×{r['samples']}: {_fmt(r['peak_rss_mb'])} MB" for r in mem["rows"]), ""))
    return rows


def markdown(d: Path) -> str:
    lines = ["| what | measured | goal / reference |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in headline_rows(d)]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m benchmarks.headline RESULT_DIR")
    print(markdown(Path(sys.argv[1])))
