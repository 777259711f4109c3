#!/usr/bin/env python
"""fastconv on a Dask cluster vs dask-image: issue 8's cluster target.

Usage::

    python benchmarks/dask_cluster.py [--size 16384] [--chunk 2048] [--ksize 7]
                                      [--rounds 3] [--memory-limit 6GiB] [--no-check]
                                      [--only IMPL ...]

What it does, in one process (the client) driving a
``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``:

1. Builds a seeded float32 image of ``size`` x ``size`` in ``chunk`` x
   ``chunk`` chunks on the workers (each block drawn from its own
   ``numpy.random.default_rng([SEED, i, j])``, so the client never holds
   it) and persists it in the workers' memory.
2. Times, in alternation (the order rotates every round; one untimed
   warm-up call each first), with the seeded ``ksize`` x ``ksize`` kernel
   normalised to sum 1:

   ``fastconv``          ``fastconv.conv2d(x, k, padding="same")`` (zero padding)
   ``dask-image``        ``dask_image.ndfilters.correlate(x, k, mode="constant")``
   ``map_overlap+fastconv``  hand-written ``x.map_overlap(fastconv.conv2d(block,
                         k, padding="same", workers=1), depth=k//2,
                         boundary="none")``: what a user could write without
                         fastconv's Dask support (a reference, no target)
   ``trivial map_overlap`` ``x.map_overlap(lambda b: b, depth=k//2,
                         boundary="none")``: Dask's halo exchange and
                         scheduling alone, no arithmetic

   Each is reduced on the cluster by ``y.sum().compute()``, identically for
   all: only a float32 scalar comes back, and no worker ever holds the
   whole result next to its half of the image (persisting a 1 GiB result
   would add 512 MiB per worker and break the 1 GiB budget). The sum of a
   2048x2048 chunk costs about 2 ms, so it is a small part of each time.
3. Measures the peak resident set size of each worker process while each
   implementation runs: a sampler thread in every worker (started with
   ``client.run``) reads ``psutil.Process().memory_info().rss`` every
   20 ms; the maximum is reset before and collected after each timed call.
   The table gives the worst worker, the largest over the rounds.
4. Times ``fastconv.conv2d`` on one interior block with its one-sided halo
   (``chunk + k - 1`` square, ``padding=0``, ``workers=1``) and
   ``scipy.ndimage.correlate`` on the same block, in this process,
   alternating: the per-chunk arithmetic, times ``n_chunks / 2`` is the
   lower bound of a 2-worker run.
5. Unless ``--no-check``: gathers the image and the fastconv result in row
   bands and compares the result with the in-memory
   ``fastconv.conv2d(image, k, padding="same")`` bitwise (and, if not
   bitwise equal, reports the largest difference; the contract promises
   bitwise equality for ``algorithm="direct"`` and equality to rounding
   for ``"auto"``).

Prints every round, medians, ratios (dask-image time / fastconv time, of
the medians and round by round) and a Markdown table. The issue's
target: fastconv >= 4x dask-image on the 16384x16384, 2048-chunk, 7x7
case, peak memory per worker under 1 GiB.

``--only`` times a subset (labels as above). A quick run:
``--size 4096 --chunk 1024 --rounds 2`` (about 10 s).

``--memory-limit`` (per worker, default 6 GiB) is far above what the run
needs so that Dask's memory manager never spills, pauses or restarts a
worker: the measured RSS is the run's own.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import numpy as np

SEED = 20261122
MiB = 1024.0 * 1024.0


# --- worker-side RSS sampler (shipped to the workers with client.run) ---------------


def _start_sampler(dask_worker, period=0.02):
    """Start (once) a daemon thread recording this worker process's peak RSS."""
    import threading

    import psutil

    state = getattr(dask_worker, "_fastconv_rss", None)
    if state is not None:
        return True
    proc = psutil.Process()
    state = {"max": proc.memory_info().rss, "stop": False}

    def loop():
        while not state["stop"]:
            rss = proc.memory_info().rss
            state["max"] = max(state["max"], rss)
            time.sleep(period)

    state["thread"] = threading.Thread(target=loop, name="fastconv-rss", daemon=True)
    state["thread"].start()
    dask_worker._fastconv_rss = state
    return True


def _reset_peak(dask_worker):
    import gc

    import psutil

    gc.collect()
    state = dask_worker._fastconv_rss
    state["max"] = psutil.Process().memory_info().rss
    return state["max"]


def _read_peak(dask_worker):
    import psutil

    state = dask_worker._fastconv_rss
    state["max"] = max(state["max"], psutil.Process().memory_info().rss)
    return state["max"]


# --- the problem ------------------------------------------------------------------------


def make_kernel(ksize):
    k = np.random.default_rng([SEED, ksize]).random((ksize, ksize))
    return (k / k.sum()).astype(np.float32)


