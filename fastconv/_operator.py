r"""Linear-operator view of conv1d / conv2d / conv3d: sparse matrices and
``scipy.sparse.linalg.LinearOperator``.

For fixed weights, a convolution is a linear map of its input.  Flattening
the input and the output in C order makes it a matrix ``A`` with
``A @ x.ravel() == conv(x, weight, ...).ravel()``:

* :func:`conv_matrix` builds ``A`` as a scipy.sparse array -- Toeplitz
  (1-D) / doubly (or triply) block Toeplitz for zero padding, doubly block
  circulant for ``padding_mode="circular"``, and for "reflect" and
  "replicate" the Toeplitz matrix whose taps that fall into the padding are
  moved (and summed) onto the pixels the padding copies.
* :class:`ConvOperator` applies ``A`` without storing it: ``matvec`` is the
  convolution and ``rmatvec`` the exact adjoint ``A^T``, a transposed
  convolution followed, for the non-zero padding modes, by the adjoint of
  the padding (the padded border folded back onto the pixels it copies).

Both validate their arguments exactly as the convolutions do
(:func:`fastconv._validation.plan_conv`).
"""
from __future__ import annotations

import math
import re

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from . import _api, _plan, _threads
from ._transpose import conv_transpose1d, conv_transpose2d, conv_transpose3d
from ._validation import check_float_dtype, check_shape, plan_conv

__all__ = ["conv_matrix", "ConvOperator", "MAX_COO_BYTES", "SPARSE_FORMATS"]

#: Largest COO triplet build :func:`conv_matrix` accepts, in bytes:
#: ``nnz * (itemsize + 2 * index itemsize)`` before duplicates are summed
#: (converting to another format takes about as much again).  Raise it to
#: build larger matrices.
MAX_COO_BYTES = 2 * 2**30

#: Format names :func:`conv_matrix` accepts (``scipy.sparse`` array formats).
SPARSE_FORMATS = ("csr", "csc", "coo", "bsr", "lil", "dok", "dia")

_INDEX_MAX32 = np.iinfo(np.int32).max
_INDEX_MAX64 = np.iinfo(np.int64).max


# --------------------------------------------------------------------------
# validation (shared by conv_matrix and ConvOperator)
# --------------------------------------------------------------------------
def _as_weight(weight):
    """`weight` as a NumPy float array, with its spatial rank and form."""
    if not isinstance(weight, np.ndarray):
        if hasattr(weight, "__array_namespace__") or hasattr(weight, "__cuda_array_interface__"):
            raise TypeError(
                f"weight must be a NumPy array (the operator view runs on the CPU), "
                f"got {type(weight).__module__}.{type(weight).__name__}")
        try:
            weight = np.asarray(weight)
        except Exception as exc:  # e.g. ragged nested lists
            raise TypeError(f"weight must be an array, got {type(weight).__name__}: {exc}") from None
    check_float_dtype(weight, "weight")
    if weight.ndim in (1, 2):
        return weight, weight.ndim, True
    if weight.ndim in (3, 4, 5):
        return weight, weight.ndim - 2, False
    raise ValueError(
        f"weight must be a 1-D or 2-D kernel (one-channel form) or a 3-, 4- or 5-D "
        f"(C_out, C_in/groups, *kernel) array, got shape {weight.shape}")


def _as_input_shape(input_shape, nd, plain) -> tuple:
    shape = check_shape(input_shape, "input_shape")
    wanted = (nd,) if plain else (nd + 1, nd + 2)
    if len(shape) not in wanted:
        if plain:
            raise ValueError(
                f"input_shape must have {nd} entries for the {nd}-D kernel (the one-channel "
                f"form of conv{nd}d), got {shape}; give the weight as "
                f"(C_out, C_in/groups, *kernel) for channels")
        raise ValueError(
            f"input_shape must be (C_in, *spatial) or (N, C_in, *spatial) with {nd} spatial "
            f"dimension(s) for a {nd + 2}-D weight, got {shape}")
    return shape


