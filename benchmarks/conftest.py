"""Shared fixtures for fastconv's pytest-benchmark suite.

Run the suite by explicit path (pyproject's ``testpaths`` only names
``tests``)::

    pytest benchmarks --benchmark-json=bench.json
    pytest benchmarks -m ci --benchmark-min-rounds=3 --benchmark-max-time=0.1

Every benchmark records in ``benchmark.extra_info``:

``impl``     implementation label shown by ``benchmarks/report.py``
             (``fastconv-auto``, ``torch``, ``scipy.ndimage.correlate`` ...)
``role``     ``"fastconv"`` or ``"peer"``; the report divides each peer's
             time by each fastconv time of the same group (speed-up)
``family``   case family (``cnn``, ``image-float32``, ...); the report takes
             geometric means of the speed-ups per family
``flops``    floating-point operations of the dense computation
             (2 * multiply-adds), for GFLOP/s
``threads``  threads the implementation was allowed to use
"""

from __future__ import annotations

import time

import numpy as np
import pytest

# Seeds for the random layers/kernels; changing them changes no timing, only data.
SEED = 20240611


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "ci: quick benchmark subset that CI runs (well under 3 minutes on 2 cores)",
    )


#: Parameters that name the implementation rather than the case.
_IMPL_PARAMS = ("algorithm", "impl")


def pytest_collection_modifyitems(config, items):
    """Run each case's implementations back to back: fastconv "auto" first,
    then the peers, then the forced algorithms.

    pytest collects test function by test function, which would time every
    fastconv case minutes before the peers' runs of the same case; the
    machine's state drifts over minutes (clock, cache, neighbours), so a
    ratio is only trustworthy between runs made one right after the other.
    Items keep their order otherwise (the sort is stable).
    """
    first_seen = {}

    def key(item):
        spec = getattr(item, "callspec", None)
        params = dict(spec.params) if spec is not None else {}
        case = (str(item.path), tuple(sorted(
            (k, repr(v)) for k, v in params.items() if k not in _IMPL_PARAMS)))
        if not case[1]:  # unparametrized: its own case
            case = (str(item.path), item.name)
        order = first_seen.setdefault(case, len(first_seen))
        forced = params.get("algorithm", "auto") != "auto"
        return order, forced

    items[:] = sorted(items, key=key)


@pytest.fixture(scope="session")
def fastconv_mod():
    """The installed fastconv package (fails loudly if it does not import)."""
    import fastconv

    return fastconv


@pytest.fixture(scope="session")
def n_threads(fastconv_mod):
    """fastconv's thread setting; torch is given the same number."""
    return fastconv_mod.get_num_threads()


@pytest.fixture(scope="session")
def torch_mod(n_threads):
    """torch with its intra-op thread count set to fastconv's; skips without torch."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(n_threads)
    return torch


@pytest.fixture(scope="session")
def photograph():
    """scikit-image's bundled camera photograph (512x512) as float64 in [0, 1]."""
    data = pytest.importorskip("skimage.data")
    return data.camera().astype(np.float64) / 255.0


@pytest.fixture
def rng():
    """A fresh seeded NumPy Generator per test (same data for every impl)."""
    return np.random.default_rng(SEED)


def make_rng(*key):
    """Seeded Generator derived from SEED and a key of ints/strings.

    The same key gives the same data in every test, so fastconv and its
    peers see identical inputs even though each runs in its own test.
    """
    words = [SEED] + [sum(ord(c) * 131**i for i, c in enumerate(str(k))) % (2**32) for k in key]
    return np.random.default_rng(words)


@pytest.fixture(scope="session")
def seeded():
    """``seeded(*key)`` -> seeded numpy Generator (see :func:`make_rng`)."""
    return make_rng


def _time_once(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@pytest.fixture(scope="session")
def skip_if_slower():
    """``skip_if_slower(fn, budget_s, scale=1, what=...)``: probe, then maybe skip.

    Calls ``fn`` once (it doubles as the warm-up call); if the time times
    ``scale`` exceeds ``budget_s`` the test is skipped with the estimate in
    the reason. ``scale`` lets a cheap probe (one sample of a batch) stand in
    for the full call.
    """

    def check(fn, budget_s, scale=1.0, what="call"):
        t = _time_once(fn) * scale
        if t > budget_s:
            pytest.skip(f"{what} takes ~{t:.2f} s per call (> {budget_s:g} s budget)")
        return t

    return check