def _fill_block(block, block_id=None):
    i, j = block_id
    rng = np.random.default_rng([SEED, i, j])
    return rng.random(block.shape, dtype=np.float32)


def make_image(size, chunk):
    """Lazy seeded float32 image; every block is drawn on the worker that computes it."""
    import dask.array as da

    template = da.empty((size, size), dtype=np.float32, chunks=(chunk, chunk))
    return template.map_blocks(_fill_block, dtype=np.float32)


def implementations(k):
    """label -> function(x) returning the lazy Dask result."""
    import dask_image.ndfilters

    import fastconv

    depth = k.shape[0] // 2

    def fc(x):
        return fastconv.conv2d(x, k, padding="same")

    def di(x):
        return dask_image.ndfilters.correlate(x, k, mode="constant", cval=0.0)

    def block_fc(b):
        return fastconv.conv2d(b, k, padding="same", workers=1)

    def hand(x):
        return x.map_overlap(block_fc, depth=depth, boundary="none", dtype=x.dtype)

    def trivial(x):
        return x.map_overlap(lambda b: b, depth=depth, boundary="none", dtype=x.dtype)

    return {
        "fastconv": fc,
        "dask-image": di,
        "map_overlap+fastconv": hand,
        "trivial map_overlap": trivial,
    }


# --- measurement ------------------------------------------------------------------------


def timed_rounds(client, x, impls, rounds, log):
    """Alternate the implementations; return {label: [seconds]} and {label: peak RSS}."""
    times = {name: [] for name in impls}
    peaks = {name: 0 for name in impls}
    names = list(impls)
    for name in names:  # warm-up: imports, graph code paths, worker caches
        impls[name](x).sum().compute()
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            y = impls[name](x)
            client.run(_reset_peak)
            t0 = time.perf_counter()
            y.sum().compute()
            dt = time.perf_counter() - t0
            peak = max(client.run(_read_peak).values())
            times[name].append(dt)
            peaks[name] = max(peaks[name], peak)
            log(f"  round {r + 1}: {name:<22s} {dt:7.3f} s  peak worker RSS "
                f"{peak / MiB:7.1f} MiB")
    return times, peaks


def per_chunk_times(chunk, k, rounds=7):
    """Single-threaded time of one interior block with its halo: fastconv vs ndimage."""
    import scipy.ndimage

    import fastconv

    n = chunk + k.shape[0] - 1
    block = np.random.default_rng([SEED, 1, n]).random((n, n), dtype=np.float32)
    calls = {
        "fastconv.conv2d (valid, workers=1)":
            lambda: fastconv.conv2d(block, k, padding=0, workers=1),
        "scipy.ndimage.correlate":
            lambda: scipy.ndimage.correlate(block, k, mode="constant", cval=0.0),
    }
    for f in calls.values():
        f()
    out = {name: [] for name in calls}
    for _ in range(rounds):
        for name, f in calls.items():
            t0 = time.perf_counter()
            f()
            out[name].append(time.perf_counter() - t0)
    choice = fastconv.choose_algorithm(fastconv.conv2d, block, k, padding=0).algorithm
    return {name: statistics.median(v) for name, v in out.items()}, n, choice


