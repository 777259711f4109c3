"""Thread settings API, per-call workers=, concurrent calls and leaks."""

import gc
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastconv

ALGOS = ("direct", "im2col", "auto")


@pytest.fixture(autouse=True)
def _restore_threads():
    """Leave the package thread setting as we found it."""
    before = fastconv.get_num_threads()
    yield
    fastconv.set_num_threads(before)


def _cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------
# get / set / threads()
# ---------------------------------------------------------------------------
def test_get_num_threads_default():
    fastconv.set_num_threads(None)
    n = fastconv.get_num_threads()
    assert isinstance(n, int)
    assert 1 <= n <= (os.cpu_count() or 1)
    # the default is "the CPUs this process may use"
    assert n <= _cpus()


needs_two_cpus = pytest.mark.skipif(_cpus() < 2, reason="needs 2 usable CPUs")


@needs_two_cpus
def test_set_num_threads_returns_previous():
    fastconv.set_num_threads(None)
    default = fastconv.get_num_threads()
    prev = fastconv.set_num_threads(1)
    assert prev == default
    assert fastconv.get_num_threads() == 1
    prev = fastconv.set_num_threads(2)
    assert prev == 1
    assert fastconv.get_num_threads() == 2
    fastconv.set_num_threads(1)
    prev = fastconv.set_num_threads(None)
    assert prev == 1
    assert fastconv.get_num_threads() == default


def test_set_num_threads_negative_counts_back():
    fastconv.set_num_threads(None)
    default = fastconv.get_num_threads()
    fastconv.set_num_threads(-1)
    assert fastconv.get_num_threads() == default  # -1 = all usable CPUs
    if default >= 2:
        fastconv.set_num_threads(-2)
        assert fastconv.get_num_threads() == default - 1


def test_set_num_threads_zero_rejected():
    before = fastconv.get_num_threads()
    with pytest.raises(ValueError):
        fastconv.set_num_threads(0)
    assert fastconv.get_num_threads() == before


@needs_two_cpus
def test_threads_context_manager_restores():
    fastconv.set_num_threads(2)
    with fastconv.threads(1):
        assert fastconv.get_num_threads() == 1
        with fastconv.threads(2):
            assert fastconv.get_num_threads() == 2
        assert fastconv.get_num_threads() == 1
    assert fastconv.get_num_threads() == 2
    # restored on exceptions too
    with pytest.raises(RuntimeError):
        with fastconv.threads(1):
            raise RuntimeError("boom")
    assert fastconv.get_num_threads() == 2


@needs_two_cpus
def test_threads_context_manager_is_thread_local():
    fastconv.set_num_threads(2)
    inside = threading.Event()
    checked = threading.Event()
    seen = {}

    def other():
        inside.wait(10)
        seen["other"] = fastconv.get_num_threads()
        checked.set()

    t = threading.Thread(target=other)
    t.start()
    with fastconv.threads(1):
        inside.set()
        assert checked.wait(10)
        seen["self"] = fastconv.get_num_threads()
    t.join(10)
    assert seen == {"other": 2, "self": 1}


@needs_two_cpus
def test_threads_context_in_many_threads_concurrently():
    fastconv.set_num_threads(1)
    barrier = threading.Barrier(6)

    def worker(n):
        with fastconv.threads(n):
            barrier.wait(10)
            a = fastconv.get_num_threads()
            barrier.wait(10)
        return a, fastconv.get_num_threads()

    wanted = [1, 2, 1, 2, 2, 1]
    with ThreadPoolExecutor(6) as ex:
        results = list(ex.map(worker, wanted))
    assert results == [(n, 1) for n in wanted]


# ---------------------------------------------------------------------------
# workers= per call
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_workers_results_identical(algorithm, dtype, ref):
    rng = np.random.default_rng(31)
    x, w, b = ref.random_case(rng, 2, n=3, cin=6, cout=8, groups=2, spatial=(23, 19),
                              ksize=(3, 3), dtype=dtype)
    kw = dict(padding=1, groups=2, algorithm=algorithm)
    exp = ref.expect(x, w, b, nd=2, padding=1, groups=2)
    results = {}
    for workers in (None, 1, 2, 3, -1):
        results[workers] = fastconv.conv2d(x, w, b, workers=workers, **kw)
        ref.assert_matches(results[workers], exp, f"workers={workers}")
    for workers, r in results.items():
        assert np.array_equal(r, results[1]), f"workers={workers} differs from workers=1"
    with fastconv.threads(1):
        assert np.array_equal(fastconv.conv2d(x, w, b, **kw), results[1])


