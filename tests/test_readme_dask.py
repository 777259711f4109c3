"""The README's Dask + Zarr example, run as written at a small size.

The code block of README.md's "Dask: arrays larger than memory" section
carrying the marker comment ``# fastconv-readme-dask-zarr`` is extracted,
its ``SIZE, CHUNK = ...`` line replaced by a small image (not a multiple of
the chunk, so the edge chunks are partial), written to a temporary
directory and run there with ``runpy`` (its Zarr stores are relative
paths). The image it wrote and the
result it wrote are then read back and checked: the result against the
in-memory ``fastconv.conv2d`` of the same image and against
``scipy.ndimage.correlate(..., mode="constant")``. Skips without dask or
zarr.
"""
from __future__ import annotations

import pathlib
import re
import runpy

import numpy as np
import pytest
import scipy.ndimage

import fastconv

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
MARKER = "# fastconv-readme-dask-zarr"
SIZE, CHUNK = 300, 128


def readme_block():
    """The source of the marked ```python block of README.md."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)
    marked = [b for b in blocks if MARKER in b]
    assert len(marked) == 1, f"expected one README block marked {MARKER!r}, found {len(marked)}"
    return marked[0]


def scaled(code, size, chunk):
    """The block with its ``SIZE, CHUNK = ...`` line replaced."""
    code, n = re.subn(r"^SIZE, CHUNK = .*$", f"SIZE, CHUNK = {size}, {chunk}", code,
                      flags=re.MULTILINE)
    assert n == 1, "the README block must define SIZE, CHUNK on one line"
    return code


def test_readme_dask_zarr_example(tmp_path, monkeypatch):
    pytest.importorskip("dask.array")
    zarr = pytest.importorskip("zarr")
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "readme_dask_example.py"
    script.write_text(scaled(readme_block(), SIZE, CHUNK), encoding="utf-8")
    namespace = runpy.run_path(str(script), run_name="readme_dask_example")

    img = np.asarray(zarr.open_array(tmp_path / namespace["SRC"], mode="r")[...])
    got = np.asarray(zarr.open_array(tmp_path / namespace["DST"], mode="r")[...])
    kernel = namespace["kernel"]
    assert img.shape == got.shape == (SIZE, SIZE)
    assert img.dtype == got.dtype == np.float32
    assert namespace["img"].chunks[0][0] == CHUNK  # really chunked: 3 strips

    # In memory on the same image: equal to rounding ("auto" lets each chunk
    # choose its algorithm; this Gaussian is separable).
    in_memory = fastconv.conv2d(img, kernel, padding="same")
    tol = 1e-6 * float(np.abs(kernel).sum())
    np.testing.assert_allclose(got, in_memory, rtol=0, atol=tol)

    ref = scipy.ndimage.correlate(img.astype(np.float64), kernel.astype(np.float64),
                                  mode="constant", cval=0.0)
    np.testing.assert_allclose(got, ref, rtol=0, atol=tol)
