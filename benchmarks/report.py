#!/usr/bin/env python
"""Summarise a pytest-benchmark JSON file as Markdown tables of speed-ups.

Usage::

    python benchmarks/report.py bench.json [--png ratios.png] [--stat median] [--no-groups]

For every benchmark group (one case: a CNN layer and batch size, or an image
size / kernel / dtype) it prints one table with, per implementation, the
median time in ms, the GFLOP/s (``extra_info["flops"]`` / time) and, for each
fastconv implementation, the speed-up against every peer of the group:
``peer time / fastconv time`` (> 1 means fastconv is faster). It then prints
the geometric mean of each (fastconv implementation, peer) speed-up over the
groups of each family (``extra_info["family"]``), plus the machine
information and the date stored in the JSON.

A table's "runs" column, shown when a group has it, gives the algorithm
each fastconv benchmark ran: ``extra_info["auto_choice"]`` (what
``algorithm="auto"`` chose, by ``fastconv.choose_algorithm``) or else
``extra_info["algorithm"]`` (a forced algorithm).

Performance targets, all printed in a final "Targets" section:

* Per case: a fastconv benchmark whose ``extra_info["target"]`` is
  ``{"peer": <impl>, "min_ratio": <minimum speed-up>}`` gets a row: its
  group, the peer, the measured speed-up ``peer time / its time`` (same
  statistic as above), the target and whether it is met. The "peer" may be
  any implementation of the same group, also another fastconv one (e.g.
  ``fastconv-direct``). A benchmark file declares its targets in one dict
  (case -> (peer, minimum ratio), e.g. ``TARGETS`` of
  ``test_bench_signal.py``) and copies each into the extra_info of the
  case's fastconv benchmarks; nothing else is needed.
* Geometric mean over a set of cases: ``extra_info["geomean_targets"]`` is
  a list of ``{"name", "groups": [group, ...], "peer", "min_ratio"}``; put
  it on the benchmarks of the implementation it judges (in any of the
  groups). The row gives the geometric mean of that implementation's
  speed-up against the peer over the groups, and is met when every group
  was measured and the mean reaches ``min_ratio``.
* Selector: benchmarks carrying ``extra_info["problem"]`` (an id) and
  ``extra_info["algorithm"]`` ("auto" or a forced algorithm) make a
  "Selector" section per family: per problem, auto's time / the fastest
  forced algorithm's time, then the geometric mean and the maximum of that
  ratio. ``extra_info["selector_target"] = {"max_geomean": .., "max_ratio":
  ..}`` on the "auto" benchmarks sets the family's targets (ratios at most
  these). When every "auto" benchmark of a family also carries
  ``extra_info["interleaved"] = {"ratio", "fastest", ...}`` (auto and the
  fastest forced algorithm timed in alternation), the targets are judged by those
  ratios; the separate benchmarks' ratios are shown beside them.

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
        # rows also carry "info": the benchmark's whole extra_info.
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
            "info": info,
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


def speedup(group, mine, other):
    """``other``'s seconds / ``mine``'s seconds in a group (any roles), or None."""
    if not group:
        return None
    secs = {}
    for r in group["rows"]:
        secs.setdefault(r["impl"], r["seconds"])
    if mine not in secs or other not in secs or secs[mine] <= 0:
        return None
    return secs[other] / secs[mine]


def _geomean(vals):
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def _runs(row):
    """The algorithm a fastconv row ran (auto's choice, else the forced one), or None."""
    info = row.get("info") or {}
    return info.get("auto_choice") or info.get("algorithm")


def targets(groups):
    """Rows ``(group, fastconv impl, peer, measured speed-up or None, target, met or None)``.

    One per fastconv benchmark that carries a target; the measured speed-up
    is None (and met None) when the peer was not measured in that group.
    """
    out = []
    for gname, group in groups.items():
        for r in group["rows"]:
            if r["role"] != "fastconv" or not r.get("target"):
                continue
            peer, want = r["target"]
            got = speedup(group, r["impl"], peer)
            out.append((gname, r["impl"], peer, got, want, None if got is None else got >= want))
    return out


def geomean_targets(groups):
    """One dict per (geomean target name, impl): name, impl, peer, groups (declared),
    measured (count), geomean, min (None when nothing measured), target, met
    (None unless every group was measured)."""
    specs = OrderedDict()
    for group in groups.values():
        for r in group["rows"]:
            declared = (r.get("info") or {}).get("geomean_targets") or []
            for spec in [declared] if isinstance(declared, dict) else declared:
                specs.setdefault((str(spec["name"]), r["impl"]),
                                 (tuple(spec["groups"]), str(spec["peer"]),
                                  float(spec["min_ratio"])))
    out = []
    for (name, impl), (gnames, peer, want) in specs.items():
        vals = [v for v in (speedup(groups.get(g), impl, peer) for g in gnames)
                if v is not None]
        gm = _geomean(vals) if vals else None
        met = None if gm is None or len(vals) < len(gnames) else gm >= want
        out.append(dict(name=name, impl=impl, peer=peer, groups=len(gnames),
                        measured=len(vals), geomean=gm, min=min(vals) if vals else None,
                        target=want, met=met))
    return out


def selector(groups):
    """Auto vs the fastest forced algorithm, per family and problem.

    Returns ``{family: {"problems": [...], "target": dict or None, "geomean",
    "max", "worst"}}``; each problem is a dict with ``problem``, ``group``,
    ``choice`` (what auto ran), ``auto`` and ``best`` seconds, ``best_alg``
    (fastest forced algorithm), ``forced`` (how many were timed) and
    ``ratio`` (auto / best; None without both).
    """
    fams = OrderedDict()
    for gname, group in groups.items():
        for r in group["rows"]:
            info = r.get("info") or {}
            if "problem" not in info or "algorithm" not in info:
                continue
            fam = fams.setdefault(group["family"], {"problems": OrderedDict(), "target": None})
            prob = fam["problems"].setdefault(str(info["problem"]), {
                "problem": str(info["problem"]), "group": gname, "choice": None,
                "auto": None, "best": None, "best_alg": None, "forced": 0, "ratio": None,
                "interleaved": None, "interleaved_alg": None})
            if info["algorithm"] == "auto":
                prob["auto"], prob["choice"] = r["seconds"], info.get("auto_choice")
                inter = info.get("interleaved")
                if inter:
                    prob["interleaved"] = float(inter["ratio"])
                    prob["interleaved_alg"] = str(inter["fastest"])
                if info.get("selector_target") and fam["target"] is None:
                    fam["target"] = dict(info["selector_target"])
            else:
                prob["forced"] += 1
                if prob["best"] is None or r["seconds"] < prob["best"]:
                    prob["best"], prob["best_alg"] = r["seconds"], str(info["algorithm"])
    for fam in fams.values():
        fam["problems"] = list(fam["problems"].values())
        for prob in fam["problems"]:
            if prob["auto"] is not None and prob["best"]:
                prob["ratio"] = prob["auto"] / prob["best"]
        rated = [p for p in fam["problems"] if p["ratio"] is not None]
        # The targets are judged by the interleaved ratios when every rated
        # problem has one (see test_bench_selector.py), else by the ratio of
        # the separate benchmarks.
        fam["basis"] = ("interleaved" if rated and all(p["interleaved"] for p in rated)
                        else "ratio")
        key = fam["basis"]
        fam["geomean"] = _geomean([p[key] for p in rated]) if rated else None
        fam["worst"] = max(rated, key=lambda p: p[key]) if rated else None
        fam["max"] = fam["worst"][key] if rated else None
        sep = [p["ratio"] for p in rated]
        fam["separate_geomean"] = _geomean(sep) if sep else None
        fam["separate_max"] = max(sep) if sep else None
    return fams


def selector_targets(fams):
    """Rows ``(family, statistic, measured or None, maximum, met or None)``."""
    out = []
    for fam_name, fam in fams.items():
        t = fam["target"] or {}
        basis = " (interleaved)" if fam.get("basis") == "interleaved" else ""
        for key, stat in (("max_geomean", "geomean"), ("max_ratio", "max")):
            if key in t:
                got = fam[stat]
                out.append((fam_name, f"{stat} of auto / fastest forced{basis}", got,
                            float(t[key]), None if got is None else got <= float(t[key])))
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


def render(data, groups, stat="median", show_groups=True):
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

        if not show_groups:
            continue
        show_runs = any(_runs(r) for r in rows if r["role"] == "fastconv")
        out.append(f"## {gname}")
        out.append("")
        head = (["impl"] + (["runs"] if show_runs else []) + [f"{stat} ms", "GFLOP/s", "threads"]
                + [f"vs {p}" for p in peers])
        out.append("| " + " | ".join(head) + " |")
        text_cols = 2 if show_runs else 1  # impl (and runs) left-aligned
        out.append("|" + "|".join(["---"] * text_cols + ["---:"] * (len(head) - text_cols))
                   + "|")
        for r in rows:
            gf = (f"{r['flops'] / r['seconds'] / 1e9:.2f}"
                  if r["flops"] and r["seconds"] > 0 else "—")
            cells = ([r["impl"]]
                     + ([(_runs(r) if r["role"] == "fastconv" else None) or "—"]
                        if show_runs else [])
                     + [_fmt_ms(r["seconds"]), gf,
                        "—" if r["threads"] is None else str(r["threads"])])
            for p in peers:
                cells.append(_fmt_ratio(rat.get((r["impl"], p))) if r["role"] == "fastconv"
                             else "—")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")

    if per_family:
        out.append("## Geometric means of the speed-ups per family")
        out.append("")
        out.append("| family | fastconv impl | peer | geomean speed-up | min | max | groups |")
        out.append("|---|---|---|---:|---:|---:|---:|")
        for fam, pairs in per_family.items():
            for (mine, peer), vals in sorted(pairs.items()):
                out.append(f"| {fam} | {mine} | {peer} | {_fmt_ratio(_geomean(vals))} | "
                           f"{_fmt_ratio(min(vals))} | {_fmt_ratio(max(vals))} | {len(vals)} |")
        out.append("")

    fams = selector(groups)
    for fam_name, fam in fams.items():
        out.append(f"## Selector ({fam_name}): auto vs the fastest forced algorithm")
        out.append("")
        out.append(f"Per problem, the {stat} time of algorithm=\"auto\" over that of the "
                   "fastest forced algorithm timed (> 1: auto slower; forced algorithms "
                   "that cannot serve a problem or were skipped as too slow are not "
                   "counted).")
        out.append("")
        out.append("The interleaved column times auto and the fastest forced algorithm "
                   "(named) in alternation (median over rounds, auto / that algorithm), so "
                   "that both see the same stretch of machine.")
        out.append("")
        out.append("| problem | auto runs | fastest forced | auto ms | fastest ms | "
                   "auto / fastest | interleaved (fastest) | forced timed |")
        out.append("|---|---|---|---:|---:|---:|---:|---:|")
        for p in fam["problems"]:
            label = p["group"] if p["group"].startswith(p["problem"]) else \
                f"{p['problem']} ({p['group']})"
            ratio = "—" if p["ratio"] is None else f"{p['ratio']:.2f}"
            inter = ("—" if p["interleaved"] is None
                     else f"{p['interleaved']:.2f} ({p['interleaved_alg']})")
            out.append(f"| {label} | {p['choice'] or '—'} | {p['best_alg'] or '—'} | "
                       f"{'—' if p['auto'] is None else _fmt_ms(p['auto'])} | "
                       f"{'—' if p['best'] is None else _fmt_ms(p['best'])} | "
                       f"{ratio} | {inter} | {p['forced']} |")
        out.append("")
        rated = [p for p in fam["problems"] if p["ratio"] is not None]
        if rated:
            picked = sum(1 for p in rated if p["choice"] and p["choice"] == p["best_alg"])
            within = sum(1 for p in rated if p["ratio"] <= 1.1)
            line = (f"{len(rated)} problems: geometric mean of auto / fastest "
                    f"{fam['separate_geomean']:.3f}, max {fam['separate_max']:.2f} by the "
                    f"separate benchmarks")
            if fam["basis"] == "interleaved":
                line += (f"; interleaved {fam['geomean']:.3f}, max {fam['max']:.2f} "
                         f"({fam['worst']['problem']}), the basis of the targets")
            out.append(line + f". auto ran the fastest forced algorithm on {picked}, and was "
                       f"within 1.1x of it on {within}.")
            out.append("")

    rows = targets(groups)
    geo = geomean_targets(groups)
    sel = selector_targets(fams)
    if rows or geo or sel:
        met = (sum(1 for row in rows if row[5]) + sum(1 for g in geo if g["met"])
               + sum(1 for row in sel if row[4]))
        out.append("## Targets")
        out.append("")
        out.append(f"{met} of {len(rows) + len(geo) + len(sel)} targets met "
                   f"(times: {stat} over rounds).")
        out.append("")

    def verdict(ok):
        return "—" if ok is None else ("yes" if ok else "**no**")

    if rows:
        out.append("Per case: speed-up = the named peer's time / the fastconv "
                   "implementation's time.")
        out.append("")
        out.append("| case | fastconv impl | peer | measured | target | met |")
        out.append("|---|---|---|---:|---:|---|")
        for gname, mine, peer, got, want, ok in rows:
            out.append(f"| {gname} | {mine} | {peer} | {_fmt_ratio(got)} | "
                       f">= {want:g}x | {verdict(ok)} |")
        out.append("")
    if geo:
        out.append("Geometric mean of the speed-up over a set of cases (met only when "
                   "every case was measured):")
        out.append("")
        out.append("| cases | fastconv impl | peer | measured cases | geomean | min | "
                   "target | met |")
        out.append("|---|---|---|---:|---:|---:|---:|---|")
        for g in geo:
            out.append(f"| {g['name']} | {g['impl']} | {g['peer']} | "
                       f"{g['measured']} of {g['groups']} | {_fmt_ratio(g['geomean'])} | "
                       f"{_fmt_ratio(g['min'])} | >= {g['target']:g}x | {verdict(g['met'])} |")
        out.append("")
    if sel:
        out.append("Selector: auto's time / the fastest forced algorithm's time.")
        out.append("")
        out.append("| family | statistic | measured | target | met |")
        out.append("|---|---|---:|---:|---|")
        for fam_name, what, got, want, ok in sel:
            shown = "—" if got is None else f"{got:.3f}"
            out.append(f"| {fam_name} | {what} | {shown} | <= {want:g} | {verdict(ok)} |")
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
    ap.add_argument("--no-groups", action="store_true",
                    help="leave out the per-group tables (summaries and targets only)")
    ap.add_argument("--stat", default="median",
                    choices=("median", "min", "mean"), help="statistic to compare (default median)")
    args = ap.parse_args(argv)
    data, groups = load(args.json, args.stat)
    if not groups:
        print(f"report.py: no benchmarks in {args.json}", file=sys.stderr)
        return 1
    text, _ = render(data, groups, args.stat, show_groups=not args.no_groups)
    print(text)
    if args.png:
        print(f"bar chart written to {plot(groups, args.png)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