def test_workers_does_not_change_setting():
    before = fastconv.get_num_threads()
    x = np.ones((1, 1, 6, 6))
    w = np.ones((1, 1, 3, 3))
    fastconv.conv2d(x, w, workers=1)
    assert fastconv.get_num_threads() == before


# ---------------------------------------------------------------------------
# concurrency
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGOS)
def test_eight_python_threads_at_once(algorithm, ref):
    rng = np.random.default_rng(41)
    jobs = []
    for i in range(8):
        dtype = (np.float32, np.float64)[i % 2]
        cin, cout = 2 + i % 3, 3 + i % 2
        x, w, b = ref.random_case(rng, 2, n=2, cin=cin, cout=cout,
                                  spatial=(40 + i, 37 - i), ksize=(3, 5), dtype=dtype)
        kw = dict(padding=(1, 2), stride=1 + i % 2,
                  padding_mode=("zeros", "reflect", "replicate", "circular")[i % 4])
        jobs.append((x, w, b, kw))
    barrier = threading.Barrier(8)

    def run(job):
        x, w, b, kw = job
        barrier.wait(30)
        return [fastconv.conv2d(x, w, b, algorithm=algorithm, **kw) for _ in range(3)]

    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(run, jobs))
    for i, ((x, w, b, kw), outs) in enumerate(zip(jobs, results)):
        exp = ref.expect(x, w, b, nd=2, **kw)
        for r in outs:
            ref.assert_matches(r, exp, f"thread {i}")


def test_threads_with_out_arrays(ref):
    """Concurrent calls writing into separate out= buffers."""
    rng = np.random.default_rng(42)
    xs = [rng.standard_normal((1, 3, 30, 30)) for _ in range(8)]
    w = rng.standard_normal((4, 3, 3, 3))
    outs = [np.empty((1, 4, 30, 30)) for _ in range(8)]

    def run(i):
        return fastconv.conv2d(xs[i], w, padding="same", out=outs[i], workers=1)

    with ThreadPoolExecutor(8) as ex:
        rets = list(ex.map(run, range(8)))
    for i in range(8):
        assert rets[i] is outs[i]
        ref.assert_matches(outs[i], ref.expect(xs[i], w, nd=2, padding="same"))


