#!/usr/bin/env python
"""Summarise a pytest-benchmark JSON file as Markdown tables of speed-ups.

Usage::

    python benchmarks/report.py bench.json [--png ratios.png] [--stat median]

For every benchmark group (one case: a CNN layer and batch size, or an image
size / kernel / dtype) it prints one table with, per implementation, the
median time in ms, the GFLOP/s (``extra_info["flops"]`` / time) and, for each
fastconv implementation, the speed-up against every peer of the group:
``peer time / fastconv time`` (> 1 means fastconv is faster). It then prints
the geometric mean of each (fastconv implementation, peer) speed-up over the
groups of each family (``extra_info["family"]``), plus the machine
information and the date stored in the JSON.

Performance targets: a fastconv benchmark whose ``extra_info["target"]`` is
``{"peer": <peer impl>, "min_ratio": <minimum speed-up>}`` gets a row in a
final "Targets" table: its group, the peer, the measured speed-up against
that peer (same statistic as above), the target and whether it is met. A
benchmark file declares its targets in one dict (case -> (peer, minimum
ratio), e.g. ``TARGETS`` of ``test_bench_signal.py``) and copies each into
the extra_info of the case's fastconv benchmarks; nothing else is needed.

Benchmarks written by fastconv's suite carry ``extra_info`` keys ``impl``,
``role`` ("fastconv" or "peer"), ``family`` and ``flops``; for other JSON
files the implementation falls back to the test name and the role to
"fastconv" when that name starts with "fastconv".
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import OrderedDict, defaultdict


def _impl_of(bench):
    info = bench.get("extra_info") or {}
    if info.get("impl"):
        return str(info["impl"])
    name = bench.get("name", "?")
    return name.split("[", 1)[0].removeprefix("test_")


def _role_of(bench, impl):
    info = bench.get("extra_info") or {}
    role = info.get("role")
    if role in ("fastconv", "peer"):
        return role
    return "fastconv" if impl.startswith("fastconv") else "peer"


def _target_of(info):
    """``extra_info["target"]`` as ``(peer impl, minimum speed-up)``, or None.

    Accepts ``{"peer": ..., "min_ratio": ...}`` or a ``[peer, min_ratio]`` pair.
    """
    t = info.get("target")
    if not t:
        return None
    peer, want = (t["peer"], t["min_ratio"]) if isinstance(t, dict) else t
    return str(peer), float(want)


def load(path, stat="median"):
    """Read the JSON and return ``(meta, groups)``.

    ``groups`` maps group name -> {"family": str, "rows": [row, ...]} with
    rows ``{"impl", "role", "seconds", "flops", "rounds", "threads", "target"}``
    in file order (``target``: ``(peer impl, minimum speed-up)`` or None).
    """
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    groups = OrderedDict()
    for bench in data.get("benchmarks", []):
        stats = bench.get("stats") or {}
        if stat not in stats:
            continue
        info = bench.get("extra_info") or {}
        impl = _impl_of(bench)
        group = bench.get("group") or bench.get("fullname", impl).split("::", 1)[0]
        g = groups.setdefault(group, {"family": info.get("family", "other"), "rows": []})
        g["rows"].append({
            "impl": impl,
            "role": _role_of(bench, impl),
            "seconds": float(stats[stat]),
            "flops": info.get("flops"),
            "rounds": stats.get("rounds"),
            "threads": info.get("threads"),
            "target": _target_of(info),
        })
    return data, groups


def ratios(group):
    """``{(fastconv impl, peer impl): peer seconds / fastconv seconds}``."""
    rows = group["rows"]
    out = {}
    for mine in (r for r in rows if r["role"] == "fastconv"):
        for peer in (r for r in rows if r["role"] == "peer"):
            if mine["seconds"] > 0:
                out[(mine["impl"], peer["impl"])] = peer["seconds"] / mine["seconds"]
    return out


def targets(groups):
    """Rows ``(group, fastconv impl, peer, measured speed-up or None, target, met or None)``.

    One per fastconv benchmark that carries a target; the measured speed-up
    is None (and met None) when the peer was not measured in that group.
    """
    out = []
    for gname, group in groups.items():
        rat = ratios(group)
        for r in group["rows"]:
            if r["role"] != "fastconv" or not r.get("target"):
                continue
            peer, want = r["target"]
            got = rat.get((r["impl"], peer))
            out.append((gname, r["impl"], peer, got, want, None if got is None else got >= want))
    return out


def _fmt_ratio(x):
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:.0f}x"
    if x >= 10:
        return f"{x:.1f}x"
    return f"{x:.2f}x"


def _fmt_ms(s):
    ms = s * 1e3
    if ms >= 100:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.4f}"


def _machine_lines(data):
    m = data.get("machine_info") or {}
    cpu = m.get("cpu") or {}
    lines = []
    brand = cpu.get("brand_raw") or m.get("processor") or "?"
    lines.append(f"- CPU: {brand}; logical CPUs: {cpu.get('count', '?')}; "
                 f"arch: {cpu.get('arch_string_raw') or m.get('machine', '?')}")
    flags = set(cpu.get("flags") or ())
    simd = [f for f in ("avx512f", "avx2", "fma", "neon", "asimd") if f in flags]
    if simd:
        lines.append(f"- SIMD flags: {', '.join(simd)}")
    lines.append(f"- node: {m.get('node', '?')}; system: {m.get('system', '?')} "
                 f"{m.get('release', '')}".rstrip())
    lines.append(f"- Python: {m.get('python_implementation', '')} "
                 f"{m.get('python_version', '?')}".replace("  ", " "))
    lines.append(f"- date: {data.get('datetime', '?')}; pytest-benchmark {data.get('version', '?')}")
    commit = data.get("commit_info") or {}
    if commit.get("id") and commit["id"] != "unknown":
        dirty = " (dirty)" if commit.get("dirty") else ""
        lines.append(f"- commit: {commit['id'][:12]}{dirty} {commit.get('branch') or ''}".rstrip())
    return lines


def render(data, groups, stat="median"):
    out = ["# fastconv benchmark report", ""]
    out += _machine_lines(data)
    out += ["", f"Times are the {stat} over rounds; speed-up = peer time / fastconv time "
            "(> 1: fastconv faster). GFLOP/s counts 2 x multiply-adds of the dense "
            "computation.", ""]

    per_family = defaultdict(lambda: defaultdict(list))
    for gname, group in groups.items():
        rows = group["rows"]
        peers = [r["impl"] for r in rows if r["role"] == "peer"]
        rat = ratios(group)
        for (mine, peer), r in rat.items():
            per_family[group["family"]][(mine, peer)].append(r)

        out.append(f"## {gname}")
        out.append("")
        head = ["impl", f"{stat} ms", "GFLOP/s", "threads"] + [f"vs {p}" for p in peers]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        for r in rows:
            gf = (f"{r['flops'] / r['seconds'] / 1e9:.2f}"
                  if r["flops"] and r["seconds"] > 0 else "—")
            cells = [r["impl"], _fmt_ms(r["seconds"]), gf,
                     "—" if r["threads"] is None else str(r["threads"])]
            for p in peers:
                cells.append(_fmt_ratio(rat.get((r["impl"], p))) if r["role"] == "fastconv"
                             else "—")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")

    out.append("## Geometric means of the speed-ups per family")
    out.append("")
    out.append("| family | fastconv impl | peer | geomean speed-up | min | max | groups |")
    out.append("|---|---|---|---:|---:|---:|---:|")
    for fam, pairs in per_family.items():
        for (mine, peer), vals in sorted(pairs.items()):
            gm = math.exp(sum(math.log(v) for v in vals) / len(vals))
            out.append(f"| {fam} | {mine} | {peer} | {_fmt_ratio(gm)} | "
                       f"{_fmt_ratio(min(vals))} | {_fmt_ratio(max(vals))} | {len(vals)} |")
    out.append("")

    rows = targets(groups)
    if rows:
        met = sum(1 for row in rows if row[5])
        out.append("## Targets")
        out.append("")
        out.append(f"Speed-up ({stat}) of each fastconv implementation against the peer "
                   f"its target names; {met} of {len(rows)} met.")
        out.append("")
        out.append("| case | fastconv impl | peer | measured | target | met |")
        out.append("|---|---|---|---:|---:|---|")
        for gname, mine, peer, got, want, ok in rows:
            verdict = "—" if ok is None else ("yes" if ok else "**no**")
            out.append(f"| {gname} | {mine} | {peer} | {_fmt_ratio(got)} | "
                       f">= {want:g}x | {verdict} |")
        out.append("")
    return "\n".join(out), per_family


def plot(groups, path):
    """Horizontal bar chart of the speed-ups, one panel per family, log x axis."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter
    except ImportError as exc:
        raise SystemExit(f"report.py: --png needs matplotlib ({exc})") from exc

    families = OrderedDict()
    for gname, group in groups.items():
        rat = ratios(group)
        if rat:
            families.setdefault(group["family"], []).append((gname, rat))
    if not families:
        raise SystemExit("report.py: no fastconv/peer pairs to plot")

    heights = []
    for entries in families.values():
        pairs = sorted({p for _, rat in entries for p in rat})
        heights.append(max(2.0, 0.25 * len(entries) * max(1, len(pairs)) + 1.2))
    fig = Figure(figsize=(11, sum(heights)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(families), 1, squeeze=False,
                        gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, (fam, entries) in zip(axes, families.items()):
        pairs = sorted({p for _, rat in entries for p in rat})
        bar_h = 0.8 / len(pairs)
        for j, pair in enumerate(pairs):
            ys, xs = [], []
            for i, (_, rat) in enumerate(entries):
                if pair in rat:
                    ys.append(i + (j - (len(pairs) - 1) / 2) * bar_h)
                    xs.append(rat[pair])
            # Bars start at 1 (parity): right = fastconv faster, left = slower.
            bars = ax.barh(ys, [x - 1.0 for x in xs], left=1.0, height=bar_h,
                           label=f"{pair[0]} vs {pair[1]}")
            for bar, x in zip(bars, xs):
                ax.annotate(_fmt_ratio(x), (x, bar.get_y() + bar.get_height() / 2),
                            xytext=(3 if x >= 1 else -3, 0), textcoords="offset points",
                            ha="left" if x >= 1 else "right", va="center", fontsize=6)
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        lo = min(min(r.values()) for _, r in entries)
        hi = max(max(r.values()) for _, r in entries)
        ax.set_xlim(min(lo, 1.0) / 1.6, max(hi, 1.0) * 1.6)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_yticks(range(len(entries)))
        ax.set_yticklabels([g for g, _ in entries], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("speed-up (peer time / fastconv time), log scale")
        ax.set_title(f"family: {fam}")
        ax.legend(fontsize=7, loc="best")
        ax.grid(axis="x", which="both", alpha=0.3)
    fig.savefig(path, dpi=100)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("json", help="pytest-benchmark JSON file (--benchmark-json=...)")
    ap.add_argument("--png", metavar="PATH", help="also draw the speed-ups as a bar chart")
    ap.add_argument("--stat", default="median",
                    choices=("median", "min", "mean"), help="statistic to compare (default median)")
    args = ap.parse_args(argv)
    data, groups = load(args.json, args.stat)
    if not groups:
        print(f"report.py: no benchmarks in {args.json}", file=sys.stderr)
        return 1
    text, _ = render(data, groups, args.stat)
    print(text)
    if args.png:
        print(f"bar chart written to {plot(groups, args.png)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