def _validate(weight, input_shape, stride, padding, dilation, groups, padding_mode,
              dtype=None):
    """(weight array, nd, input shape, ConvProblem) or TypeError / ValueError."""
    weight, nd, plain = _as_weight(weight)
    shape = _as_input_shape(input_shape, nd, plain)
    if dtype is None:
        dt = check_float_dtype(weight, "weight")
    else:
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
        dt = check_float_dtype(dt, "dtype")
    x = np.broadcast_to(np.zeros((), dt), shape)  # shape and dtype only, no memory
    try:
        problem = plan_conv(nd, x, weight.astype(dt, copy=False) if dtype is not None else weight,
                            None, stride, padding, dilation, groups, padding_mode)
    except (TypeError, ValueError) as exc:
        if re.search(r"\bx\b", str(exc)):  # conv2d's messages call the input x
            raise type(exc)(f"{exc} (x: an input of shape input_shape={shape})") from None
        raise
    return weight, nd, shape, problem


def _nn_weight(weight, problem):
    """The weight as (C_out, C_in/groups, *kernel) (a view)."""
    return weight.reshape((problem.out_channels, problem.in_channels_per_group)
                          + problem.kernel_size)


# --------------------------------------------------------------------------
# conv_matrix
# --------------------------------------------------------------------------
def _tap_map(n, k, s, d, pb, out, mode):
    """Per spatial dimension: the (output, tap, input index) triples.

    Output position ``o`` and tap ``t`` read padded position ``o*s + t*d``,
    which is input index ``u = o*s + t*d - pb`` when it falls inside; in the
    padding, "zeros" drops the tap and the other modes name the input index
    the padding copies there (as ``np.pad``'s "wrap", "edge" and "reflect").
    """
    u = np.arange(out)[:, None] * s + np.arange(k)[None, :] * d - pb  # (out, k)
    if mode == "zeros":
        o, t = np.nonzero((u >= 0) & (u < n))
        return o, t, u[o, t]
    if mode == "circular":
        u = u % n
    elif mode == "replicate":
        u = np.clip(u, 0, n - 1)
    else:  # reflect (padding < n, so one reflection suffices)
        u = np.abs(u)
        u = np.where(u > n - 1, 2 * (n - 1) - u, u)
    o, t = np.indices(u.shape)
    return o.ravel(), t.ravel(), u.ravel()


def _combine(maps, sizes, idx):
    """C-order flat indices of the Cartesian product of per-dimension maps."""
    flat = [np.zeros(1, idx) for _ in range(3)]
    for triple, dims in zip(maps, sizes):
        for j in range(3):
            flat[j] = (flat[j][:, None] * dims[j] + triple[j].astype(idx)[None, :]).ravel()
    return flat


