"""``python -m fastconv demo``: filter a real photograph and compare with SciPy.

The demo needs the optional ``demo`` extra (scikit-image for the photograph,
matplotlib for the figure): ``pip install fastconv[demo]``.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

__all__ = ["run_demo"]

IMAGE_CREDIT = (
    'scikit-image\'s bundled "camera" photograph (skimage.data.camera(), '
    "512x512 uint8) by Lav Varshney, CC0 / no copyright restrictions "
    "(see the skimage.data.camera docstring and scikit-image issue #3927)"
)


def _gaussian_kernel(size, sigma):
    """Normalised 2-D Gaussian of shape ``(size, size)`` (odd ``size``)."""
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-0.5 * (r / sigma) ** 2)
    g /= g.sum()
    return np.outer(g, g)


def _demo_kernels():
    """The demo's filters as ``(label, kernel float32, signed)`` triples.

    ``signed`` says whether the filter's response has both signs (derivative
    filters), which picks a diverging colour map in the figure.
    """
    sobel_x = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    laplacian = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    kernels = [
        ("Gaussian 5x5 (sigma 1)", _gaussian_kernel(5, 1.0), False),
        ("Sobel x 3x3", sobel_x, True),
        ("Sobel y 3x3", sobel_x.T.copy(), True),
        ("Laplacian 3x3", laplacian, True),
        ("Box 15x15", np.full((15, 15), 1.0 / 225.0), False),
    ]
    return [(name, k.astype(np.float32), signed) for name, k, signed in kernels]


def _best_time(fn, repeat):
    """Return ``(best seconds over repeat calls, result of the last call)``."""
    best = float("inf")
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _missing_extra(name, exc):
    print(
        f"fastconv demo: error: the demo needs {name}, which could not be "
        f"imported ({exc}).\n"
        "Install the demo extra:  pip install 'fastconv[demo]'  "
        "(scikit-image and matplotlib).",
        file=sys.stderr,
    )
    return 1


def run_demo(output="fastconv_demo.png", repeat=5) -> int:
    """Filter a real photograph with fastconv and compare with SciPy.

    Loads scikit-image's bundled ``camera`` photograph (512x512, converted to
    float32), correlates it with five classic filters (5x5 Gaussian with
    sigma 1, Sobel x, Sobel y, 3x3 Laplacian and a 15x15 box) using
    ``fastconv.conv2d(img, k, padding="same")``, and runs the same
    zero-padded cross-correlation with ``scipy.ndimage.correlate(img, k,
    mode="constant", cval=0)`` and ``scipy.signal.correlate2d(img, k,
    mode="same", boundary="fill")``. It prints a table of the best time of
    each call over `repeat` calls, the speed-ups of fastconv over both SciPy
    functions and the largest absolute difference between the results, then
    writes a PNG grid of the input and the five filtered images.

    Parameters
    ----------
    output : str or os.PathLike, optional
        Path of the PNG figure to write. Default ``"fastconv_demo.png"`` in
        the current directory. Its folder must exist.
    repeat : int, optional
        Number of timed calls per function; the best (smallest) time is
        reported. Must be at least 1. Default 5.

    Returns
    -------
    int
        Exit status: 0 on success, 1 when scikit-image or matplotlib is
        missing or the figure cannot be written, 2 for an invalid `repeat`.
        Error messages go to standard error.

    Notes
    -----
    Every call is made once untimed first (warm-up), then `repeat` times
    under :func:`time.perf_counter`. fastconv uses its package thread
    setting (:func:`fastconv.get_num_threads`); both SciPy functions are
    single-threaded. The figure is drawn with matplotlib's Agg canvas
    without touching pyplot, so calling this function does not change the
    caller's matplotlib backend.

    The photograph is scikit-image's ``camera`` image by Lav Varshney,
    distributed with scikit-image without copyright restrictions (CC0).

    Examples
    --------
    >>> from fastconv._demo import run_demo
    >>> run_demo(output="/tmp/fastconv_demo.png", repeat=3)  # doctest: +SKIP
    0
    """
    if isinstance(repeat, bool) or not isinstance(repeat, (int, np.integer)) or repeat < 1:
        print(
            f"fastconv demo: error: repeat must be a positive integer, got {repeat!r}",
            file=sys.stderr,
        )
        return 2
    repeat = int(repeat)

    try:
        import skimage.data
    except ImportError as exc:
        return _missing_extra("scikit-image", exc)
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        return _missing_extra("matplotlib", exc)

    path = os.path.abspath(os.fspath(output))
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        print(f"fastconv demo: error: cannot write the figure to {path}: "
              f"folder {folder} does not exist", file=sys.stderr)
        return 1

    import scipy
    import scipy.ndimage
    import scipy.signal

    import fastconv

    img = skimage.data.camera().astype(np.float32)
    kernels = _demo_kernels()

    print(f"fastconv {getattr(fastconv, '__version__', '?')} demo")
    print(f"image: {IMAGE_CREDIT}")
    print(
        f"input: {img.shape[0]}x{img.shape[1]} {img.dtype}; fastconv threads: "
        f"{fastconv.get_num_threads()}; numpy {np.__version__}, scipy {scipy.__version__}"
    )
    print(f"time: best of {repeat} call(s) with time.perf_counter, after one warm-up call")
    print()

    header = (
        f"{'kernel':<24} {'fastconv ms':>11} {'ndimage ms':>10} {'speed-up':>8} "
        f"{'correlate2d ms':>14} {'speed-up':>8} {'max|d| ndimage':>14} "
        f"{'max|d| correlate2d':>18}"
    )
    print(header)
    print("-" * len(header))

    results = []
    for name, k, signed in kernels:
        calls = {
            "fastconv": lambda k=k: fastconv.conv2d(img, k, padding="same"),
            "ndimage": lambda k=k: scipy.ndimage.correlate(img, k, mode="constant", cval=0.0),
            "signal": lambda k=k: scipy.signal.correlate2d(img, k, mode="same", boundary="fill"),
        }
        times = {}
        outs = {}
        for impl, fn in calls.items():
            fn()  # warm-up
            times[impl], outs[impl] = _best_time(fn, repeat)
        ours = np.asarray(outs["fastconv"], dtype=np.float64)
        d_nd = float(np.max(np.abs(ours - outs["ndimage"])))
        d_sig = float(np.max(np.abs(ours - outs["signal"])))
        t_fc = times["fastconv"]
        su_nd = times["ndimage"] / t_fc if t_fc > 0 else float("inf")
        su_sig = times["signal"] / t_fc if t_fc > 0 else float("inf")
        print(
            f"{name:<24} {t_fc * 1e3:>11.3f} {times['ndimage'] * 1e3:>10.3f} {su_nd:>7.1f}x "
            f"{times['signal'] * 1e3:>14.3f} {su_sig:>7.1f}x {d_nd:>14.3g} {d_sig:>18.3g}"
        )
        results.append((name, outs["fastconv"], signed))
    print()
    print("speed-up = SciPy time / fastconv time; max|d| = largest absolute difference")
    print("from fastconv's result (input values 0..255, float32).")

    # Figure: input and the five results in a 2x3 grid.
    fig = Figure(figsize=(12, 8.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 3)
    panels = [("input (camera, float32)", img, False)] + results
    for ax, (title, data, signed) in zip(axes.flat, panels):
        if signed:
            # Zero padding gives strong responses along the border; scale the
            # colours to the interior's edges (99.5th percentile of |response|).
            lim = float(np.percentile(np.abs(data), 99.5)) or 1.0
            im = ax.imshow(data, cmap="RdBu_r", vmin=-lim, vmax=lim)
        else:
            im = ax.imshow(data, cmap="gray")
        ax.set_title(title if data is img else f"{title}\nfastconv.conv2d(img, k, padding='same')",
                     fontsize=10)
        ax.set_axis_off()
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(
        "fastconv demo: zero-padded 2-D cross-correlation of scikit-image's camera photograph\n"
        "(photograph by Lav Varshney, CC0, bundled with scikit-image)",
        fontsize=11,
    )
    try:
        fig.savefig(path, dpi=100, format="png")
    except (OSError, ValueError) as exc:
        print(f"fastconv demo: error: could not write the figure to {path}: {exc}",
              file=sys.stderr)
        return 1
    print(f"figure written to {path}")
    return 0
