"""python -m fastconv {info,demo} and the build_info() dictionary."""

import os
import subprocess
import sys

import pytest

import fastconv


def _run(args, tmp_path, timeout):
    env = dict(os.environ)
    env.setdefault("MPLBACKEND", "Agg")
    # run from a scratch directory so the source checkout is not on sys.path
    return subprocess.run([sys.executable, "-m", "fastconv", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_build_info_keys():
    info = fastconv.build_info()
    assert isinstance(info, dict)
    for key in ("version", "compiler", "c_args", "simd", "openmp_threads", "blas"):
        assert key in info, f"build_info() lacks {key!r}"
    assert info["version"] == fastconv.__version__
    assert info["simd"]  # some non-empty description of the SIMD level


def test_version_matches_distribution_metadata():
    from importlib.metadata import version
    assert fastconv.__version__ == version("fastconv")


def test_info_command(tmp_path):
    proc = _run(["info"], tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert fastconv.__version__ in out
    assert "simd" in out.lower()
    simd = str(fastconv.build_info()["simd"])
    # the SIMD level itself is printed (first token of it at least)
    assert simd.split()[0].strip(",;") in out, f"SIMD level {simd!r} not in:\n{out}"


def test_unknown_command_fails(tmp_path):
    proc = _run(["no-such-command"], tmp_path, timeout=120)
    assert proc.returncode != 0


def test_demo_smoke(tmp_path):
    pytest.importorskip("skimage")
    pytest.importorskip("matplotlib")
    target = tmp_path / "demo.png"
    proc = _run(["demo", "--output", str(target), "--repeat", "1"], tmp_path,
                timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert target.exists()
    with open(target, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_console_script_info(tmp_path):
    """The `fastconv` console script (the README's quick start uses it)."""
    import os
    import shutil

    exe = shutil.which("fastconv", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("no fastconv console script beside this interpreter")
    proc = subprocess.run([exe, "info"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "SIMD in use" in proc.stdout and fastconv.__version__ in proc.stdout
