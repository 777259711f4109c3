"""NumPy oracles shared by the test files (float64, never calling fastconv).

Imported by name: conftest.py puts this folder on sys.path.
"""
from __future__ import annotations

import itertools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _tup(v, nd):
    return (v,) * nd if isinstance(v, int) else tuple(v)


def padding_pairs(padding, k, d, nd):
    """(before, after) zero padding per axis of a forward convolution's
    `padding` (int, tuple, "valid" or "same": the extra one after)."""
    k, d = _tup(k, nd), _tup(d, nd)
    if padding == "valid":
        return ((0, 0),) * nd
    if padding == "same":
        return tuple((dd * (kk - 1) // 2, dd * (kk - 1) - dd * (kk - 1) // 2)
                     for kk, dd in zip(k, d))
    return tuple((pp, pp) for pp in _tup(padding, nd))


def scatter_reference(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                      dilation=1):
    """Transposed convolution by explicit scatter (float64), batched x."""
    nd = x.ndim - 2
    s, p, op, d = (_tup(v, nd) for v in (stride, padding, output_padding, dilation))
    n, cin = x.shape[:2]
    cout_g, k = w.shape[1], w.shape[2:]
    cin_g = cin // groups
    size = x.shape[2:]
    full = tuple((i - 1) * ss + dd * (kk - 1) + 1 for i, ss, dd, kk in zip(size, s, d, k))
    out = tuple(f - 2 * pp + o for f, pp, o in zip(full, p, op))
    big = tuple(max(f, pp + o) for f, pp, o in zip(full, p, out))
    y = np.zeros((n, cout_g * groups) + big)
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    for g in range(groups):
        xg = x[:, g * cin_g:(g + 1) * cin_g]
        for tap in itertools.product(*(range(kk) for kk in k)):
            contrib = np.einsum("nc...,co->no...", xg, w[(slice(g * cin_g, (g + 1) * cin_g),
                                                          slice(None)) + tap])
            idx = tuple(slice(t * dd, t * dd + (i - 1) * ss + 1, ss)
                        for t, dd, ss, i in zip(tap, d, s, size))
            y[(slice(None), slice(g * cout_g, (g + 1) * cout_g)) + idx] += contrib
    y = y[(slice(None), slice(None)) + tuple(slice(pp, pp + o) for pp, o in zip(p, out))]
    if b is not None:
        y = y + np.asarray(b, np.float64).reshape((-1,) + (1,) * nd)
    return y


def weight_grad_reference(x, gy, wshape, stride, pads, dilation, groups):
    """sum_n gy[n, co, o] * x_padded[n, ci, o*s + k*d], float64, batched."""
    nd = x.ndim - 2
    s, d = _tup(stride, nd), _tup(dilation, nd)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0)) + tuple(pads))
    k = wshape[2:]
    win = sliding_window_view(xp, tuple((kk - 1) * dd + 1 for kk, dd in zip(k, d)),
                              axis=tuple(range(2, 2 + nd)))
    win = win[(Ellipsis,) + tuple(slice(None, None, dd) for dd in d)]
    out = gy.shape[2:]
    win = win[(slice(None), slice(None)) + tuple(slice(0, (o - 1) * ss + 1, ss)
                                                  for o, ss in zip(out, s))]
    cin_g, cout_g = x.shape[1] // groups, gy.shape[1] // groups
    res = np.zeros(wshape)
    sp = "abc"[:nd]
    kk = "uvw"[:nd]
    for g in range(groups):
        res[g * cout_g:(g + 1) * cout_g] = np.einsum(
            f"no{sp},ni{sp}{kk}->oi{kk}", gy[:, g * cout_g:(g + 1) * cout_g].astype(np.float64),
            win[:, g * cin_g:(g + 1) * cin_g])
    return res
