"""GPU benchmarks (issue 7): fastconv's CuPy backend against its peers, side
by side in one process, timed with CUDA events.

Run on a machine with an NVIDIA GPU, CuPy and (for the CNN peers) PyTorch::

    python benchmarks/gpu_bench.py [--quick] [--json FILE]

Three families, each printed as a table of median times and speed-ups
(peer time / fastconv time):

* CNN layers of DESIGN.md section 5 (the layers of test_bench_cnn.py),
  float32, N=1 and N=32: ``fastconv.conv2d`` (``algorithm="auto"`` and each
  forced CuPy algorithm) against ``torch.nn.functional.conv2d`` on cuDNN with
  ``torch.backends.cudnn.benchmark = True`` and TF32 off (a float32
  comparison). Target: geometric mean of the "auto" speed-ups at N=32
  >= 0.7.
* One-channel images: 8192x8192 float32 with 3x3, 7x7 and 15x15 kernels,
  ``fastconv.conv2d(image, kernel, padding="same")`` against
  ``cupyx.scipy.ndimage.correlate(image, kernel, mode="constant")``.
  Target for 7x7: >= 2x.
* Signal cases: ``fastconv.signal.fftconvolve`` and
  ``fastconv.signal.convolve`` against ``cupyx.scipy.signal.fftconvolve`` and
  ``cupyx.scipy.signal.convolve`` (1-D long signals, 2-D images).  Target:
  fftconvolve >= 1.0x.

Every result is also checked against the peer's (the figures of a wrong
answer are not reported as a speed-up).  Times are the median of
``cupyx.profiler.benchmark``'s GPU times (CUDA events around each call on the
current stream, which PyTorch's default stream shares).
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_bench_cnn import LAYERS  # noqa: E402  (the CPU benchmark's layer table)

CNN_BATCHES = (1, 32)
IMAGE_KERNELS = (3, 7, 15)
IMAGE_SIZE = 8192


def _time(fn, quick):
    from cupyx.profiler import benchmark

    res = benchmark(fn, n_warmup=3 if quick else 10, n_repeat=10 if quick else 50)
    return float(np.median(res.gpu_times[0]))


def _close(a, b, rtol):
    import cupy as cp

    a = cp.asarray(a, dtype=cp.float64)
    b = cp.asarray(b, dtype=cp.float64)
    scale = float(cp.abs(b).max()) or 1.0
    return float(cp.abs(a - b).max()) <= rtol * scale


def cnn(quick, rows):
    import cupy as cp
    import torch
    import torch.nn.functional as F

    import fastconv

    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    rng = np.random.default_rng(0)
    for name, (cin, cout, h, k, stride, pad, groups) in LAYERS.items():
        for n in CNN_BATCHES:
            x = cp.asarray(rng.standard_normal((n, cin, h, h), dtype=np.float32))
            w = cp.asarray(rng.standard_normal((cout, cin // groups, k, k), dtype=np.float32)
                           * np.float32(math.sqrt(2.0 / (cin // groups * k * k))))
            tx, tw = torch.from_dlpack(x), torch.from_dlpack(w)
            ref = F.conv2d(tx, tw, stride=stride, padding=pad, groups=groups)
            t_torch = _time(lambda: F.conv2d(tx, tw, stride=stride, padding=pad,
                                             groups=groups), quick)
            row = {"family": "cnn", "case": f"{name} N={n}", "torch": t_torch}
            for algorithm in ("auto", "direct", "im2col", "fft", "winograd"):
                def run(a=algorithm):
                    return fastconv.conv2d(x, w, stride=stride, padding=pad, groups=groups,
                                           algorithm=a)
                try:
                    got = run()
                except (ValueError, TypeError) as exc:
                    row[algorithm] = f"n/a ({str(exc)[:40]})"
                    continue
                if not _close(got, cp.from_dlpack(ref), 1e-3):
                    row[algorithm] = "WRONG"
                    continue
                row[algorithm] = _time(run, quick)
            row["auto_choice"] = str(fastconv.choose_algorithm(
                fastconv.conv2d, x, w, stride=stride, padding=pad, groups=groups).algorithm)
            rows.append(row)
            _print_row(row, "torch")


def image(quick, rows):
    import cupy as cp
    from cupyx.scipy import ndimage

    import fastconv

    rng = np.random.default_rng(1)
    img = cp.asarray(rng.standard_normal((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32))
    for k in IMAGE_KERNELS:
        ker = cp.asarray(rng.standard_normal((k, k), dtype=np.float32))
        ref = ndimage.correlate(img, ker, mode="constant")
        row = {"family": "image", "case": f"{IMAGE_SIZE}^2 k{k} float32",
               "cupyx.ndimage": _time(lambda: ndimage.correlate(img, ker, mode="constant"),
                                      quick)}
        for algorithm in ("auto", "direct", "im2col", "fft"):
            def run(a=algorithm):
                return fastconv.conv2d(img, ker, padding="same", algorithm=a)
            got = run()
            row[algorithm] = _time(run, quick) if _close(got, ref, 1e-4) else "WRONG"
        rows.append(row)
        _print_row(row, "cupyx.ndimage")


SIGNAL_CASES = {
    "1d 1M x 4097 full": ((1 << 20,), (4097,), "full"),
    "1d 1M x 63 same": ((1 << 20,), (63,), "same"),
    "2d 2048^2 x 65^2 same": ((2048, 2048), (65, 65), "same"),
    "2d 4096^2 x 9^2 same": ((4096, 4096), (9, 9), "same"),
}


def signal(quick, rows):
    import cupy as cp
    from cupyx.scipy import signal as csignal

    from fastconv import signal as fsignal

    rng = np.random.default_rng(2)
    for name, (s1, s2, mode) in SIGNAL_CASES.items():
        a = cp.asarray(rng.standard_normal(s1, dtype=np.float32))
        v = cp.asarray(rng.standard_normal(s2, dtype=np.float32))
        row = {"family": "signal", "case": name + " float32"}
        for label, peer, ours in (("fftconvolve", csignal.fftconvolve, fsignal.fftconvolve),
                                  ("convolve", csignal.convolve, fsignal.convolve)):
            if label == "convolve" and a.ndim > 1:
                # cupyx's method="auto" takes 1-D input only: the faster of
                # its two methods is the peer
                times = {m: _time(lambda m=m: peer(a, v, mode=mode, method=m), quick)
                         for m in ("direct", "fft")}
                method = min(times, key=times.get)
                ref = peer(a, v, mode=mode, method=method)
                row["cupyx." + label] = times[method]
            else:
                ref = peer(a, v, mode=mode)
                row["cupyx." + label] = _time(lambda p=peer: p(a, v, mode=mode), quick)
            try:
                got = ours(a, v, mode=mode)
            except (TypeError, ValueError) as exc:
                row[label] = f"n/a ({str(exc)[:40]})"
                continue
            ok = _close(got, ref, 1e-4)
            row[label] = _time(lambda o=ours: o(a, v, mode=mode), quick) if ok else "WRONG"
        rows.append(row)
        _print_row(row, None)


def variants(quick, rows):
    """The tiled 2-D direct kernel under each launch bound (for choosing
    fastconv._cuda.TILED_MIN_BLOCKS)."""
    import cupy as cp

    import fastconv
    from fastconv import _cuda

    rng = np.random.default_rng(3)
    cases = {f"image {IMAGE_SIZE}^2 k{k}": ((1, 1, IMAGE_SIZE, IMAGE_SIZE), (1, 1, k, k), k // 2)
             for k in (3, 5, 7)}
    for name in ("resnet.3x3 64->64 @56", "resnet.3x3 256->256 @14",
                 "mobilenet.dw3x3 144 @56", "5x5 64->64 @28"):
        cin, cout, h, k, stride, pad, groups = LAYERS[name]
        cases[name + " N=32"] = ((32, cin, h, h), (cout, cin // groups, k, k), pad, groups)
    saved = _cuda.TILED_MIN_BLOCKS
    try:
        for name, spec in cases.items():
            xs, ws, pad = spec[:3]
            groups = spec[3] if len(spec) > 3 else 1
            x = cp.asarray(rng.standard_normal(xs, dtype=np.float32))
            w = cp.asarray(rng.standard_normal(ws, dtype=np.float32))
            row = {"family": "variants", "case": name}
            ref = None
            for blocks in (2, 3, 4):
                _cuda.TILED_MIN_BLOCKS = blocks

                def run():
                    return fastconv.conv2d(x, w, padding=pad, groups=groups, algorithm="direct")
                got = run()
                ref = got if ref is None else ref
                key = f"min_blocks={blocks}"
                row[key] = _time(run, quick) if _close(got, ref, 1e-5) else "WRONG"
            rows.append(row)
            _print_row(row, None)
    finally:
        _cuda.TILED_MIN_BLOCKS = saved


def _print_row(row, peer):
    parts = [f"{row['case']:<40}"]
    for key, val in row.items():
        if key in ("family", "case"):
            continue
        if isinstance(val, float):
            txt = f"{key}={val * 1e3:.3f}ms"
            if peer and key != peer and isinstance(row.get(peer), float):
                txt += f" ({row[peer] / val:.2f}x)"
            parts.append(txt)
        else:
            parts.append(f"{key}={val}")
    print("  ".join(parts), flush=True)


def summary(rows):
    """Geometric means of the targets."""
    def gmean(vals):
        vals = [v for v in vals if v > 0]
        return math.exp(sum(map(math.log, vals)) / len(vals)) if vals else float("nan")

    out = {}
    for n in CNN_BATCHES:
        sp = [r["torch"] / r["auto"] for r in rows if r["family"] == "cnn"
              and r["case"].endswith(f"N={n}") and isinstance(r.get("auto"), float)]
        out[f"cnn N={n} auto vs cuDNN geomean"] = gmean(sp)
    for r in rows:
        if r["family"] == "image" and isinstance(r.get("auto"), float):
            out[f"image {r['case']} auto vs cupyx.ndimage"] = r["cupyx.ndimage"] / r["auto"]
        if r["family"] == "signal" and isinstance(r.get("fftconvolve"), float):
            out[f"signal {r['case']} fftconvolve vs cupyx"] = (r["cupyx.fftconvolve"]
                                                                / r["fftconvolve"])
    for key, val in out.items():
        print(f"{key}: {val:.3f}")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", help="write the rows and the summary here")
    parser.add_argument("--only", choices=("cnn", "image", "signal", "variants"),
                        action="append")
    args = parser.parse_args(argv)
    import cupy as cp

    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.runtime.getDevice())
    print(f"device: {props['name'].decode()}, CuPy {cp.__version__}", flush=True)
    rows = []
    for family in args.only or ("image", "signal", "cnn"):
        {"cnn": cnn, "image": image, "signal": signal,
         "variants": variants}[family](args.quick, rows)
    result = {"rows": rows, "summary": summary(rows), "device": props["name"].decode()}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