def conv_matrix(weight, input_shape, stride=1, padding=0, dilation=1, groups=1,
                padding_mode="zeros", format="csr", dtype=None):
    r"""The sparse matrix of a convolution: ``A @ x.ravel() == conv(x).ravel()``.

    ``A`` is the matrix of ``fastconv.conv{1,2,3}d(x, weight, stride=stride,
    padding=padding, dilation=dilation, groups=groups,
    padding_mode=padding_mode)`` acting on inputs ``x`` of shape
    `input_shape`, flattened in C order (the result is flattened in C order
    too).  The spatial rank comes from `weight`: a 1-D or 2-D kernel is the
    one-channel form (``input_shape`` is then the signal's or image's
    shape, as ``conv1d(x (L,), k (kL,))`` and ``conv2d(img (H, W), k (kH,
    kW))`` accept); a 3-, 4- or 5-D weight is ``(C_out, C_in/groups,
    *kernel)`` of conv1d, conv2d or conv3d.

    Parameters
    ----------
    weight : (C_out, C_in/groups, *kernel) or (kL,) or (kH, kW) array of float32 or float64
        Filters, as for the convolution.  (A plain 3-D volume kernel is given
        as ``weight[None, None]`` with ``input_shape`` ``(1, D, H, W)``.)
    input_shape : tuple of ints
        Shape of the input `x`: ``(C_in, *spatial)`` (unbatched) or ``(N,
        C_in, *spatial)`` (batched: ``A`` is then block diagonal, one block
        per sample); for a 1-D / 2-D kernel, the plain ``(L,)`` / ``(H, W)``.
    stride, padding, dilation, groups, padding_mode
        As for :func:`fastconv.conv2d` (``padding`` may be ints, per-side
        pairs, "valid" or "same").
    format : str, default "csr"
        scipy.sparse format of the result: one of ``SPARSE_FORMATS``
        ("csr", "csc", "coo", "bsr", "lil", "dok", "dia").
    dtype : {None, float32, float64}, optional
        dtype of the matrix; default the weight's.

    Returns
    -------
    A : scipy.sparse array of shape ``(out.size, prod(input_shape))``
        ``out`` being the convolution's result for an input of
        `input_shape` (``csr_array`` by default).  Row ``i`` holds the taps
        of output element ``i``; entries of taps that read the same input
        element (reflect/replicate borders) are summed (also in ``coo``
        results); taps falling into zero padding, zero weights and sums
        that cancel are not stored.

    Raises
    ------
    TypeError
        If `weight` is not a float32/float64 array, `input_shape` is not a
        tuple of ints, a size argument is not an int or `dtype` is not
        float32/float64.
    ValueError
        For every argument conv2d refuses (channels, groups, kernel larger
        than the padded input, negative padding, unknown `padding_mode`),
        a wrong length of `input_shape`, an unknown `format`, or a matrix
        whose COO build would exceed ``MAX_COO_BYTES`` (2 GiB) or whose
        entry count overflows a 64-bit index.

    See Also
    --------
    ConvOperator : the same map without storing the matrix.

    Notes
    -----
    Built with index arithmetic: per spatial dimension, the (output, tap,
    input) index triples of the taps that land on the input; their
    Cartesian product over the dimensions and over (sample, output channel,
    input channel of its group) gives the rows (output index), columns
    (input index) and values (the weight of the tap) of one COO build.
    With zero padding ``A`` is Toeplitz in 1-D (constant diagonals) and
    block Toeplitz with Toeplitz blocks in 2-D and 3-D; with circular
    padding, stride 1 and as much padding as the kernel's extent minus one,
    it is (block) circulant with circulant blocks, diagonalised by the
    (multi-dimensional) DFT: R. M. Gray, "Toeplitz and Circulant Matrices:
    A Review", Foundations and Trends in Communications and Information
    Theory 2(3), 2006; P. C. Hansen, J. G. Nagy and D. P. O'Leary,
    "Deblurring Images: Matrices, Spectra, and Filtering", SIAM, 2006,
    ch. 4 (the matrices of zero, periodic and reflexive boundary
    conditions).  Each row stores at most one entry per tap:
    ``A.nnz <= A.shape[0] * C_in/groups * prod(kernel)``.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> A = fastconv.conv_matrix(np.array([1.0, 2.0, 3.0]), (5,))
    >>> A.toarray()
    array([[1., 2., 3., 0., 0.],
           [0., 1., 2., 3., 0.],
           [0., 0., 1., 2., 3.]])
    >>> fastconv.conv_matrix(np.array([1.0, 2.0, 3.0]), (4,), padding=1,
    ...                      padding_mode="circular").toarray()
    array([[2., 3., 0., 1.],
           [1., 2., 3., 0.],
           [0., 1., 2., 3.],
           [3., 0., 1., 2.]])
    >>> img = np.random.default_rng(0).standard_normal((6, 7))
    >>> k = np.ones((3, 3))
    >>> A = fastconv.conv_matrix(k, img.shape, padding="same", padding_mode="reflect")
    >>> bool(np.allclose(A @ img.ravel(),
    ...      fastconv.conv2d(img, k, padding="same", padding_mode="reflect").ravel()))
    True
    """
    if not isinstance(format, str) or format not in SPARSE_FORMATS:
        raise ValueError(f"format must be one of {SPARSE_FORMATS}, got {format!r}")
    weight, nd, shape, p = _validate(weight, input_shape, stride, padding, dilation, groups,
                                     padding_mode, dtype)
    dt = p.dtype
    nrows = math.prod(p.out_shape)
    ncols = math.prod(shape)
    maps = [_tap_map(n, k, s, d, pb, o, p.padding_mode) for n, k, s, d, (pb, _), o in
            zip(p.in_size, p.kernel_size, p.stride, p.dilation, p.padding, p.out_size)]
    per_pixel = math.prod(len(m[0]) for m in maps)
    nnz = p.batch * p.out_channels * p.in_channels_per_group * per_pixel
    idx = np.int32 if max(nrows, ncols, nnz) <= _INDEX_MAX32 else np.int64
    nbytes = nnz * (dt.itemsize + 2 * np.dtype(idx).itemsize)
    if nnz > _INDEX_MAX64:
        raise ValueError(f"conv_matrix would hold {nnz} entries, which overflows a 64-bit index")
    if nbytes > MAX_COO_BYTES:
        raise ValueError(
            f"conv_matrix would hold {nnz} entries ({nbytes / 2**30:.1f} GiB as COO triplets), "
            f"more than fastconv._operator.MAX_COO_BYTES = {MAX_COO_BYTES / 2**30:g} GiB; "
            f"use fastconv.ConvOperator, which applies the convolution without a matrix")

    out_pix, tap, in_pix = _combine(
        maps, [(o, k, n) for o, k, n in zip(p.out_size, p.kernel_size, p.in_size)], idx)
    P, Q = math.prod(p.out_size), math.prod(p.in_size)
    cout, cin, cin_g = p.out_channels, p.in_channels, p.in_channels_per_group
    co = np.arange(cout, dtype=idx)
    ci = np.arange(cin_g, dtype=idx)
    nb = np.arange(p.batch, dtype=idx)
    # rows: (n*C_out + co)*P + out_pix; cols: (n*C_in + g*cin_g + ci)*Q + in_pix,
    # g = co // (C_out/groups); broadcast over (n, co, ci, pixel-tap pair).
    row_base = (nb[:, None] * cout + co[None, :]) * P                       # (N, C_out)
    col_base = ((nb[:, None, None] * cin
                 + (co // p.out_channels_per_group * cin_g)[None, :, None]
                 + ci[None, None, :]) * Q)                                   # (N, C_out, cin_g)
    full = (p.batch, cout, cin_g, per_pixel)
    rows = np.empty(full, idx)
    cols = np.empty(full, idx)
    np.add(row_base[:, :, None, None], out_pix, out=rows)
    np.add(col_base[:, :, :, None], in_pix, out=cols)
    w3 = _nn_weight(weight, p).reshape(cout, cin_g, -1).astype(dt, copy=False)
    data = np.broadcast_to(w3[:, :, tap], full)
    a = sp.coo_array((data.ravel(), (rows.ravel(), cols.ravel())), shape=(nrows, ncols))
    if format == "coo":
        a.sum_duplicates()
    else:
        a = a.tocsr()  # sums the duplicates
    a.eliminate_zeros()  # zero weights, and border sums that cancel
    return a if format in ("coo", "csr") else a.asformat(format)


# --------------------------------------------------------------------------
# the adjoint of the padding modes
# --------------------------------------------------------------------------
def _axis_slice(ndim, axis, start, stop, step=None):
    sl = [slice(None)] * ndim
    sl[axis] = slice(start, stop, step)
    return tuple(sl)


def pad_adjoint(z, pads, mode):
    """Adjoint of padding the last ``len(pads)`` axes with `mode`.

    Padding is ``np.pad(x, pairs, mode=...)`` with "zeros" -> "constant",
    "reflect" -> "reflect", "replicate" -> "edge", "circular" -> "wrap"
    (``torch.nn.ConvNd``'s padding modes, padding at most the size, and
    less than it for "reflect").  Its adjoint folds each padded border back
    onto the input elements it copies, summing; zero padding's is a crop.

    Parameters
    ----------
    z : (..., n_1 + pb_1 + pa_1, ..., n_d + pb_d + pa_d) ndarray
        An array on the padded domain.  It is overwritten (the folds
        accumulate into its interior) and the result is a view of it.
    pads : sequence of d (before, after) pairs
        The padding of each of the last d axes.
    mode : {"zeros", "reflect", "replicate", "circular"}

    Returns
    -------
    x : (..., n_1, ..., n_d) ndarray
        ``P^T z`` for the padding operator ``P``: a view of `z`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv._operator import pad_adjoint
    >>> x = np.array([1.0, 2.0, 3.0, 4.0])
    >>> np.pad(x, (2, 1), mode="reflect")
    array([3., 2., 1., 2., 3., 4., 3.])
    >>> pad_adjoint(np.arange(7.0), [(2, 1)], "reflect")  # z[i] lands on x[0 1 2 3] as above
    array([ 2.,  4., 10.,  5.])
    """
    nd = len(pads)
    for i, (pb, pa) in enumerate(pads):
        axis = z.ndim - nd + i
        n = z.shape[axis] - pb - pa
        inner = z[_axis_slice(z.ndim, axis, pb, pb + n)]
        if mode != "zeros" and (pb or pa):
            before = z[_axis_slice(z.ndim, axis, 0, pb)]
            after = z[_axis_slice(z.ndim, axis, pb + n, pb + n + pa)]
            at = lambda a, b: _axis_slice(inner.ndim, axis, a, b)  # noqa: E731
            if mode == "circular":       # before <- x[n-pb:], after <- x[:pa]
                inner[at(n - pb, n)] += before
                inner[at(0, pa)] += after
            elif mode == "replicate":    # before <- x[0], after <- x[n-1]
                inner[at(0, 1)] += before.sum(axis=axis, keepdims=True)
                inner[at(n - 1, n)] += after.sum(axis=axis, keepdims=True)
            else:                        # reflect: before <- x[pb:0:-1], after <- x[n-2:n-2-pa:-1]
                inner[at(1, pb + 1)] += np.flip(before, axis)
                inner[at(n - 1 - pa, n - 1)] += np.flip(after, axis)
        z = inner
    return z


# --------------------------------------------------------------------------
# ConvOperator
# --------------------------------------------------------------------------
class ConvOperator(LinearOperator):
    r"""A convolution as a ``scipy.sparse.linalg.LinearOperator``, matrix-free.

    ``A @ x.ravel() == fastconv.conv{nd}d(x, weight, ...).ravel()`` for
    inputs `x` of shape `input_shape`: the same map as :func:`conv_matrix`,
    applied by the convolution kernels without storing any matrix, and
    ``A.T`` / ``A.H`` (``rmatvec``) its exact adjoint, so SciPy's iterative
    solvers (``lsqr``, ``lsmr``, ``cg`` on the normal equations, ``gmres``)
    can deconvolve.

    Parameters
    ----------
    weight : (C_out, C_in/groups, *kernel) or (kL,) or (kH, kW) array of float32 or float64
        Filters, as for :func:`conv_matrix` (the operator keeps a copy).
    input_shape : tuple of ints
        ``(C_in, *spatial)``, ``(N, C_in, *spatial)``, or for a 1-D / 2-D
        kernel the plain ``(L,)`` / ``(H, W)``.
    stride, padding, dilation, groups, padding_mode
        As for :func:`fastconv.conv2d`.
    workers : int, optional
        Threads of each product; default :func:`fastconv.get_num_threads`
        at call time.

    Attributes
    ----------
    shape : (int, int)
        ``(out.size, prod(input_shape))``.
    dtype : numpy.dtype
        The weight's dtype (float32 or float64).
    input_shape, output_shape : tuple
        Shapes of the unflattened input and output (output in the form the
        convolution returns for an input of `input_shape`).

    Raises
    ------
    TypeError, ValueError
        For invalid arguments, as :func:`conv_matrix` raises them.

    See Also
    --------
    conv_matrix, fastconv.conv2d, fastconv.conv_transpose2d,
    scipy.sparse.linalg.lsqr

    Notes
    -----
    ``matvec`` runs a :func:`fastconv.plan` of the convolution made on the
    first call (one per input dtype), so its cost is the convolution's.
    ``matmat`` convolves the columns as one batch.  The adjoint: with zero
    padding, ``A^T y`` is the transposed convolution
    ``conv_transpose{nd}d(y, weight, stride=stride, padding=padding,
    output_padding=op, groups=groups, dilation=dilation)`` with the same
    (per-side) padding and ``op = (size + pad_before + pad_after -
    dilation*(k-1) - 1) % stride``, the input rows the forward stride never
    reaches, so that the result has the input's size.  With "reflect",
    "replicate" or "circular" padding, ``A = C P`` with ``P`` the padding
    and ``C`` the unpadded convolution, so ``A^T = P^T C^T``: the
    transposed convolution on the padded domain, then the padded border
    folded back (summed) onto the pixels it was copied from
    (:func:`pad_adjoint`).  Hansen, Nagy and O'Leary, "Deblurring Images:
    Matrices, Spectra, and Filtering", SIAM 2006, treat deblurring with
    these operators and iterative methods (CGLS/LSQR).

    Complex vectors are applied to their real and imaginary parts.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> k = np.ones((3, 3)) / 9
    >>> A = fastconv.ConvOperator(k, (32, 32), padding="same", padding_mode="reflect")
    >>> A
    <1024x1024 ConvOperator with dtype=float64>
    >>> x = np.random.default_rng(0).standard_normal(1024)
    >>> bool(np.allclose(A @ x, fastconv.conv_matrix(k, (32, 32), padding="same",
    ...                                             padding_mode="reflect") @ x))
    True
    >>> y = np.random.default_rng(1).standard_normal(1024)
    >>> bool(np.isclose((A @ x) @ y, x @ (A.T @ y)))  # the adjoint
    True
    """

    def __init__(self, weight, input_shape, stride=1, padding=0, dilation=1, groups=1,
                 padding_mode="zeros", workers=None):
        weight, nd, shape, p = _validate(weight, input_shape, stride, padding, dilation,
                                         groups, padding_mode)
        if workers is not None:
            _threads.resolve_workers(workers)  # TypeError / ValueError now, not at first use
        self._nd = nd
        self._problem = p
        self._workers = workers
        self._weight = np.array(_nn_weight(weight, p), dtype=p.dtype, order="C", copy=True)
        self._x_shape = (p.batch, p.in_channels) + p.in_size
        self._y_shape = p.out_shape
        self._conv = (_api.conv1d, _api.conv2d, _api.conv3d)[nd - 1]
        self._plans = {}
        self.input_shape = shape
        self.output_shape = p.user_out_shape
        # The adjoint's transposed-convolution arguments: output_padding = the
        # rows/columns the forward stride skips at the end, so the result has
        # the (padded) input's size.
        rem = tuple((n + pb + pa - d * (k - 1) - 1) % s for n, (pb, pa), k, s, d in
                    zip(p.in_size, p.padding, p.kernel_size, p.stride, p.dilation))
        if p.padding_mode == "zeros":  # one transposed convolution, same padding
            self._adjoint_args = (p.padding, rem, None)
        else:  # transposed convolution on the padded domain, then P^T
            self._adjoint_args = ((0,) * nd, rem, p.padding)
        super().__init__(dtype=p.dtype, shape=(math.prod(p.out_shape), math.prod(shape)))

    # -- helpers ---------------------------------------------------------
    def _float(self, x):
        """`x` as an ndarray of a float dtype the kernels take (or complex)."""
        x = np.asarray(x)
        if (x.dtype.kind == "f" and x.dtype.itemsize in (4, 8)) or x.dtype.kind == "c":
            return x  # complex: the callers split real and imaginary parts
        if x.dtype.kind in "biuf":
            return x.astype(np.result_type(x.dtype, self.dtype))
        raise TypeError(f"ConvOperator applies to real or complex numeric vectors, "
                        f"got dtype {x.dtype}")

    def _planned(self, x5):
        plan = self._plans.get(x5.dtype)
        if plan is None:
            p = self._problem
            plan = _plan.plan(self._conv, x5, self._weight, None, p.stride, p.padding,
                              p.dilation, p.groups, padding_mode=p.padding_mode,
                              workers=self._workers)
            self._plans[x5.dtype] = plan
        return plan

    def _forward(self, xs, batch):
        """Convolve `batch` stacked inputs (flat in xs)."""
        p = self._problem
        x5 = xs.reshape((batch * p.batch,) + self._x_shape[1:])
        if batch == 1:
            return self._planned(x5)(x5)
        return self._conv(x5, self._weight, None, p.stride, p.padding, p.dilation, p.groups,
                          padding_mode=p.padding_mode, workers=self._workers)

    def _backward(self, ys, batch):
        """Apply the adjoint to `batch` stacked outputs (flat in ys)."""
        p = self._problem
        y5 = ys.reshape((batch * p.batch,) + self._y_shape[1:])
        transpose = (conv_transpose1d, conv_transpose2d, conv_transpose3d)[self._nd - 1]
        padding, output_padding, fold = self._adjoint_args
        z = transpose(y5, self._weight, None, p.stride, padding, output_padding, p.groups,
                      p.dilation, workers=self._workers)
        if fold is not None:
            z = pad_adjoint(z, fold, p.padding_mode)
        return z

    # -- LinearOperator protocol -------------------------------------------
    def _matvec(self, x):
        x = self._float(x)
        if x.dtype.kind == "c":
            return self._matvec(x.real) + 1j * self._matvec(x.imag)
        return self._forward(x, 1).reshape(-1)

    def _rmatvec(self, y):
        y = self._float(y)
        if y.dtype.kind == "c":
            return self._rmatvec(y.real) + 1j * self._rmatvec(y.imag)
        return self._backward(y, 1).reshape(-1)

    def _matmat(self, X):
        X = self._float(X)
        if X.dtype.kind == "c":
            return self._matmat(X.real) + 1j * self._matmat(X.imag)
        k = X.shape[1]
        return self._forward(np.ascontiguousarray(X.T), k).reshape(k, -1).T

    def _rmatmat(self, Y):
        Y = self._float(Y)
        if Y.dtype.kind == "c":
            return self._rmatmat(Y.real) + 1j * self._rmatmat(Y.imag)
        k = Y.shape[1]
        return self._backward(np.ascontiguousarray(Y.T), k).reshape(k, -1).T

    def tosparse(self, format="csr"):
        """This operator as a scipy.sparse array: :func:`conv_matrix` of its arguments.

        Parameters
        ----------
        format : str, default "csr"
            One of ``SPARSE_FORMATS``.

        Returns
        -------
        A : scipy.sparse array of shape ``self.shape``
        """
        p = self._problem
        return conv_matrix(self._weight, self._x_shape if p.form == "batched" else
                           self._x_shape[1:], p.stride, p.padding, p.dilation, p.groups,
                           p.padding_mode, format=format)


