"""Front end of transposed convolution, convolution gradients and im2col/col2im.

Validation and planning happen here, once, before any kernel runs; the
backend computes (the polyphase phases through its convolution paths, the
rest through ``backend.adjoint``: fastconv._cpu_adjoint on the CPU).  Two
ways to run a transposed convolution (Dumoulin & Visin, 2016, "A guide to
convolution arithmetic for deep learning", section 4):

* polyphase (sub-pixel) decomposition: output sample ``o`` of a transposed
  convolution with stride ``s`` receives the taps ``k`` with
  ``o + pad = i*s + k*d``, so the outputs of one phase ``o mod s`` see a
  fixed, regularly spaced subset of the taps.  Each of the ``prod(s)``
  phases is a stride-1 cross-correlation of the input with the flipped,
  channel-swapped sub-kernel of its taps (dilation ``d / gcd(s, d)``),
  written into the strided view ``y[..., phase::s]`` of the result.  Every
  phase runs on fastconv's ordinary convolution paths (direct, im2col,
  Winograd, FFT, separable, and "auto" among them); stride 1 is one phase,
  a plain convolution with padding ``d*(k-1) - p`` (negative = crop).
  Nothing is zero-inserted.
* GEMM + col2im (``algorithm="im2col"``): ``W^T x`` per image and group
  (the transposed weight matrix times the input pixels), tile by tile,
  each tile's columns added into the output by col2im, the adjoint of
  im2col.

* sub-pixel form (2-D, dilation 1, every kernel size a multiple of its
  stride): then every phase has q x q taps, and all phases are
  correlations of one zero-padded window of the input, so their
  sub-kernels stacked along the output channels make one stride-1
  convolution with ``prod(s)`` times the output channels (Shi et al.,
  2016, "Is the deconvolution layer the same as a convolutional layer?").
  It runs on the ordinary paths (Winograd F(3x3,2x2) for q = 2: one input
  transform and GEMMs ``prod(s)`` times as wide as a phase's), and a
  compiled kernel deals its channel blocks to the output's phases.

"auto" takes GEMM + col2im for strided problems with several input
channels per group (one large GEMM beats several small convolutions),
unless the cost model estimates the sub-pixel form's stacked convolution
below SUBPIXEL_MARGIN of its im2col time (the GEMM's multiply-adds), and
the polyphase decomposition otherwise.  Forced "winograd" takes the
sub-pixel form where it exists.

Gradients (``fastconv.grad``): the input gradient is the transposed
convolution with the output size of the forward input; the weight gradient
is ``sum_n gy_n im2col(x_n)^T`` per group, tiled.
"""
from __future__ import annotations

import functools
import itertools
import math
import sys

import numpy as np
from array_api_compat import array_namespace, is_array_api_obj

from . import _api, _threads
from ._backends import as_arrays, backend_for, deliver, output_target
from ._cpu_adjoint import GEMM_MIN_CHANNELS
from ._validation import (ConvProblem, _as_shape, _int_tuple, _typed, _untyped,
                          check_float_dtype, check_out, check_shape, memoized_plan,
                          normalize_padding, parse_layout, plan_conv)

__all__ = ["conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "im2col", "col2im",
           "conv_input_grad", "conv_weight_grad"]

_DIM_NAMES = {1: "1d", 2: "2d", 3: "3d"}




# --------------------------------------------------------------------------
# Validation and planning
# --------------------------------------------------------------------------

def plan_transpose(nd, x, weight, bias, stride, padding, output_padding, groups,
                   dilation) -> ConvProblem:
    """Validate the arguments of ``conv_transpose{nd}d`` and plan it.

    The returned ConvProblem describes the transposed convolution itself:
    ``in_channels``/``in_size`` are x's, ``out_channels``/``out_size`` the
    result's, ``kernel_size`` the weight's, ``padding`` (before, after)
    pairs of the equivalent forward convolution (result -> x).  Plans
    depend only on shapes, dtypes and the size arguments and are cached.

    Raises
    ------
    TypeError, ValueError
        For any invalid argument, naming it.
    """
    key = (nd, _as_shape(x), x.dtype, _as_shape(weight), weight.dtype,
           None if bias is None else (_as_shape(bias), bias.dtype),
           _typed(stride), _typed(padding), _typed(output_padding), _typed(groups),
           _typed(dilation))
    return _plan_transpose_memo(key)


