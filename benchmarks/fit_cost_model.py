"""Fit the cost model of ``method="auto"`` / ``algorithm="auto"`` to this machine.

Times fastconv's own paths on a grid of problems and fits, by non-negative
least squares on relative error, ``time = c . features`` per path,
dimensionality and precision (fastconv/_cost.py defines the features):

* ``direct``: fastconv.signal.convolve(method="direct");
* ``fft``: fastconv.signal.convolve(method="fft");
* ``im2col``: fastconv.conv2d(algorithm="im2col") on CNN-like layers;
* ``nndirect`` / ``nnrows``: fastconv.conv2d(algorithm="direct") on the
  multi-channel ones (channel-blocked kernel / row kernel);
* ``nnpointwise``: fastconv.conv2d(algorithm="direct") on 1x1 layers that
  run the pointwise kernel;
* ``nnfft``: fastconv.conv2d(algorithm="fft") on the same layers;
* ``winograd``: fastconv.conv2d(algorithm="winograd") on 3x3, 5x5 and 2x2 layers,
  the 3x3 ones with each of F(2x2,3x3) and F(4x4,3x3);
* ``winogradplan``: calls of a Winograd plan (filters transformed once) on
  the 3x3 layers, each variant;
* ``sparse``: fastconv.conv2d(algorithm="sparse") on layers with random
  (unstructured) zero weights, densities 2-90%.

Usage::

    python benchmarks/fit_cost_model.py            # print the fit and errors
    python benchmarks/fit_cost_model.py --write    # also rewrite fastconv/_cost_model.json
    python benchmarks/fit_cost_model.py --only sparse --write   # refit one path, keep the rest
    python benchmarks/fit_cost_model.py --only winograd --write
    python benchmarks/fit_cost_model.py --only winogradplan --write
    python benchmarks/fit_cost_model.py --only nndirect --write
    python benchmarks/fit_cost_model.py --only nnrows --write
    python benchmarks/fit_cost_model.py --only nnfft --write
    python benchmarks/fit_cost_model.py --only nnpointwise --write

The grid takes about a minute on the 2-core development machine.  The
printed table gives, per group, the median and range of predicted over
measured time.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import time
from pathlib import Path
from unittest import mock

import numpy as np
from scipy.optimize import nnls

import fastconv
from fastconv import _cost, _sparse, _winograd
from fastconv._schedule import channel_blocked, pointwise
from fastconv import signal as fsignal

MODEL_PATH = Path(fastconv.__file__).with_name("_cost_model.json")

SIGNAL_GRID = {
    1: [((n,), (k,)) for n in (20_000, 200_000) for k in (3, 15, 63, 255, 1023)],
    2: [((n, n), (k, k)) for n in (128, 512) for k in (3, 7, 15, 31)],
    3: [((n, n, n), (k, k, k)) for n in (32, 64) for k in (3, 5, 7, 9)],
}
CNN_GRID = [  # N, C_in, C_out, H, k: large layers and small calls (fixed costs)
    (1, 16, 16, 56, 3), (1, 64, 64, 28, 3), (1, 32, 32, 28, 7), (2, 8, 8, 64, 11),
    (1, 128, 128, 14, 3), (1, 16, 32, 32, 15), (1, 4, 4, 128, 9), (4, 8, 16, 32, 5),
    (1, 32, 32, 64, 13), (1, 1, 1, 17, 3), (4, 1, 1, 22, 3), (1, 1, 1, 33, 11),
    (2, 1, 1, 96, 7), (1, 1, 1, 160, 15), (1, 4, 4, 16, 3), (2, 8, 8, 12, 5),
    (1, 2, 3, 32, 7), (3, 3, 8, 24, 5), (1, 33, 5, 24, 3), (1, 64, 16, 32, 1),
    (2, 3, 7, 48, 1), (1, 1, 30, 27, 3), (2, 1, 16, 64, 5), (3, 119, 6, 19, 9),
    (1, 24, 8, 20, 7), (2, 64, 8, 24, 7), (1, 128, 4, 28, 5), (2, 32, 2, 40, 7),
    (1, 96, 6, 32, 3), (3, 43, 1, 64, 5), (1, 9, 1, 57, 5), (2, 16, 1, 40, 3),
    (1, 64, 1, 28, 3),
]
STRIDED_GRID = [  # N, C_in, C_out, H, k, stride: the direct kernel's scalar rows
    (1, 6, 2, 56, 11, 2), (1, 16, 16, 56, 3, 2), (2, 8, 8, 64, 5, 2), (1, 3, 16, 96, 7, 2),
]
ROWS_GRID = [  # N, C_in, C_out, H, k, stride: one output channel per group, large maps,
    # where the row kernel's vectorised multiply-adds dominate its time
    (3, 43, 1, 128, 5, 1), (2, 64, 1, 96, 3, 1), (1, 24, 2, 160, 7, 1), (4, 16, 1, 128, 3, 1),
]
WINOGRAD_GRID = [  # N, C_in, C_out, H, k
    (1, 16, 16, 56, 3), (1, 64, 64, 56, 3), (1, 128, 128, 28, 3), (1, 256, 256, 14, 3),
    (1, 512, 512, 7, 3), (4, 64, 64, 56, 3), (2, 128, 128, 28, 3), (4, 256, 256, 14, 3),
    (1, 32, 64, 112, 3), (2, 8, 8, 128, 3), (2, 7, 7, 16, 3), (1, 4, 4, 12, 3),
    (3, 33, 5, 24, 3), (4, 118, 49, 17, 3), (2, 9, 6, 37, 3), (4, 2, 3, 51, 3),
    (1, 3, 16, 96, 3), (2, 16, 4, 40, 3), (8, 256, 256, 14, 3), (8, 512, 512, 7, 3),
    (1, 64, 64, 28, 5), (4, 64, 64, 28, 5), (1, 32, 32, 56, 5), (2, 16, 16, 32, 5),
    (1, 128, 128, 14, 5), (2, 9, 12, 24, 5),
    # 2x2: the sub-pixel form of k4/2 transposed convolutions, and others
    (1, 256, 512, 16, 2), (4, 256, 512, 16, 2), (8, 256, 512, 16, 2), (1, 64, 128, 32, 2),
    (2, 32, 32, 64, 2), (1, 16, 8, 40, 2),
]
POINTWISE_GRID = [  # N, C_in, C_out, H: 1x1 layers, from ResNet bottlenecks to small calls
    (1, 256, 64, 56), (8, 256, 64, 56), (1, 64, 256, 56), (2, 64, 256, 56),
    (1, 128, 512, 28), (4, 512, 128, 28), (1, 256, 256, 14), (8, 256, 256, 14),
    (1, 128, 128, 28), (2, 32, 16, 32), (1, 16, 32, 64), (3, 6, 111, 17),
    (1, 64, 64, 56), (4, 128, 32, 28), (1, 512, 64, 7), (8, 128, 128, 7),
    (2, 24, 48, 40), (1, 1024, 32, 14), (1, 16, 16, 20), (2, 96, 24, 33),
]
SPARSE_GRID = [  # N, C_in, C_out, H, k, stride, density of the weights
    (1, 64, 64, 56, 3, 1, 0.1), (1, 128, 128, 28, 3, 1, 0.1), (1, 256, 256, 14, 3, 1, 0.1),
    (1, 64, 64, 56, 3, 1, 0.5), (1, 256, 256, 14, 3, 1, 0.05), (1, 512, 512, 7, 3, 1, 0.1),
    (2, 32, 32, 32, 5, 1, 0.2), (1, 16, 16, 64, 3, 2, 0.3), (1, 3, 16, 96, 7, 2, 0.5),
    (4, 8, 8, 24, 3, 1, 0.9), (1, 1, 1, 64, 7, 1, 0.3), (1, 128, 128, 28, 3, 1, 0.02),
    (1, 64, 128, 28, 3, 2, 0.1), (8, 64, 64, 14, 3, 1, 0.1), (1, 4, 4, 16, 3, 1, 0.5),
    (1, 256, 256, 14, 3, 1, 0.2), (1, 64, 64, 56, 3, 1, 0.05),
    # dense weights on one output channel, where the sparse kernel competes
    # with the direct row kernel
    (3, 43, 1, 64, 5, 1, 1.0), (1, 128, 1, 56, 3, 1, 1.0), (2, 16, 1, 40, 3, 1, 1.0),
    (3, 9, 1, 57, 5, 1, 1.0),
]


def sparse_samples(rng, dt):
    """(features, seconds) of algorithm="sparse" on SPARSE_GRID."""
    samples = []
    for n, cin, cout, h, k, stride, density in SPARSE_GRID:
        x = rng.standard_normal((n, cin, h, h)).astype(dt)
        w = rng.standard_normal((cout, cin, k, k)).astype(dt)
        w[rng.random(w.shape) >= density] = 0
        problem = _problem(x, w, k // 2, stride)
        samples.append((_sparse.features(problem, int(np.count_nonzero(w))), best_time(
            lambda: fastconv.conv2d(x, w, stride=stride, padding=k // 2, algorithm="sparse"))))
    return samples


def _layer_samples(rng, dt, grid, algorithm, features, others=None):
    """(features, seconds) of `algorithm` on the stride-1 layers (N, C_in,
    C_out, H, k) of `grid`, padding k // 2; with `others` (a callable taking
    the problem, x, w and padding) the same problems also feed the other
    paths' samples."""
    samples = []
    for n, cin, cout, h, k in grid:
        x = rng.standard_normal((n, cin, h, h)).astype(dt)
        w = rng.standard_normal((cout, cin, k, k)).astype(dt)
        problem = _problem(x, w, k // 2)
        samples.append((features(problem), best_time(
            lambda: fastconv.conv2d(x, w, padding=k // 2, algorithm=algorithm))))
        if others is not None:
            others(problem, x, w, k // 2)
    return samples


def winograd_samples(rng, dt, others=None):
    """(features, seconds) of algorithm="winograd" on WINOGRAD_GRID (see
    _layer_samples for `others`).  3x3 layers are timed with each variant,
    F(2x2,3x3) and F(4x4,3x3), forced in turn: the model chooses between
    them (fastconv._winograd.choose_variant), so it must know both."""
    samples = []
    for n, cin, cout, h, k in WINOGRAD_GRID:
        x = rng.standard_normal((n, cin, h, h)).astype(dt)
        w = rng.standard_normal((cout, cin, k, k)).astype(dt)
        problem = _problem(x, w, k // 2)
        for m in (_winograd.VARIANTS if k == 3 else (None,)):
            forced = (mock.patch.object(_winograd, "choose_variant", lambda p, planned=False: m)
                      if m is not None else contextlib.nullcontext())
            with forced:
                samples.append((_cost.winograd_features(problem, m), best_time(
                    lambda: fastconv.conv2d(x, w, padding=k // 2, algorithm="winograd"))))
        if others is not None:
            others(problem, x, w, k // 2)
    return samples


def winograd_plan_samples(rng, dt):
    """(features, seconds) of calls of a Winograd plan (fastconv.plan) on
    the 3x3 layers of WINOGRAD_GRID, each variant forced in turn: a plan
    transforms its filters once, but its GEMMs still read them all, which
    on narrow GEMMs (few tiles) is most of the call."""
    samples = []
    for n, cin, cout, h, k in WINOGRAD_GRID:
        if k != 3:
            continue
        x = rng.standard_normal((n, cin, h, h)).astype(dt)
        w = rng.standard_normal((cout, cin, k, k)).astype(dt)
        problem = _problem(x, w, 1)
        for m in _winograd.VARIANTS:
            with mock.patch.object(_winograd, "choose_variant", lambda p, planned=False: m):
                planned = fastconv.plan(fastconv.conv2d, x, w, padding=1, algorithm="winograd")
            samples.append((_cost.winograd_features(problem, m), best_time(lambda: planned(x))))
    return samples


def nnfft_samples(rng, dt):
    """(features, seconds) of algorithm="fft" on the problems of CNN_GRID."""
    return _layer_samples(rng, dt, CNN_GRID, "fft", _cost.nn_fft_features)


def nnpointwise_samples(rng, dt):
    """(features, seconds) of algorithm="direct" on POINTWISE_GRID (1x1
    layers, all on the pointwise kernel)."""
    samples = []
    for n, cin, cout, h in POINTWISE_GRID:
        x = rng.standard_normal((n, cin, h, h)).astype(dt)
        w = rng.standard_normal((cout, cin, 1, 1)).astype(dt)
        problem = _problem(x, w, 0)
        if not pointwise(problem):
            continue  # weights too large for the kernel in this precision
        samples.append((_cost.nnpointwise_features(problem), best_time(
            lambda: fastconv.conv2d(x, w, algorithm="direct"))))
    return samples


def nnrows_samples(rng, dt):
    """(features, seconds) of algorithm="direct" on the problems of CNN_GRID,
    STRIDED_GRID, ROWS_GRID and WINOGRAD_GRID that run the row kernel on
    several input channels."""
    return _direct_samples(rng, dt, blocked=False)


def nndirect_samples(rng, dt):
    """(features, seconds) of algorithm="direct" on the problems of CNN_GRID,
    STRIDED_GRID, ROWS_GRID and WINOGRAD_GRID that run the channel-blocked
    kernel."""
    return _direct_samples(rng, dt, blocked=True)


def _direct_samples(rng, dt, blocked):
    """Direct-kernel samples of the grids' problems that run the
    channel-blocked kernel (`blocked`) or the row kernel on several input
    channels (not `blocked`)."""
    samples = []
    grid = ([p + (1,) for p in CNN_GRID] + STRIDED_GRID + ROWS_GRID
            + [p + (1,) for p in WINOGRAD_GRID])
    features = _cost.nndirect_features if blocked else _cost.nnrows_features
    for n, cin, cout, h, k, stride in grid:
        x = rng.standard_normal((n, cin, h, h)).astype(dt)
        w = rng.standard_normal((cout, cin, k, k)).astype(dt)
        problem = _problem(x, w, k // 2, stride)
        if (channel_blocked(problem) != blocked or (not blocked and cin < 2)
                or pointwise(problem)):
            continue  # (one input channel runs the plane kernel, 1x1 layers pointwise)
        samples.append((features(problem), best_time(
            lambda: fastconv.conv2d(x, w, stride=stride, padding=k // 2, algorithm="direct"))))
    return samples


#: Passes over the grid of a one-path refit (--only), keeping each problem's
#: fastest.
PASSES = 3


def best_time(fn, budget=1.0, repeat=7):
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeat and (not times or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def fit(samples):
    """nnls fit of t = c . features minimising relative error; returns c."""
    f = np.array([s[0] for s in samples], float)
    t = np.array([s[1] for s in samples], float)
    coef, _ = nnls(f / t[:, None], np.ones_like(t))
    return [float(c) for c in coef]


def report(name, samples, coef):
    pred = np.array([np.dot(coef, f) for f, _ in samples])
    meas = np.array([t for _, t in samples])
    r = pred / meas
    cs = " ".join(f"{c:.2e}" for c in coef)
    print(f"{name:18s} c=[{cs}]  pred/meas median {np.median(r):.2f} "
          f"range {r.min():.2f}-{r.max():.2f}  ({len(samples)} problems)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite _cost_model.json")
    parser.add_argument("--only", choices=("sparse", "winograd", "winogradplan", "nndirect",
                                           "nnrows", "nnfft", "nnpointwise"),
                        help="refit only this path; the others keep their coefficients")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    if args.only is not None:
        sampler = {"sparse": sparse_samples, "winograd": winograd_samples,
                   "winogradplan": winograd_plan_samples,
                   "nndirect": nndirect_samples, "nnrows": nnrows_samples,
                   "nnfft": nnfft_samples, "nnpointwise": nnpointwise_samples}[args.only]
        model = json.loads(MODEL_PATH.read_text())
        model[args.only] = {}
        for dt in (np.float32, np.float64):
            key = f"2d-{np.dtype(dt).name}"
            # the fastest of PASSES passes per problem: a shared VM slows
            # single samples down for a second at a time
            passes = [sampler(rng, dt) for _ in range(PASSES)]
            samples = [(p[0][0], min(t for _, t in p)) for p in zip(*passes)]
            model[args.only][key] = fit(samples)
            report(f"{args.only} {key}", samples, model[args.only][key])
        if args.write:
            MODEL_PATH.write_text(json.dumps(model, indent=1, sort_keys=True) + "\n")
            print(f"wrote {MODEL_PATH}")
        return
    model = {"direct": {}, "fft": {}, "im2col": {}, "nndirect": {}, "nnrows": {}, "nnfft": {},
             "nnpointwise": {}, "winograd": {}, "winogradplan": {}, "sparse": {}}
    for dt in (np.float32, np.float64):
        dtn = np.dtype(dt).name
        for nd, grid in SIGNAL_GRID.items():
            direct, fft = [], []
            for s1, s2 in grid:
                a = rng.standard_normal(s1).astype(dt)
                v = rng.standard_normal(s2).astype(dt)
                direct.append((_cost.direct_features(s1, s2, "same"), best_time(
                    lambda: fsignal.convolve(a, v, "same", method="direct"))))
                fft.append((_cost.fft_features(s1, s2, "same"), best_time(
                    lambda: fsignal.convolve(a, v, "same", method="fft"))))
            key = f"{nd}d-{dtn}"
            model["direct"][key] = fit(direct)
            model["fft"][key] = fit(fft)
            report(f"direct {key}", direct, model["direct"][key])
            report(f"fft {key}", fft, model["fft"][key])
        gemm, nnfft, nndirect, nnrows = [], [], [], []
        for n, cin, cout, h, k in CNN_GRID:
            x = rng.standard_normal((n, cin, h, h)).astype(dt)
            w = rng.standard_normal((cout, cin, k, k)).astype(dt)
            pad = k // 2
            problem = _problem(x, w, pad)
            if cout > 1:  # one output channel is never im2col's in "auto"
                gemm.append((_cost.im2col_features(problem), best_time(
                    lambda: fastconv.conv2d(x, w, padding=pad, algorithm="im2col"))))
            if cin > 1:
                direct_sample(problem, nndirect, nnrows, best_time(
                    lambda: fastconv.conv2d(x, w, padding=pad, algorithm="direct")))
            nnfft.append((_cost.nn_fft_features(problem), best_time(
                lambda: fastconv.conv2d(x, w, padding=pad, algorithm="fft"))))
        for n, cin, cout, h, k, stride in STRIDED_GRID + ROWS_GRID:
            x = rng.standard_normal((n, cin, h, h)).astype(dt)
            w = rng.standard_normal((cout, cin, k, k)).astype(dt)
            problem = _problem(x, w, k // 2, stride)
            direct_sample(problem, nndirect, nnrows, best_time(
                lambda: fastconv.conv2d(x, w, stride=stride, padding=k // 2, algorithm="direct")))
            gemm.append((_cost.im2col_features(problem), best_time(
                lambda: fastconv.conv2d(x, w, stride=stride, padding=k // 2, algorithm="im2col"))))
        def dense_paths(problem, x, w, pad):
            gemm.append((_cost.im2col_features(problem), best_time(
                lambda: fastconv.conv2d(x, w, padding=pad, algorithm="im2col"))))
            direct_sample(problem, nndirect, nnrows, best_time(
                lambda: fastconv.conv2d(x, w, padding=pad, algorithm="direct")))

        wino = winograd_samples(rng, dt, dense_paths)
        key = f"2d-{dtn}"
        for path, samples in (("im2col", gemm), ("nndirect", nndirect), ("nnrows", nnrows),
                              ("nnfft", nnfft), ("winograd", wino),
                              ("winogradplan", winograd_plan_samples(rng, dt)),
                              ("nnpointwise", nnpointwise_samples(rng, dt)),
                              ("sparse", sparse_samples(rng, dt))):
            model[path][key] = fit(samples)
            report(f"{path} {key}", samples, model[path][key])
    model["machine"] = (f"{platform.machine()} {platform.processor() or ''} "
                        f"{fastconv.get_num_threads()} threads, "
                        f"fitted {datetime.date.today().isoformat()} by "
                        f"benchmarks/fit_cost_model.py").replace("  ", " ")
    if args.write:
        MODEL_PATH.write_text(json.dumps(model, indent=1, sort_keys=True) + "\n")
        print(f"wrote {MODEL_PATH}")


def direct_sample(problem, blocked, rows, seconds):
    """File a direct-kernel timing under the kernel the problem runs on
    (1x1 layers on the pointwise kernel have their own grid)."""
    if pointwise(problem):
        return
    if channel_blocked(problem):
        blocked.append((_cost.nndirect_features(problem), seconds))
    else:
        rows.append((_cost.nnrows_features(problem), seconds))


def _problem(x, w, pad, stride=1):
    from fastconv._validation import plan_conv
    return plan_conv(2, x, w, None, stride, pad, 1, 1, "zeros")


if __name__ == "__main__":
    main()
