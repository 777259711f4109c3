#!/usr/bin/env python
"""Extra peak memory of one large filtering call, each in a fresh process.

Usage::

    python benchmarks/peak_memory.py [--size 8192] [--ksize 7] [--impl NAME ...]

For each implementation a new Python process imports everything, allocates
the float32 image (size x size), the kernel and the preallocated output
(and writes to every page of them, so they are resident), records the peak
resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), makes
ONE call writing into the output, and records the peak again. The
difference is the working memory the call needed beyond its inputs and
output (thread stacks, im2col tiles, padded copies ...). A result equal to
the output size would mean the call allocated a full temporary result.

Implementations:

``fastconv-auto``   ``fastconv.conv2d(img, k, padding="same", out=out)``
``fastconv-im2col`` the same with ``algorithm="im2col"``
``scipy.ndimage``   ``scipy.ndimage.correlate(img, k, output=out, mode="constant")``

Linux reports ``ru_maxrss`` in KiB, macOS in bytes; both are converted to MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

IMPLS = ("fastconv-auto", "fastconv-im2col", "scipy.ndimage")
MiB = 1024.0 * 1024.0


def _maxrss_bytes():
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def _current_rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(impl, size, ksize):
    """Run in the fresh process: one call, print a JSON line with the figures."""
    import numpy as np
    import scipy.ndimage

    if impl.startswith("fastconv"):
        import fastconv

        algorithm = impl.split("-", 1)[1]
        threads = fastconv.get_num_threads()

        def call():
            return fastconv.conv2d(img, k, padding="same", algorithm=algorithm, out=out)
    elif impl == "scipy.ndimage":
        threads = 1

        def call():
            return scipy.ndimage.correlate(img, k, output=out, mode="constant", cval=0.0)
    else:
        raise SystemExit(f"unknown impl {impl!r}")

    rng = np.random.default_rng(12345)
    img = rng.random((size, size), dtype=np.float32)
    k = rng.random((ksize, ksize))
    k = (k / k.sum()).astype(np.float32)
    out = np.empty_like(img)
    out.fill(0.0)  # touch every page so the output is already resident

    # Transient allocations made while importing (e.g. a big library) can
    # leave the high-water mark above the current RSS and hide part of the
    # call's peak. Linux resets the mark to the current RSS on "5" written
    # to /proc/self/clear_refs (ru_maxrss follows it).
    peak_reset = _reset_peak()
    rss_before = _current_rss_bytes()
    peak_before = _maxrss_bytes()
    res = call()
    peak_after = _maxrss_bytes()
    rss_after = _current_rss_bytes()
    if res is not None and res is not out and not np.shares_memory(res, out):
        note = "result is not the out= array"
    else:
        note = ""
    print(json.dumps({
        "impl": impl,
        "threads": threads,
        "peak_before": peak_before,
        "peak_after": peak_after,
        "rss_before": rss_before,
        "rss_after": rss_after,
        "peak_reset": peak_reset,
        "checksum": float(out[::97, ::89].astype(np.float64).sum()),
        "note": note,
    }))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--size", type=int, default=8192, help="image side (default 8192)")
    ap.add_argument("--ksize", type=int, default=7, help="kernel side (default 7)")
    ap.add_argument("--impl", nargs="+", choices=IMPLS, default=list(IMPLS))
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    ap.add_argument("--child", choices=IMPLS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        child(args.child, args.size, args.ksize)
        return 0

    array_mib = args.size * args.size * 4 / MiB
    print(f"# extra peak RSS of one {args.size}x{args.size} float32 call, k={args.ksize}, "
          f"into a preallocated out=")
    print(f"image: {array_mib:.0f} MiB, out: {array_mib:.0f} MiB (allocated and touched before "
          f"the measurement); one fresh process per implementation")
    print()
    print("| impl | threads | extra peak RSS MiB | extra / out size | RSS before MiB "
          "| peak RSS before MiB | peak RSS after MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    results = []
    status = 0
    for impl in args.impl:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", impl,
               "--size", str(args.size), "--ksize", str(args.ksize)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            status = 1
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
            print(f"| {impl} | — | failed: {tail[0]} | — | — | — |")
            continue
        rec = json.loads(proc.stdout.strip().splitlines()[-1])
        extra = (rec["peak_after"] - rec["peak_before"]) / MiB
        rec["extra_peak_mib"] = extra
        results.append(rec)
        notes = [rec["note"]] if rec["note"] else []
        rss = rec["rss_before"]
        if not rec["peak_reset"] and rss is not None and rec["peak_before"] > rss + MiB:
            notes.append("peak before the call exceeded the RSS (import transients): "
                         "the extra is a lower bound")
        print(f"| {impl} | {rec['threads']} | {extra:.1f} | {extra / array_mib:.3f} | "
              f"{'?' if rss is None else f'{rss / MiB:.1f}'} | "
              f"{rec['peak_before'] / MiB:.1f} | {rec['peak_after'] / MiB:.1f} |"
              + (f" {'; '.join(notes)}" if notes else ""))
    sums = {r["impl"]: r["checksum"] for r in results}
    if len(set(round(v, 2) for v in sums.values())) > 1:
        print(f"\nwarning: the outputs' checksums differ: {sums}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"size": args.size, "ksize": args.ksize, "results": results}, f, indent=2)
    return status


if __name__ == "__main__":
    sys.exit(main())