def _plan_transpose(key) -> ConvProblem:
    nd, xs, xdt, ws, wdt, bias_info, stride, padding, output_padding, groups, dilation = key
    stride, padding, output_padding, groups, dilation = (
        _untyped(k) for k in (stride, padding, output_padding, groups, dilation))
    tag = _DIM_NAMES[nd]
    x_shape = xs
    dt, form, xs, ws, groups = parse_layout(nd, xs, xdt, ws, wdt, bias_info, groups,
                                            f"conv_transpose{tag}",
                                            "(C_in, C_out/groups, *kernel)")
    batch, cin = xs[0], xs[1]
    wcin, cout_g = ws[0], ws[1]
    kernel = ws[2:]
    if wcin != cin:
        raise ValueError(
            f"weight.shape[0]={wcin} must equal the {cin} input channels of x "
            f"(conv_transpose weights are (C_in, C_out/groups, *kernel))")
    if cin % groups:
        raise ValueError(f"groups={groups} does not divide the {cin} input channels of x")
    cout = cout_g * groups
    if bias_info is not None and bias_info[0] != (cout,):
        raise ValueError(f"bias must have shape ({cout},) (C_out), got {bias_info[0]}")

    stride = _int_tuple(stride, nd, "stride", 1)
    dilation = _int_tuple(dilation, nd, "dilation", 1)
    if isinstance(padding, str):
        raise ValueError(
            f"padding must be an int or a tuple of ints for conv_transpose{tag} "
            f"(as in PyTorch, no string padding), got {padding!r}")
    pads = normalize_padding(padding, nd, kernel, dilation, stride)
    opad = _int_tuple(output_padding, nd, "output_padding", 0)
    for op, s, d in zip(opad, stride, dilation):
        if op >= s and op >= d:
            raise ValueError(
                f"output_padding={output_padding!r} must be smaller than either stride="
                f"{stride} or dilation={dilation} in every dimension")
    in_size = xs[2:]
    if any(n == 0 for n in in_size):
        raise ValueError(f"x has an empty spatial dimension: shape {x_shape}")
    out_size = []
    for i, (n, k, s, d, (pb, pa), op) in enumerate(
            zip(in_size, kernel, stride, dilation, pads, opad)):
        size = (n - 1) * s - pb - pa + d * (k - 1) + op + 1
        if size < 1:
            raise ValueError(
                f"padding {pads[i]} leaves no output in spatial dimension {i}: input size {n}, "
                f"kernel {k}, stride {s}, dilation {d} give an output size of {size}")
        out_size.append(size)
    out_size = tuple(out_size)
    # The forward convolution out -> x pads by (pb, pa + op).
    pads = tuple((pb, pa + op) for (pb, pa), op in zip(pads, opad))
    _check_size(batch * cout * math.prod(out_size), dt, (batch, cout) + out_size)
    return ConvProblem(
        nd=nd, batch=batch, in_channels=cin, in_size=in_size, out_channels=cout,
        kernel_size=kernel, stride=stride, padding=pads, dilation=dilation, groups=groups,
        padding_mode="zeros", out_size=out_size, dtype=dt, has_bias=bias_info is not None,
        form=form)


_plan_transpose_memo = memoized_plan(_plan_transpose, 256)


def _check_size(total, dt, shape):
    if total * dt.itemsize > sys.maxsize:
        raise ValueError(f"output shape {shape} is too large: its size in bytes overflows "
                         "a 64-bit index")


def _plain(a):
    """`a` as the kernels take it: a NumPy array as ``np.asarray`` makes it
    (subclasses dropped), another namespace's array (CuPy) as it is."""
    return np.asarray(a) if isinstance(a, np.ndarray) else a


def _namespace(a):
    """The namespace that allocates results like `a`: NumPy for NumPy arrays
    (no inspection on the common path), else array-api-compat's (CuPy)."""
    return np if isinstance(a, np.ndarray) else array_namespace(a)


def _check_algorithm(algorithm):
    if not isinstance(algorithm, str) or algorithm not in _api.ALGORITHMS:
        raise ValueError(f"algorithm must be one of {_api.ALGORITHMS}, got {algorithm!r}")


# --------------------------------------------------------------------------
# Polyphase plan
# --------------------------------------------------------------------------

@functools.lru_cache(maxsize=256)
def _phases_1d(n, k, s, d, pb, length):
    """Phases of one dimension of a transposed convolution.

    Input length `n`, kernel `k`, stride `s`, dilation `d`, leading padding
    `pb` of the forward convolution, output length `length`.  Output sample
    ``o = s*q + phi`` gets ``x[i] * w[t]`` for ``i*s + t*d = o + pb``: the
    taps ``t = t0 + j*step`` (``step = s / gcd(s, d)``) and inputs
    ``i = q + c - j*d'`` (``d' = d / gcd(s, d)``), a correlation with the
    reversed sub-kernel.  Returns one tuple per non-empty phase:
    ``(phi, count, taps slice or None, dilation, crop_start, crop_stop,
    pad_before, pad_after)``; a None slice marks a phase no tap (or no
    input sample) reaches, which is zero.
    """
    step = s // math.gcd(s, d)
    dd = d // math.gcd(s, d)
    out = []
    for phi in range(min(s, length)):
        count = (length - phi + s - 1) // s
        taps = [t for t in range(k) if (phi + pb - t * d) % s == 0]
        if not taps:
            out.append((phi, count, None, 1, 0, 0, 0, 0))
            continue
        t0, ntap = taps[0], len(taps)
        c = (phi + pb - t0 * d) // s
        before = (ntap - 1) * dd - c
        after = (count - 1 + c) - (n - 1)
        start, stop = max(0, -before), n - max(0, -after)
        if stop <= start:  # every tap of this phase reads outside the input
            out.append((phi, count, None, 1, 0, 0, 0, 0))
            continue
        taps_slice = slice(t0 + (ntap - 1) * step, None if t0 == 0 else t0 - 1, -step)
        out.append((phi, count, taps_slice, dd, start, stop, max(0, before), max(0, after)))
    return tuple(out)


def _phase_list(problem):
    """The N-D phases: product of the per-dimension phases."""
    per_dim = [
        _phases_1d(n, k, s, d, pb, length)
        for n, k, s, d, (pb, _), length in zip(problem.in_size, problem.kernel_size,
                                               problem.stride, problem.dilation,
                                               problem.padding, problem.out_size)
    ]
    return list(itertools.product(*per_dim))


