"""Property tests: random valid argument combinations vs the oracle."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastconv

FUNCS = {1: fastconv.conv1d, 2: fastconv.conv2d, 3: fastconv.conv3d}
MODES = ("zeros", "reflect", "replicate", "circular")

SETTINGS = settings(max_examples=50, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.filter_too_much])


def _per_dim_or_int(draw, nd, elements):
    """Either one int or a tuple of nd ints (exercises both spellings)."""
    if draw(st.booleans()):
        return draw(elements)
    return tuple(draw(st.lists(elements, min_size=nd, max_size=nd)))


@st.composite
def conv_problems(draw):
    nd = draw(st.integers(1, 3))
    max_sp = {1: 12, 2: 6, 3: 3}[nd]  # extra size beyond the minimum
    groups = draw(st.integers(1, 3))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    form = draw(st.sampled_from(["batched", "unbatched", "plain"]))
    n = draw(st.integers(0, 3)) if form == "batched" else None
    if form == "plain":
        groups, cin, cout = 1, 1, 1
    ksize = tuple(draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))
    stride = _per_dim_or_int(draw, nd, st.integers(1, 3))
    dilation = _per_dim_or_int(draw, nd, st.integers(1, 3))
    kind = draw(st.sampled_from(["int", "tuple", "pairs", "same", "valid"]))
    if kind == "int":
        padding = draw(st.integers(0, 3))
    elif kind == "tuple":
        padding = tuple(draw(st.lists(st.integers(0, 3), min_size=nd, max_size=nd)))
    elif kind == "pairs":
        padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3)))
                        for _ in range(nd))
    else:
        padding = kind
    if padding == "same":
        stride = 1
    padding_mode = draw(st.sampled_from(MODES))
    # choose each spatial size so that the combination is valid: the padded
    # input holds the dilated kernel, and reflect / circular padding stay
    # within torch's limits (pad < size, pad <= size)
    dil = (dilation,) * nd if isinstance(dilation, int) else dilation
    spatial = []
    for i in range(nd):
        extent = dil[i] * (ksize[i] - 1) + 1
        if padding == "valid":
            lo = hi = 0
        elif padding == "same":
            lo = (extent - 1) // 2
            hi = extent - 1 - lo
        elif isinstance(padding, int):
            lo = hi = padding
        elif isinstance(padding[i], int):
            lo = hi = padding[i]
        else:
            lo, hi = padding[i]
        need = max(1, extent - lo - hi)
        if padding_mode == "reflect":
            need = max(need, max(lo, hi) + 1)
        elif padding_mode == "circular":
            need = max(need, max(lo, hi))
        spatial.append(need + draw(st.integers(0, max_sp)))
    spatial = tuple(spatial)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    bias = draw(st.booleans()) and form != "plain"
    seed = draw(st.integers(0, 2**32 - 1))
    return dict(nd=nd, n=n, cin=cin, cout=cout, groups=groups, form=form,
                ksize=ksize, stride=stride, dilation=dilation, padding=padding,
                spatial=spatial, padding_mode=padding_mode, dtype=dtype,
                bias=bias, seed=seed)


def _build(p, ref):
    rng = np.random.default_rng(p["seed"])
    if p["form"] == "plain":
        x = rng.standard_normal(p["spatial"]).astype(p["dtype"])
        w = rng.standard_normal(p["ksize"]).astype(p["dtype"])
        return x, w, None
    return ref.random_case(rng, p["nd"], n=p["n"], cin=p["cin"], cout=p["cout"],
                           groups=p["groups"], spatial=p["spatial"],
                           ksize=p["ksize"], dtype=p["dtype"], bias=p["bias"])


def _valid(p, ref):
    if ref.output_shape(p["spatial"], p["ksize"], p["stride"], p["padding"],
                        p["dilation"]) is None:
        return False
    return ref.padding_ok_for_mode(p["spatial"], p["ksize"], p["padding"],
                                   p["dilation"], p["padding_mode"])


def _kwargs(p):
    return dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"],
                groups=p["groups"], padding_mode=p["padding_mode"])


@pytest.mark.parametrize("algorithm", ["direct", "im2col", "auto"])
@SETTINGS
@given(p=conv_problems())
def test_matches_oracle(p, algorithm, ref):
    assume(_valid(p, ref))
    x, w, b = _build(p, ref)
    kw = _kwargs(p)
    if p["n"] == 0:
        # the oracle cannot build an empty batch; compare shapes against a
        # batch of one instead
        one = ref.conv(np.zeros((1,) + x.shape[1:]), w, b, nd=p["nd"], **kw)
        got = FUNCS[p["nd"]](x, w, b, algorithm=algorithm, **kw)
        assert got.shape == (0,) + one.shape[1:]
        assert got.dtype == ref.result_dtype(x, w, b)
        return
    exp = ref.expect(x, w, b, nd=p["nd"], **kw)
    got = FUNCS[p["nd"]](x, w, b, algorithm=algorithm, **kw)
    ref.assert_matches(got, exp, f"{algorithm} {p}")


@SETTINGS
@given(p=conv_problems())
def test_algorithms_agree_and_match_oracle(p, ref):
    """Extra check: direct and im2col agree with each other (and the oracle)."""
    assume(_valid(p, ref) and p["n"] != 0)
    x, w, b = _build(p, ref)
    kw = _kwargs(p)
    exp = ref.expect(x, w, b, nd=p["nd"], **kw)
    f = FUNCS[p["nd"]]
    a = f(x, w, b, algorithm="direct", **kw)
    c = f(x, w, b, algorithm="im2col", **kw)
    ref.assert_matches(a, exp, "direct")
    ref.assert_matches(c, exp, "im2col")
    rtol, atol = exp.tolerances()
    np.testing.assert_allclose(a.astype(np.float64), c.astype(np.float64),
                               rtol=2 * rtol, atol=2 * atol)


@SETTINGS
@given(p=conv_problems(), data=st.data())
def test_noncontiguous_inputs_property(p, data, ref):
    """Random views (reversed axes, step slices, Fortran order) of the inputs
    give the oracle's answer for the same values."""
    assume(_valid(p, ref) and p["n"] != 0 and p["form"] != "plain")
    x, w, b = _build(p, ref)
    kind = data.draw(st.sampled_from(["reverse", "fortran", "step"]))
    if kind == "reverse":
        xv = x[..., ::-1]
        wv = w[:, :, ::-1]
    elif kind == "fortran":
        xv, wv = np.asfortranarray(x), np.asfortranarray(w)
    else:
        big = np.repeat(x, 2, axis=-1)
        xv = big[..., ::2]
        wv = np.repeat(w, 2, axis=0)[::2]
    assert np.array_equal(xv.shape, x.shape)
    kw = _kwargs(p)
    exp = ref.expect(xv, wv, b, nd=p["nd"], **kw)
    got = FUNCS[p["nd"]](xv, wv, b, algorithm=data.draw(
        st.sampled_from(["direct", "im2col", "auto"])), **kw)
    ref.assert_matches(got, exp, kind)
