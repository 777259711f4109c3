"""fastconv's Dask support on a dask.distributed cluster (issue 8).

One ``LocalCluster`` (two worker processes, one thread each) for the module.
Results computed on it are compared with the in-memory fastconv call
(bitwise: ``algorithm="direct"`` / the direct signal path) and with an
independent oracle (conftest's ``ref.conv``, NumPy ``sliding_window_view`` +
``einsum``; ``scipy.signal.convolve2d``).  Chunks here are at least 24
samples wide along the last axis, so these tests isolate the distributed
machinery (pickling the chunk tasks, running them in other processes) from
the chunk-geometry cases of ``test_dask.py``.

The thread rule of the contract on a worker: a chunk task runs fastconv with
``max(1, nthreads // min(nthreads, n_chunks))`` threads, nthreads being the
worker's; with one thread per worker that is 1, whatever the call's budget.
It is checked through ``fastconv._dask.task_threads`` run inside worker
tasks.
"""
import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import scipy.signal as sps

import fastconv
import fastconv.signal as fcs


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    cl = distributed.Client(cluster)
    try:
        yield cl
    finally:
        cl.close()
        cluster.close()


def _compute(client, y):
    assert isinstance(y, da.Array), type(y)
    assert not any(np.isnan(c) for cs in y.chunks for c in cs)
    return client.compute(y, sync=True)


def test_conv2d_on_cluster(client, ref):
    rng = np.random.default_rng(20)
    x = rng.standard_normal((3, 4, 40, 50)).astype(np.float32)
    w = rng.standard_normal((6, 2, 5, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    kw = {"stride": (2, 1), "padding": (2, 1), "groups": 2, "padding_mode": "reflect"}
    xd = da.from_array(x, chunks=(1, 4, 11, 25))
    y = fastconv.conv2d(xd, w, b, algorithm="direct", **kw)
    mem = fastconv.conv2d(x, w, b, algorithm="direct", **kw)
    got = _compute(client, y)
    assert got.shape == mem.shape and got.dtype == mem.dtype
    np.testing.assert_array_equal(got, mem)
    want = ref.conv(x, w, b, nd=2, **kw)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_convolve2d_on_cluster(client):
    rng = np.random.default_rng(21)
    a, k = rng.standard_normal((45, 52)), rng.standard_normal((7, 6))
    ad = da.from_array(a, chunks=(12, 26))
    y = fcs.convolve2d(ad, k, mode="same", boundary="symm")
    mem = fcs.convolve2d(a, k, mode="same", boundary="symm")
    got = _compute(client, y)
    assert got.shape == mem.shape and got.dtype == mem.dtype
    np.testing.assert_array_equal(got, mem)
    want = sps.convolve2d(a, k, mode="same", boundary="symm")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())


def test_fftconvolve_on_cluster(client):
    rng = np.random.default_rng(22)
    a, k = rng.standard_normal((4, 40, 30)), rng.standard_normal((1, 6, 5))
    y = fcs.fftconvolve(da.from_array(a, chunks=(2, 20, 15)), k, mode="full", axes=(1, 2))
    got = _compute(client, y)
    want = sps.fftconvolve(a, k, mode="full", axes=(1, 2))
    bound = fcs.FFT_NORMWISE_BOUND[np.dtype(np.float64)]
    np.testing.assert_allclose(got, want, rtol=0, atol=bound * np.abs(want).max())


@pytest.mark.parametrize(("budget", "n_chunks"), [(8, 100), (8, 1), (1, 4), (2, 2)])
def test_worker_task_threads_is_one(client, budget, n_chunks):
    """Inside a worker task (nthreads=1) each chunk gets exactly one thread."""
    from fastconv._dask import task_threads

    assert client.submit(task_threads, budget, n_chunks, pure=False).result() == 1
    # ...and on every worker
    per_worker = client.run(lambda dask_worker: dask_worker.state.nthreads)
    assert set(per_worker.values()) == {1}