def _swapped_weight(weight, problem):
    """(C_in, C_out/g, *k) -> the forward weight (C_out, C_in/g, *k) of each group."""
    g, nd = problem.groups, problem.nd
    cin_g = problem.in_channels // g
    cout_g = problem.out_channels // g
    k = problem.kernel_size
    w = _plain(weight).reshape((g, cin_g, cout_g) + k)
    return w.transpose((0, 2, 1) + tuple(range(3, 3 + nd))).reshape(
        (problem.out_channels, cin_g) + k)


def _polyphase_plan(backend, problem, x, weight, bias, algorithm, nthreads):
    """Validated sub-problems: a list of (view slices, x view, prepared | None).

    Everything is checked (and, for forced algorithms, laid out) before any
    phase runs, so a forced algorithm that cannot serve one phase raises
    before anything is written.
    """
    nd = problem.nd
    xb = x.reshape((problem.batch, problem.in_channels) + problem.in_size)
    wsw = _swapped_weight(weight, problem)
    runs = []
    for phase in _phase_list(problem):
        out_index = (slice(None), slice(None)) + tuple(
            slice(phi, None, s) for (phi, *_), s in zip(phase, problem.stride))
        if any(p[2] is None for p in phase):
            runs.append((out_index, None, None))
            continue
        xv = xb[(slice(None), slice(None)) + tuple(slice(p[4], p[5]) for p in phase)]
        wv = wsw[(slice(None), slice(None)) + tuple(p[2] for p in phase)]
        pads = tuple((p[6], p[7]) for p in phase)
        dil = tuple(p[3] for p in phase)
        sub = plan_conv(nd, xv, wv, bias, 1, pads, dil, problem.groups, "zeros")
        name = algorithm
        if name != "auto":
            reason = backend.unsupported_reason(sub, name)
            if reason is not None:
                raise ValueError(
                    f"algorithm={name!r} cannot serve this transposed convolution: its "
                    f"stride-1 phase with sub-kernel {sub.kernel_size} (dilation {dil}) "
                    f"fails because {reason}")
        else:
            name = _api._auto(backend, sub, xv, wv, bias, nthreads)
        runs.append((out_index, xv, backend.prepare(sub, name, wv, bias, nthreads)))
    return runs


# --------------------------------------------------------------------------
# Sub-pixel plan: the phases stacked into one convolution
# --------------------------------------------------------------------------

#: "auto" runs the sub-pixel form when the estimate of its stacked
#: convolution's best algorithm is below this fraction of the estimate for
#: the same convolution by im2col (which does the multiply-adds of GEMM +
#: col2im in one GEMM).
SUBPIXEL_MARGIN = 0.7


@functools.lru_cache(maxsize=256)
def _subpixel_1d(n, k, s, d, pb, length):
    """One dimension of the sub-pixel form, or None.

    With dilation 1 and ``k = q*s`` every phase of ``_phases_1d`` has q taps
    and reads ``x[j + e + u]`` (u < q) for its output j, e depending on the
    phase: all phases are correlations of one window of x.  Returns
    ``(x_start, x_stop, pad_before, pad_after, phases)``: the window is
    ``x[x_start:x_stop]`` zero-padded by (pad_before, pad_after), and each
    of ``phases`` is ``(phi, count, taps slice, offset)``: output
    ``y[phi::s]`` (count samples) is the correlation's outputs
    ``offset .. offset + count - 1`` with the phase's taps.
    """
    if d != 1 or k % s:
        return None
    phases = _phases_1d(n, k, s, d, pb, length)
    if any(p[2] is None for p in phases):
        return None
    q = k // s
    starts = [start - before for (_, _, _, _, start, _, before, _) in phases]
    shift = min(starts)
    offsets = [e - shift for e in starts]
    span = max(off + p[1] for off, p in zip(offsets, phases))  # correlation outputs
    end = shift + span + q - 1                                 # x index after the window
    x_start, pad_before = (shift, 0) if shift >= 0 else (0, -shift)
    x_stop, pad_after = (end, 0) if end <= n else (n, end - n)
    return (x_start, x_stop, pad_before, pad_after,
            tuple((p[0], p[1], p[2], off) for p, off in zip(phases, offsets)))


def _subpixel_layout(problem):
    """Per dimension ``_subpixel_1d``, or None where a dimension has none."""
    dims = tuple(_subpixel_1d(n, k, s, d, pb, length)
                 for n, k, s, d, (pb, _), length in zip(
                     problem.in_size, problem.kernel_size, problem.stride,
                     problem.dilation, problem.padding, problem.out_size))
    return None if any(dim is None for dim in dims) else dims