# ---------------------------------------------------------------------------
# leaks
# ---------------------------------------------------------------------------
def _rss_bytes():
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def _many_calls(count, x, w, b, out):
    modes = ("zeros", "reflect", "replicate", "circular")
    for i in range(count):
        algo = ALGOS[i % 3]
        mode = modes[(i // 3) % 4]
        fastconv.conv2d(x, w, b, padding=1, padding_mode=mode, algorithm=algo)
        if i % 5 == 0:
            fastconv.conv2d(x, w, b, padding=1, algorithm=algo, out=out)
        if i % 7 == 0:
            try:  # error paths must not leak either
                fastconv.conv2d(x, w, b, stride=0)
            except ValueError:
                pass


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_repeated_calls_do_not_grow_rss():
    rng = np.random.default_rng(51)
    x = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    out = np.empty((1, 8, 32, 32), np.float32)
    _many_calls(300, x, w, b, out)  # warm-up: caches, thread pools, arenas
    gc.collect()
    before = _rss_bytes()
    _many_calls(3000, x, w, b, out)
    gc.collect()
    grown = _rss_bytes() - before
    # one leaked 32 KiB result per call would be ~100 MiB
    assert grown < 6 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over 3000 calls"


def test_no_reference_leaks_on_inputs():
    rng = np.random.default_rng(52)
    x = rng.standard_normal((1, 2, 10, 10))
    w = rng.standard_normal((3, 2, 3, 3))
    b = rng.standard_normal(3)
    out = np.empty((1, 3, 10, 10))
    for algo in ALGOS:  # warm-up
        fastconv.conv2d(x, w, b, padding=1, algorithm=algo, out=out)
    counts = [sys.getrefcount(a) for a in (x, w, b, out)]
    for _ in range(50):
        for algo in ALGOS:
            fastconv.conv2d(x, w, b, padding=1, algorithm=algo)
            fastconv.conv2d(x, w, b, padding=1, algorithm=algo, out=out)
            try:
                fastconv.conv2d(x, w, b, padding=-1, algorithm=algo)
            except ValueError:
                pass
    gc.collect()
    assert [sys.getrefcount(a) for a in (x, w, b, out)] == counts


# ---------------------------------------------------------------------------
# absurd thread counts: clamp or ValueError, never a crash or MemoryError
# (run in a child process so that a crash cannot take the test run down)
# ---------------------------------------------------------------------------
_HUGE_SCRIPT = r"""
import sys
import numpy as np
import fastconv

n = int(sys.argv[2])
x = np.ones((1, 1, 4, 4))
w = np.ones((1, 1, 3, 3))
if sys.argv[1] == "set":
    try:
        fastconv.set_num_threads(n)
    except ValueError:
        print("rejected")
        sys.exit(0)
    kw = {}
else:
    kw = {"workers": n}
for algo in ("direct", "im2col", "auto"):
    try:
        r = fastconv.conv2d(x, w, algorithm=algo, **kw)
    except ValueError as e:
        assert "workers" in str(e), str(e)
        print("rejected")
        continue
    assert r.shape == (1, 1, 2, 2) and np.all(r == 9.0), r
print("ok")
"""


@pytest.mark.parametrize("n", [10**5, 10**9])
@pytest.mark.parametrize("how", ["set", "workers"])
def test_huge_thread_counts_do_not_crash(how, n, tmp_path):
    import subprocess

    # cwd outside the checkout: `python -c` puts the cwd first on sys.path,
    # where the uncompiled source tree would shadow the installed package.
    proc = subprocess.run([sys.executable, "-c", _HUGE_SCRIPT, how, str(n)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, (
        f"{how}={n}: child exited with {proc.returncode}\n{proc.stderr[-2000:]}")


def _blas_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import scipy.linalg.cython_blas  # noqa: F401  (load the BLAS fastconv calls)

    return sorted((d["filepath"], d["num_threads"])
                  for d in threadpoolctl.threadpool_info()
                  if d.get("user_api") == "blas")


def test_blas_thread_setting_restored_after_calls():
    """The per-call BLAS limit is undone afterwards (the caller's BLAS
    configuration is not changed behind its back)."""
    before = _blas_threads()
    rng = np.random.default_rng(71)
    x = rng.standard_normal((4, 16, 20, 20))
    w = rng.standard_normal((16, 16, 3, 3))
    for workers in (1, 2, None):
        fastconv.conv2d(x, w, padding=1, algorithm="im2col", workers=workers)
        fastconv.conv2d(x[:1], w, padding=1, algorithm="im2col", workers=workers)
        fastconv.conv2d(x[:1, :, :3, :3], w, algorithm="im2col", workers=workers)
    assert _blas_threads() == before


_CONCURRENT_BLAS_SCRIPT = r"""
import threading
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (the BLAS fastconv calls)
import threadpoolctl
import fastconv


def blas_threads():
    return [d["num_threads"] for d in threadpoolctl.threadpool_info()
            if d.get("user_api") == "blas"]


rng = np.random.default_rng(72)
# A: many output pixels, one worker (BLAS held at 1 thread during the call);
# B: a single output pixel, two workers (BLAS asked for 2 threads); both take
# milliseconds per call so that their BLAS limits overlap in time
xa = rng.standard_normal((1, 64, 40, 40))
wa = rng.standard_normal((64, 64, 3, 3))
xb = rng.standard_normal((1, 2048, 3, 3))
wb = rng.standard_normal((256, 2048, 3, 3))


def run_a():
    for _ in range(30):
        fastconv.conv2d(xa, wa, padding=1, algorithm="im2col", workers=1)


def run_b():
    for _ in range(30):
        fastconv.conv2d(xb, wb, algorithm="im2col", workers=2)


before = blas_threads()
after = []
for _ in range(5):
    ts = [threading.Thread(target=run_a), threading.Thread(target=run_b)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    after.append(blas_threads())
print("before", before, "after each round", after)
assert all(a == before for a in after), "BLAS thread count changed"
"""


@needs_two_cpus
def test_blas_thread_setting_restored_after_concurrent_calls(tmp_path):
    """Two Python threads running im2col calls with different workers= at the
    same time must leave the process-wide BLAS thread count as it was.
    (Run in a fresh process: the interleaving is timing-dependent, and a
    failure must not leave this session's BLAS setting changed.)"""
    import subprocess

    pytest.importorskip("threadpoolctl")
    proc = subprocess.run([sys.executable, "-c", _CONCURRENT_BLAS_SCRIPT],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-1500:]


# ---------------------------------------------------------------------------
# the channel-blocked kernel's splits: by image, or by channel block with a
# padded input per thread or one shared
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("planned", [False, True], ids=["call", "plan"])
@pytest.mark.parametrize("split", [(0, True), (0, False), (1, False)],
                         ids=["by-image", "per-thread", "shared"])
@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, cin, cout, size, k, stride, padding, groups", [
    (2, 16, 40, (9, 9), 3, 1, 1, 1),        # short rows: the flattened-plane tasks
    (3, 8, 20, (14, 30), 3, 1, 2, 2),       # groups, rows of 32
    (1, 12, 24, (17, 23), 3, 2, 0, 1),      # strided: the last row and column unread
    (5, 3, 33, (21, 20), 7, 2, 3, 1),       # 7x7/2 with padding on every side
])
def test_blocked_kernel_splits(monkeypatch, ref, planned, split, workers, dtype, n, cin, cout,
                               size, k, stride, padding, groups):
    """Every way the channel-blocked kernel's threads split a call (by image;
    by channel block, each thread padding its own copy of the input or
    all sharing one) gives the oracle's result for any thread count and
    leaves the input alone (fastconv._cpu._blocked_split decides).  A call
    split by channel block packs the weights in its tasks, block by block
    into each thread's buffer; a plan (and a call by image) packs them all
    first: both give the same bits."""
    from fastconv import _cpu

    shared, by_image = split
    monkeypatch.setattr(_cpu, "_blocked_split", lambda images, input_bytes, weight_bytes,
                        nthreads: (1 if shared or nthreads < 2 else nthreads, by_image))
    monkeypatch.setattr(_cpu, "MIN_WORK_PER_THREAD", 1)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, cin) + size).astype(dtype)
    w = rng.standard_normal((cout, cin // groups, k, k)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    x_before = x.copy()
    kw = dict(stride=stride, padding=padding, groups=groups, algorithm="direct", workers=workers)
    if planned:
        y = fastconv.plan(fastconv.conv2d, x, w, b, **kw)(x)
    else:
        y = fastconv.conv2d(x, w, b, **kw)
    want = ref.conv(x, w, b, stride=stride, padding=padding, groups=groups, nd=2)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol * np.abs(want).max())
    np.testing.assert_array_equal(x, x_before)
    other = (fastconv.conv2d(x, w, b, **kw) if planned
             else fastconv.plan(fastconv.conv2d, x, w, b, **kw)(x))
    np.testing.assert_array_equal(y, other)


def test_blocked_kernel_fused_packing_needs_blocks_by_channel():
    """The tasks pack the weights only when each thread runs a run of
    channel blocks, into a buffer of its own: conv_blocked refuses others."""
    from fastconv._kernels import _direct

    x = np.zeros((2 * 4, 6, 6), np.float32)
    xp = np.zeros((1, 2 * 4 * 36 + 64), np.float32)
    w = np.zeros((16, 4 * 9), np.float32)
    out = np.zeros((2, 16, 4, 4), np.float32)
    bias = np.zeros((1, 1, 16), np.float32)
    buffers = np.zeros((2, 1, 4, 3, 3, 16), np.float32)
    with pytest.raises(ValueError, match="fused packing"):
        _direct.conv_blocked(x, xp, 6, 6, 0, 0, buffers, bias, out, 1, 1, 1, 1, 1, 2, True, w)
    with pytest.raises(ValueError, match="fused packing"):
        _direct.conv_blocked(x, xp, 6, 6, 0, 0, buffers[:1], bias, out, 1, 1, 1, 1, 1, 2,
                             False, w)
    with pytest.raises(ValueError, match="fused packing"):
        _direct.conv_blocked(x, xp, 6, 6, 0, 0, buffers, bias, out, 1, 1, 1, 1, 1, 2,
                             False, w[:, :-1].copy())


@pytest.mark.parametrize("images, input_bytes, weight_bytes, nthreads, expect", [
    (8, 5 << 20, 40 << 10, 2, (1, True)),      # conv1 N=8: images, the input outweighs
    (8, 1 << 20, 9 << 20, 2, (2, False)),      # 512@7 N=8: weights outweigh, copies fit
    (1, 2 << 20, 600 << 10, 2, (2, False)),    # one image: channel blocks, copies fit
    (1, 6 << 20, 600 << 10, 2, (1, False)),    # copies would exceed PRIVATE_INPUT_BYTES
    (8, 5 << 20, 40 << 10, 1, (1, False)),     # one thread
])
def test_blocked_split_rule(images, input_bytes, weight_bytes, nthreads, expect):
    from fastconv import _cpu

    assert _cpu._blocked_split(images, input_bytes, weight_bytes, nthreads) == expect
