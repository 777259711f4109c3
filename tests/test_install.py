"""The tests must exercise the installed, compiled package."""

import importlib
import importlib.machinery
import sys

import fastconv


def test_compiled_direct_kernel_is_importable():
    mod = importlib.import_module("fastconv._kernels._direct")
    path = getattr(mod, "__file__", "") or ""
    assert path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), (
        f"fastconv._kernels._direct is not a compiled extension: {path!r}")


def test_package_is_the_installed_distribution():
    from importlib.metadata import distribution
    dist = distribution("fastconv")
    assert dist.version == fastconv.__version__
    assert sys.modules["fastconv"] is fastconv


def test_public_names():
    for name in ("conv1d", "conv2d", "conv3d", "get_num_threads", "set_num_threads",
                 "threads", "build_info", "ALGORITHMS"):
        assert hasattr(fastconv, name), name