@functools.lru_cache(maxsize=256)
def _subpixel_choice(backend, problem, algorithm, margin):
    """The sub-pixel form's layout and stacked convolution, decided on
    shapes alone (see _subpixel_plan; `margin` is SUBPIXEL_MARGIN):
    ``(dims, stacked problem, its algorithm)``, or None."""
    if problem.nd != 2 or not hasattr(getattr(backend, "adjoint", None), "subpixel_deal"):
        return None
    dims = _subpixel_layout(problem)
    if dims is None:
        return None
    g, dt = problem.groups, problem.dtype
    cout_g, cin_g = problem.out_channels // g, problem.in_channels // g
    nph = math.prod(len(d[4]) for d in dims)
    q = tuple(k // s for k, s in zip(problem.kernel_size, problem.stride))
    window = tuple(d[1] - d[0] for d in dims)
    sub = plan_conv(2, _placeholder((problem.batch, problem.in_channels) + window, dt),
                    _placeholder((g * nph * cout_g, cin_g) + q, dt),
                    _placeholder((g * nph * cout_g,), dt) if problem.has_bias else None,
                    1, tuple((d[2], d[3]) for d in dims), 1, g, "zeros")
    if algorithm == "auto":
        est = backend.estimate(sub)
        name = min(est, key=est.get)
        if "im2col" not in est or est[name] >= margin * est["im2col"]:
            return None
    else:
        name = algorithm
        if backend.unsupported_reason(sub, name) is not None:
            return None
    return dims, sub, name


def _subpixel_plan(backend, problem, x, weight, bias, algorithm, nthreads):
    """The sub-pixel form of a 2-D transposed convolution, prepared, or None.

    Stacking the phases' sub-kernels along the output channels (group by
    group: channel ``(g*P + phase)*C_out/g + c`` for P phases) makes the
    ``prod(stride)`` phase correlations one stride-1 convolution of one
    zero-padded window of x, with ``prod(stride)`` times the output
    channels (Shi et al., 2016, "Is the deconvolution layer the same as a
    convolutional layer?"): one input transform and ``prod(stride)`` times
    wider GEMMs then serve every phase.  `algorithm` is the stacked
    convolution's, or "auto", which takes the sub-pixel form only when the
    estimate of the stacked convolution's best algorithm beats its im2col
    estimate (the multiply-adds of GEMM + col2im, in one GEMM) by
    SUBPIXEL_MARGIN.  None where the layout does not exist, the backend has
    no sub-pixel kernels, or "auto" declines.  Returns
    ``(prepared, x view, per-dimension (phi, count, offset) tables, shape
    of the stacked convolution's output)``.
    """
    choice = _subpixel_choice(backend, problem, algorithm, SUBPIXEL_MARGIN)
    if choice is None:
        return None
    dims, sub, name = choice
    g = problem.groups
    cout_g = problem.out_channels // g
    nph = math.prod(len(d[4]) for d in dims)
    xb = x.reshape((problem.batch, problem.in_channels) + problem.in_size)
    xv = xb[(slice(None), slice(None)) + tuple(slice(d[0], d[1]) for d in dims)]
    taps = [np.array([np.arange(k)[p[2]] for p in d[4]]) for k, d in
            zip(problem.kernel_size, dims)]
    wst = backend.adjoint.subpixel_weight(problem, weight, taps, nthreads)
    if algorithm == "auto" and name in backend.finite_only and not backend.all_finite(xv, wst):
        return None
    bst = None
    if bias is not None:
        bst = np.broadcast_to(np.asarray(bias, dtype=problem.dtype).reshape(g, 1, cout_g),
                              (g, nph, cout_g)).reshape(-1)
    tables = [np.array([(p[0], p[1], p[3]) for p in d[4]]) for d in dims]
    z_shape = (problem.batch, g * nph * cout_g) + sub.out_size
    return (backend.prepare(sub, name, wst, bst, nthreads, transient=True), xv, tables,
            z_shape)


def _run_subpixel(backend, plan, problem, target, nthreads):
    """Run the stacked convolution and deal its channel blocks to the phases."""
    prepared, xv, tables, z_shape = plan
    z = backend.adjoint.subpixel_buffer(z_shape, target.dtype)
    backend.execute(prepared, xv, z, nthreads)
    backend.adjoint.subpixel_deal(problem, z, target, tables, nthreads)


def _run_polyphase(backend, runs, bias, target, nthreads):
    for out_index, xv, prepared in runs:
        view = target[out_index]
        if prepared is None:
            view[...] = 0 if bias is None else _bias_shape(bias, view.ndim)
        else:
            backend.execute(prepared, xv, view, nthreads)


def _bias_shape(bias, ndim):
    return _plain(bias).reshape((-1,) + (1,) * (ndim - 2))


# --------------------------------------------------------------------------
# GEMM + col2im
# --------------------------------------------------------------------------

def _transpose(backend, problem, x, weight, bias, algorithm, out, nthreads):
    """Run a planned transposed convolution; returns the result in the user's form."""
    p = problem
    path = backend.adjoint.transpose_algorithm(p) if algorithm == "auto" else algorithm
    runs = subpixel = None
    if p.batch and (algorithm == "winograd" or (algorithm == "auto" and path == "im2col")):
        # the sub-pixel form: forced Winograd, or "auto" where it wins
        subpixel = _subpixel_plan(backend, p, x, weight, bias, algorithm, nthreads)
    if subpixel is None and path == "im2col":
        reason = backend.adjoint.gemm_reason(p)
        if reason is not None:
            raise ValueError(f"algorithm='im2col' cannot serve these arguments: {reason}")
    elif subpixel is None:
        runs = _polyphase_plan(backend, p, x, weight, bias,
                               "auto" if path == "polyphase" else path, nthreads)
    xp = _namespace(x)
    target = output_target(out, (p.batch, p.out_channels) + p.out_size, p.dtype,
                           (x, weight, bias), xp)
    if target.size:
        if subpixel is not None:
            _run_subpixel(backend, subpixel, p, target, nthreads)
        elif runs is None:
            backend.adjoint.conv_transpose_gemm(p, x, weight, bias, target, nthreads)
        else:
            _run_polyphase(backend, runs, bias, target, nthreads)
    return deliver(target, p.user_out_shape, out, xp)


def _conv_transposend(nd, x, weight, bias, stride, padding, output_padding, groups, dilation,
                      algorithm, out, workers):
    x, weight, bias = as_arrays(x, weight, bias)
    if out is not None and not is_array_api_obj(out):
        raise TypeError(f"out must be an array, got {type(out).__name__}")
    backend = backend_for(x, weight, bias, out)
    problem = plan_transpose(nd, x, weight, bias, stride, padding, output_padding, groups,
                             dilation)
    _check_algorithm(algorithm)
    if algorithm != "auto" and algorithm not in backend.algorithms:
        raise ValueError(f"algorithm={algorithm!r} is not available for {backend.name} arrays "
                         f"(available: {backend.algorithms})")
    if out is not None:
        check_out(out, problem, backend.is_array)
    nthreads = _threads.resolve_workers(workers)
    own = getattr(backend, "conv_transpose", None)  # a backend with its own way (Dask)
    if own is not None:
        return own(x, weight, bias, problem, algorithm, out, nthreads)
    return _transpose(backend, problem, x, weight, bias, algorithm, out, nthreads)


_TRANSPOSE_DOC = r"""{nd}-D transposed convolution, like ``torch.nn.functional.conv_transpose{nd}d``.

    The adjoint of :func:`fastconv.conv{nd}d` with the same weight, stride,
    padding, dilation and groups (sometimes called "deconvolution"):

    .. math::

        \mathrm{{out}}[n, g C_{{og}} + c_o, o] = b[g C_{{og}} + c_o]
            + \sum_{{c_i}} \sum_{{i, k:\ i s - p + k d = o}}
            x[n, g C_{{ig}} + c_i, i]\, w[g C_{{ig}} + c_i, c_o, k]

    per spatial dimension, where :math:`C_{{ig}}` and :math:`C_{{og}}` are
    the input and output channels per group.

    Parameters
    ----------
    x : {xshape} array of float32 or float64
        Input (batched, unbatched, or one plain {what} when `weight` is
        {nd}-D too).
    weight : {wshape} array of float32 or float64
        Filters in PyTorch's transposed layout (C_in, C_out/groups, *kernel).
    bias : (C_out,) array, optional
        Added to every output position of each output channel.
    stride : int or tuple of {nd} ints, default 1
        Stride of the forward convolution this is the adjoint of (>= 1).
    padding : int or tuple of {nd} ints, default 0
        Implicit zero padding ``dilation*(k-1) - padding`` of both sides, as
        in PyTorch (it crops the full transposed convolution); per-side
        (before, after) pairs are accepted too.  No string padding.
    output_padding : int or tuple of {nd} ints, default 0
        Extra size added to one side of each output dimension; smaller than
        the stride or the dilation of that dimension.
    groups : int, default 1
        Channel groups; C_in must be divisible by it.
    dilation : int or tuple of {nd} ints, default 1
        Spacing between kernel taps (>= 1).
    algorithm : {{"auto", "direct", "im2col", "fft", "winograd", "separable"}}, default "auto"
        "im2col" runs GEMM + col2im; "winograd" the sub-pixel form where
        it exists (2-D, dilation 1, each kernel size a multiple of its
        stride; see Notes) with its stacked convolution by Winograd; the
        others (and "winograd" elsewhere) run the polyphase decomposition
        with that algorithm on every phase; forcing one that cannot serve
        a phase raises ValueError.
    out : array, optional
        Array of the result's shape and dtype to write into.
    workers : int, optional
        Threads for this call; default :func:`fastconv.get_num_threads`.

    Returns
    -------
    y : {yshape} array
        A CuPy array for CuPy inputs (see Notes), else NumPy.
        Same dtype as the promoted inputs; per dimension the output size is
        ``(size - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``.

    Raises
    ------
    TypeError
        If an array is not float32/float64, a size argument is not an int,
        `out` has the wrong dtype, or arrays of two namespaces are mixed.
    ValueError
        If shapes disagree (weight.shape[0] vs C_in, groups, bias), a size
        argument is out of range (output_padding not smaller than stride or
        dilation, padding leaving no output), `algorithm` is unknown or
        cannot serve, or `out` has the wrong shape.

    See Also
    --------
    fastconv.conv{nd}d, fastconv.grad.conv{nd}d_input

    Notes
    -----
    Nothing is zero-inserted.  "auto" (and any algorithm but "im2col")
    splits the output into its ``prod(stride)`` phases (the sub-pixel or
    polyphase decomposition; Dumoulin & Visin, 2016, "A guide to
    convolution arithmetic for deep learning", section 4; Shi et al., 2016,
    "Real-Time Single Image and Video Super-Resolution Using an Efficient
    Sub-Pixel Convolutional Neural Network"): each phase is a stride-1
    cross-correlation of `x` with the flipped, channel-swapped sub-kernel of
    the taps that reach it, run by fastconv's convolution kernels (the
    given algorithm, or "auto"'s choice) straight into the strided view of
    the output.  "im2col" computes ``W^T x`` with BLAS GEMMs over tiles of
    input pixels and adds each tile into the output with col2im, the
    adjoint of im2col; "auto" takes it for strided problems with
    {gemm_min} or more input channels per group, unless the sub-pixel
    form is estimated faster.  That form (2-D, dilation 1, kernel ``q *
    stride``; Shi et al., 2016, "Is the deconvolution layer the same as a
    convolutional layer?") stacks the phases' q x q sub-kernels along the
    output channels into one stride-1 convolution with ``prod(stride)``
    times the output channels, run by conv2d's kernels (Winograd F(3x3,2x2)
    for q = 2) and dealt to the phases by a compiled kernel: one input
    transform and wider GEMMs for all phases.  Results agree with PyTorch
    to float rounding (Winograd's to its normwise bound,
    ``fastconv._winograd.ERROR_BOUND``).

    CuPy arrays (`x`, `weight`, `bias` and `out` all on the GPU) are
    accepted with the same semantics and errors: the result is a CuPy
    array computed on the device of `x`, on CuPy's current stream.  The
    phases run on the CuPy backend's convolutions ("direct", "im2col",
    "fft", and "winograd" where every phase is a 3x3 stride-1 convolution;
    "separable" raises ValueError), GEMM + col2im on cuBLAS
    (``cupy.matmul``) and a deterministic CUDA col2im kernel.

    Examples
    --------
{example}
"""

_EXAMPLES = {
    1: """    >>> import numpy as np, fastconv
    >>> fastconv.conv_transpose1d(np.array([1.0, 2.0]), np.array([1.0, 1.0, 1.0]), stride=2)
    array([1., 1., 3., 2., 2.])""",
    2: """    >>> import numpy as np, fastconv
    >>> x = np.ones((1, 4, 8, 8), np.float32)
    >>> w = np.ones((4, 2, 4, 4), np.float32)
    >>> fastconv.conv_transpose2d(x, w, stride=2, padding=1).shape
    (1, 2, 16, 16)""",
    3: """    >>> import numpy as np, fastconv
    >>> fastconv.conv_transpose3d(np.ones((2, 3, 3, 3)), np.ones((2, 1, 2, 2, 2))).shape
    (1, 4, 4, 4)""",
}


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, algorithm="auto", out=None, workers=None):
    return _conv_transposend(1, x, weight, bias, stride, padding, output_padding, groups,
                             dilation, algorithm, out, workers)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, algorithm="auto", out=None, workers=None):
    return _conv_transposend(2, x, weight, bias, stride, padding, output_padding, groups,
                             dilation, algorithm, out, workers)