def check_result(x, y_lazy, k, chunk, log):
    """Compare the Dask result with the in-memory call, gathering row bands."""
    import fastconv

    size = x.shape[0]
    img = np.empty(x.shape, dtype=np.float32)
    for r0 in range(0, size, chunk):
        img[r0:r0 + chunk] = x[r0:r0 + chunk].compute()
    t0 = time.perf_counter()
    ref = fastconv.conv2d(img, k, padding="same")
    log(f"  in-memory fastconv.conv2d on the whole image: {time.perf_counter() - t0:.3f} s "
        f"({fastconv.get_num_threads()} threads, runs "
        f"{fastconv.choose_algorithm(fastconv.conv2d, img, k, padding='same').algorithm})")
    del img
    got = np.empty(ref.shape, dtype=ref.dtype)
    for r0 in range(0, size, chunk):
        got[r0:r0 + chunk] = y_lazy[r0:r0 + chunk].compute()
    equal = bool(np.array_equal(got, ref))
    maxdiff = 0.0 if equal else float(np.max(np.abs(got.astype(np.float64) - ref)))
    ndiff = 0 if equal else int(np.count_nonzero(got != ref))
    return equal, maxdiff, ndiff


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--size", type=int, default=16384, help="image side (default 16384)")
    ap.add_argument("--chunk", type=int, default=2048, help="chunk side (default 2048)")
    ap.add_argument("--ksize", type=int, default=7, help="kernel side (default 7)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds per impl (default 3)")
    ap.add_argument("--memory-limit", default="6GiB",
                    help="Dask memory_limit per worker (default 6GiB: never spills)")
    ap.add_argument("--no-check", action="store_true",
                    help="skip the comparison with the in-memory result")
    ap.add_argument("--only", nargs="+", metavar="IMPL",
                    help="time only these implementations (labels as in the docstring)")
    args = ap.parse_args(argv)

    import dask
    import dask_image  # noqa: F401  (fail early if missing)
    import distributed
    from distributed import Client, LocalCluster

    import fastconv

    def log(msg):
        print(msg, flush=True)

    size, chunk, k = args.size, args.chunk, make_kernel(args.ksize)
    n_chunks = (-(-size // chunk)) ** 2
    log(f"# fastconv Dask cluster benchmark: {size}x{size} float32 "
        f"({size * size * 4 / MiB:.0f} MiB) in {chunk}x{chunk} chunks ({n_chunks}), "
        f"{args.ksize}x{args.ksize} kernel")
    log(f"python {platform.python_version()}, numpy {np.__version__}, dask {dask.__version__}, "
        f"distributed {distributed.__version__}, fastconv {fastconv.__version__}; "
        f"{platform.processor() or platform.machine()}")

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      memory_limit=args.memory_limit, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.run(_start_sampler)
        rss0 = client.run(_reset_peak)
        log(f"worker RSS before the image: "
            f"{', '.join(f'{v / MiB:.0f}' for v in rss0.values())} MiB")
        t0 = time.perf_counter()
        x = make_image(size, chunk).persist()
        distributed.wait(x)
        rss1 = client.run(_reset_peak)
        log(f"image persisted in {time.perf_counter() - t0:.1f} s; worker RSS "
            f"{', '.join(f'{v / MiB:.0f}' for v in rss1.values())} MiB")

        impls = implementations(k)
        if args.only:
            impls = {name: impls[name] for name in args.only}
        times, peaks = timed_rounds(client, x, impls, args.rounds, log)
        med = {name: statistics.median(v) for name, v in times.items()}

        per_chunk, n, choice = per_chunk_times(chunk, k)

        check = None
        if not args.no_check and "fastconv" in impls:
            log("checking against the in-memory result ...")
            check = check_result(x, impls["fastconv"](x), k, chunk, log)

    log("")
    log(f"| implementation | median s ({args.rounds} rounds) | all rounds s | "
        f"dask-image / it | peak RSS per worker MiB |")
    log("|---|---:|---|---:|---:|")
    for name in impls:
        ratio = (f"{med['dask-image'] / med[name]:.2f}x" if "dask-image" in med else "—")
        log(f"| {name} | {med[name]:.3f} | "
            f"{', '.join(f'{t:.2f}' for t in times[name])} | {ratio} | "
            f"{peaks[name] / MiB:.0f} |")
    log("")
    log(f"worker RSS with the persisted image, before the runs: "
        f"{max(rss1.values()) / MiB:.0f} MiB (largest worker)")
    log(f"per-chunk arithmetic on one {n}x{n} block (single thread, this process):")
    for name, t in per_chunk.items():
        log(f"  {name}: {t * 1e3:.1f} ms -> x {n_chunks}/2 chunks per worker = "
            f"{t * n_chunks / 2:.2f} s" + (f" (runs {choice})" if "fastconv" in name else ""))
    if "fastconv" in med and "trivial map_overlap" in med:
        log(f"fastconv - trivial map_overlap = {med['fastconv'] - med['trivial map_overlap']:.3f}"
            f" s; fastconv - per-chunk bound = "
            f"{med['fastconv'] - per_chunk['fastconv.conv2d (valid, workers=1)'] * n_chunks / 2:.3f} s")
    if "fastconv" in med and "dask-image" in med:
        per_round = [d / f for d, f in zip(times["dask-image"], times["fastconv"])]
        log(f"dask-image / fastconv round by round: "
            f"{', '.join(f'{r:.2f}x' for r in per_round)}")
    issue_case = (size, chunk, args.ksize) == (16384, 2048, 7)
    what = "issue 8's target" if issue_case else "issue 8's target (set for 16384/2048/k7)"
    if "fastconv" in med and "dask-image" in med:
        ratio = med["dask-image"] / med["fastconv"]
        log(f"{what}: fastconv >= 4x dask-image: measured {ratio:.2f}x -> "
            f"{'met' if ratio >= 4 else 'NOT met'}")
    if "fastconv" in peaks:
        log(f"{what}: peak RSS per worker < 1 GiB: {peaks['fastconv'] / MiB:.0f} MiB -> "
            f"{'met' if peaks['fastconv'] < 1024 * MiB else 'NOT met'}")
    if check is not None:
        equal, maxdiff, ndiff = check
        log("result vs in-memory fastconv.conv2d: " + (
            "bitwise equal" if equal else
            f"NOT bitwise equal: {ndiff} elements differ, max |diff| {maxdiff:.3g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