def conv_transpose3d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, algorithm="auto", out=None, workers=None):
    return _conv_transposend(3, x, weight, bias, stride, padding, output_padding, groups,
                             dilation, algorithm, out, workers)


for _nd, _fn, _xs, _ws, _ys, _what in (
        (1, conv_transpose1d, "(N, C_in, L) or (C_in, L) or (L,)",
         "(C_in, C_out/groups, kL) or (kL,)", "(N, C_out, L_out) or (C_out, L_out) or (L_out,)",
         "signal"),
        (2, conv_transpose2d, "(N, C_in, H, W) or (C_in, H, W) or (H, W)",
         "(C_in, C_out/groups, kH, kW) or (kH, kW)",
         "(N, C_out, H_out, W_out) or (C_out, H_out, W_out) or (H_out, W_out)", "image"),
        (3, conv_transpose3d, "(N, C_in, D, H, W) or (C_in, D, H, W) or (D, H, W)",
         "(C_in, C_out/groups, kD, kH, kW) or (kD, kH, kW)",
         "(N, C_out, D_out, H_out, W_out) or (C_out, D_out, H_out, W_out) or "
         "(D_out, H_out, W_out)", "volume")):
    _fn.__doc__ = _TRANSPOSE_DOC.format(nd=_nd, xshape=_xs, wshape=_ws, yshape=_ys, what=_what,
                                        gemm_min=GEMM_MIN_CHANNELS, example=_EXAMPLES[_nd])


# --------------------------------------------------------------------------
# Gradients (fastconv.grad)
# --------------------------------------------------------------------------

def _placeholder(shape, dtype):
    """A read-only array of `shape` that holds no memory (plans read shapes only)."""
    return np.broadcast_to(np.zeros((), dtype=dtype), shape)


def _check_grad_output(grad_output, forward, expected_form_shape):
    shape = _as_shape(grad_output)
    if shape != expected_form_shape:
        raise ValueError(
            f"grad_output has shape {shape}, but the convolution of an input of shape "
            f"{(forward.batch, forward.in_channels) + forward.in_size} gives "
            f"{expected_form_shape}")


def conv_input_grad(nd, input_size, weight, grad_output, stride, padding, dilation, groups):
    """Gradient of ``conv{nd}d`` with respect to its input (fastconv.grad).

    Parameters
    ----------
    nd : {1, 2, 3}
        Spatial dimensions.
    input_size : sequence of int
        Shape of the convolution's input (N, C_in, *spatial), (C_in,
        *spatial) or the plain form; also the result's shape.
    weight : (C_out, C_in/groups, *kernel) array of float32 or float64
    grad_output : array of the convolution's output shape
    stride, padding, dilation, groups
        As for ``conv{nd}d`` (zero padding).

    Returns
    -------
    grad_input : array of shape `input_size`
        The transposed convolution of `grad_output` with `weight`, with
        the output padding that recovers `input_size`.

    Raises
    ------
    TypeError, ValueError
        For invalid arguments, or a `grad_output` whose shape is not the
        convolution's output shape, naming the argument.
    """
    weight, grad_output = as_arrays(weight, grad_output)
    backend = backend_for(weight, grad_output)
    size = check_shape(input_size, "input_size")
    go_dt = check_float_dtype(grad_output, "grad_output")
    fwd = plan_conv(nd, _placeholder(size, go_dt), weight, None, stride, padding, dilation,
                    groups, "zeros")
    _check_grad_output(grad_output, fwd, fwd.user_out_shape)
    problem = ConvProblem(
        nd=nd, batch=fwd.batch, in_channels=fwd.out_channels, in_size=fwd.out_size,
        out_channels=fwd.in_channels, kernel_size=fwd.kernel_size, stride=fwd.stride,
        padding=fwd.padding, dilation=fwd.dilation, groups=fwd.groups, padding_mode="zeros",
        out_size=fwd.in_size, dtype=fwd.dtype, has_bias=False, form=fwd.form)
    nthreads = _threads.resolve_workers(None)
    if problem.in_channels == 0 or any(n == 0 for n in problem.in_size):
        return _namespace(grad_output).zeros(problem.user_out_shape, dtype=problem.dtype)
    return _transpose(backend, problem, grad_output, weight, None, "auto", None, nthreads)


def conv_weight_grad(nd, x, weight_size, grad_output, stride, padding, dilation, groups):
    """Gradient of ``conv{nd}d`` with respect to its weight (fastconv.grad).

    Parameters
    ----------
    nd : {1, 2, 3}
        Spatial dimensions.
    x : array of float32 or float64
        The convolution's input.
    weight_size : sequence of int
        Shape of the weight (C_out, C_in/groups, *kernel); also the result's.
    grad_output : array of the convolution's output shape
    stride, padding, dilation, groups
        As for ``conv{nd}d`` (zero padding).

    Returns
    -------
    grad_weight : array of shape `weight_size`
        ``sum_n grad_output_n @ im2col(x_n)^T`` per group (the backend's
        ``adjoint.conv_weight_grad``).

    Raises
    ------
    TypeError, ValueError
        For invalid arguments, a `grad_output` of the wrong shape, or
        matrices too large for 32-bit BLAS, naming the argument.
    """
    x, grad_output = as_arrays(x, grad_output)
    backend = backend_for(x, grad_output)
    size = check_shape(weight_size, "weight_size")
    go_dt = check_float_dtype(grad_output, "grad_output")
    fwd = plan_conv(nd, x, _placeholder(size, go_dt), None, stride, padding, dilation, groups,
                    "zeros")
    _check_grad_output(grad_output, fwd, fwd.user_out_shape)
    reason = backend.adjoint.weight_grad_reason(fwd)
    if reason is not None:
        raise ValueError(f"the weight gradient cannot serve these arguments: {reason}")
    return backend.adjoint.conv_weight_grad(fwd, x, grad_output, size,
                                            _threads.resolve_workers(None))


# --------------------------------------------------------------------------
# im2col / col2im (torch.nn.functional.unfold / fold)
# --------------------------------------------------------------------------

def _pair_arg(value, name, minimum):
    return _int_tuple(value, 2, name, minimum)


def _blocks(size, kernel, stride, padding, dilation, what):
    """Sliding-window grid of a 2-D (H, W) size, or ValueError naming `what`."""
    grid = []
    for i, (n, k, s, p, d) in enumerate(zip(size, kernel, stride, padding, dilation)):
        extent = d * (k - 1) + 1
        if n + 2 * p < extent:
            raise ValueError(
                f"kernel_size {kernel} (dilated extent {extent}) is larger than the padded "
                f"{what} size {n + 2 * p} in spatial dimension {i} (padding {padding})")
        grid.append((n + 2 * p - extent) // s + 1)
    return tuple(grid)


def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """Sliding local blocks of a batch of images, like ``torch.nn.functional.unfold``.

    Column ``l`` of image ``n`` holds the ``C*kH*kW`` values of the window
    at block ``l`` (row-major over the block grid), channel-major then
    kernel row then kernel column, zero where the window covers padding.

    Parameters
    ----------
    x : (N, C, H, W) or (C, H, W) array of float32 or float64
        Batched or unbatched images.
    kernel_size : int or (int, int)
        Window size (>= 1).
    stride : int or (int, int), default 1
        Step between windows (>= 1).
    padding : int or (int, int), default 0
        Zeros added to both sides of each dimension (>= 0).
    dilation : int or (int, int), default 1
        Spacing between window elements (>= 1).

    Returns
    -------
    cols : (N, C*kH*kW, L) or (C*kH*kW, L) array
        A CuPy array for a CuPy `x`, else NumPy.
        Same dtype as `x`; ``L = prod((size + 2*padding - dilation*(k-1) - 1) // stride + 1)``.

    Raises
    ------
    TypeError
        If `x` is not float32/float64 or a size argument is not an int.
    ValueError
        If `x` is not 3-D or 4-D, a size argument is out of range, or the
        window is larger than the padded image.

    See Also
    --------
    col2im, fastconv.conv2d

    Notes
    -----
    The im2col matrix of Chellapilla et al. (2006), "High Performance
    Convolutional Neural Networks for Document Processing", computed by the
    same C tile kernel as fastconv's im2col convolution path, in parallel
    over (image, channel).  CuPy arrays are accepted too and computed on
    the GPU (CuPy's current stream) by the CUDA im2col kernel of the CuPy
    backend, one thread per element of the result.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    >>> fastconv.im2col(x, 2)
    array([[[0., 1., 3., 4.],
            [1., 2., 4., 5.],
            [3., 4., 6., 7.],
            [4., 5., 7., 8.]]], dtype=float32)
    """
    (x,) = as_arrays(x)
    backend = backend_for(x)
    dt = check_float_dtype(x, "x")
    shape = _as_shape(x)
    if len(shape) not in (3, 4):
        raise ValueError(f"x must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape {shape}")
    kernel = _pair_arg(kernel_size, "kernel_size", 1)
    stride = _pair_arg(stride, "stride", 1)
    padding = _pair_arg(padding, "padding", 0)
    dilation = _pair_arg(dilation, "dilation", 1)
    xs = shape if len(shape) == 4 else (1,) + shape
    n, c = xs[:2]
    grid = _blocks(xs[2:], kernel, stride, padding, dilation, "input")
    rows, length = c * kernel[0] * kernel[1], grid[0] * grid[1]
    _check_size(n * rows * length, dt, (n, rows, length))
    out = backend.adjoint.im2col(_plain(x).reshape(xs), kernel, grid, stride, padding,
                                 dilation, _threads.resolve_workers(None))
    return out if len(shape) == 4 else out[0]


def col2im(cols, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Sum sliding local blocks back into images, like ``torch.nn.functional.fold``.

    The adjoint of :func:`im2col`: every column's values are added at the
    positions of its window; overlapping windows sum, values falling into
    the padding are dropped.

    Parameters
    ----------
    cols : (N, C*kH*kW, L) or (C*kH*kW, L) array of float32 or float64
        Blocks, laid out as :func:`im2col` returns them.
    output_size : int or (int, int)
        Spatial size (H, W) of the images.
    kernel_size : int or (int, int)
        Window size (>= 1).
    dilation : int or (int, int), default 1
        Spacing between window elements (>= 1).
    padding : int or (int, int), default 0
        Zero padding of the images the blocks were taken from (>= 0).
    stride : int or (int, int), default 1
        Step between windows (>= 1).

    Returns
    -------
    x : (N, C, H, W) or (C, H, W) array
        A CuPy array for CuPy `cols`, else NumPy.  Same dtype as `cols`.

    Raises
    ------
    TypeError
        If `cols` is not float32/float64 or a size argument is not an int.
    ValueError
        If `cols` is not 2-D or 3-D, its rows are not a multiple of
        ``kH*kW``, its columns do not match the block grid of
        `output_size`, or a size argument is out of range.

    See Also
    --------
    im2col, fastconv.conv_transpose2d

    Notes
    -----
    A compiled col2im kernel (the adjoint of the im2col tile kernel), in
    parallel over (image, channel) so that no two threads write the same
    element.  CuPy arrays are accepted too and computed on the GPU (CuPy's
    current stream) by a CUDA kernel in gather form: one thread per image
    element sums the block entries landing on it (no atomics, so results
    are deterministic).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> cols = np.ones((1, 4, 4), np.float32)
    >>> fastconv.col2im(cols, (3, 3), 2)
    array([[[[1., 2., 1.],
             [2., 4., 2.],
             [1., 2., 1.]]]], dtype=float32)
    """
    (cols,) = as_arrays(cols)
    backend = backend_for(cols)
    dt = check_float_dtype(cols, "cols")
    shape = _as_shape(cols)
    if len(shape) not in (2, 3):
        raise ValueError(f"cols must be 3-D (N, C*kH*kW, L) or 2-D (C*kH*kW, L), "
                         f"got shape {shape}")
    size = _pair_arg(output_size, "output_size", 1)
    kernel = _pair_arg(kernel_size, "kernel_size", 1)
    dilation = _pair_arg(dilation, "dilation", 1)
    padding = _pair_arg(padding, "padding", 0)
    stride = _pair_arg(stride, "stride", 1)
    cs = shape if len(shape) == 3 else (1,) + shape
    n, rows, length = cs
    kv = kernel[0] * kernel[1]
    if rows % kv:
        raise ValueError(f"cols.shape[{len(shape) - 2}]={rows} must be divisible by "
                         f"prod(kernel_size)={kv}")
    grid = _blocks(size, kernel, stride, padding, dilation, "output")
    if grid[0] * grid[1] != length:
        raise ValueError(
            f"cols has {length} blocks but output_size={size}, kernel_size={kernel}, "
            f"dilation={dilation}, padding={padding}, stride={stride} give "
            f"{grid[0]} x {grid[1]} = {grid[0] * grid[1]}")
    c = rows // kv
    _check_size(n * c * size[0] * size[1], dt, (n, c) + size)
    out = backend.adjoint.col2im(_plain(cols).reshape(cs), size, kernel, grid, stride,
                                 padding, dilation, _threads.resolve_workers(None))
    return out if len(shape) == 3 else out[0]
