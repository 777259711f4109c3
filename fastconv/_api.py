"""Front end of the neural-network family: conv1d, conv2d, conv3d.

Each public function validates and plans (fastconv._validation), picks the
backend from the arrays' namespace (fastconv._backends) and hands it the
validated problem.  No kernel runs before every argument has been checked.
"""
from __future__ import annotations

from array_api_compat import is_array_api_obj

from . import _sparse, _threads, _tuning
from ._backends import as_arrays, backend_for
from ._validation import check_out, plan_conv

__all__ = ["conv1d", "conv2d", "conv3d", "ALGORITHMS"]

#: Algorithm names accepted by the ``algorithm=`` argument.
ALGORITHMS = ("auto", "direct", "im2col", "fft", "winograd", "separable", "sparse")


def _setup(nd, x, weight, bias, stride, padding, dilation, groups, padding_mode, algorithm,
           out, workers):
    """Validate everything and plan: (x, weight, bias, backend, problem, nthreads)."""
    for name, a in (("x", x), ("weight", weight), ("bias", bias), ("out", out)):
        if _sparse.is_sparse(a):
            raise TypeError(
                f"{name} is a scipy.sparse {type(a).__name__}: only conv2d takes sparse "
                "images (x, 2-D, with a 2-D weight), and plans take dense arrays")
    x, weight, bias = as_arrays(x, weight, bias)
    if out is not None and not is_array_api_obj(out):
        raise TypeError(f"out must be an array, got {type(out).__name__}")
    backend = backend_for(x, weight, bias, out)
    problem = plan_conv(nd, x, weight, bias, stride, padding, dilation, groups, padding_mode,
                        half=getattr(backend, "accepts_half", False))
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if algorithm != "auto":
        if algorithm not in backend.algorithms:
            raise ValueError(
                f"algorithm={algorithm!r} is not available for {backend.name} arrays "
                f"(available: {backend.algorithms})"
            )
        reason = backend.unsupported_reason(problem, algorithm)
        if reason is not None:
            raise ValueError(f"algorithm={algorithm!r} cannot serve these arguments: {reason}")
    if out is not None:
        check_out(out, problem, backend.is_array)
    nthreads = _threads.resolve_workers(workers)
    return x, weight, bias, backend, problem, nthreads


def _candidates(backend, problem):
    """Algorithms of `backend` that can serve `problem`, and why the others cannot."""
    ok, unavailable = [], {}
    for name in backend.algorithms:
        reason = backend.unsupported_reason(problem, name)
        if reason is None:
            ok.append(name)
        else:
            unavailable[name] = reason
    return ok, unavailable


def _tuned(backend, problem, x, weight, bias, nthreads):
    """The autotuning entry of `problem`: cached, or measured now."""
    tag = backend.tuning_tag(weight)
    entry = _tuning.lookup(problem, nthreads, tag)
    if entry is None:
        names, _ = _candidates(backend, problem)
        sync = getattr(backend, "synchronize", None)  # device backends: time the work
        runs = {}
        for name in names:
            prepared = backend.prepare(problem, name, weight, bias, nthreads)

            def run(prepared=prepared):
                backend.execute(prepared, x, None, nthreads)
                if sync is not None:
                    sync()

            runs[name] = run
        entry = _tuning.tune(problem, nthreads, runs, backend.estimate(problem, weight), tag)
    return entry


def _auto(backend, problem, x, weight, bias, nthreads) -> str:
    """The algorithm "auto" runs: the autotuned winner when autotuning is on
    (tuned on finite data only), else the backend's estimate; never a
    transform method on data holding NaN or Inf."""
    if _tuning.get_autotune() and backend.all_finite(x, weight):
        return _tuned(backend, problem, x, weight, bias, nthreads)["algorithm"]
    return backend.auto_algorithm(problem, x, weight)


def _convnd(nd, x, weight, bias, stride, padding, dilation, groups, padding_mode,
            algorithm, out, workers, sparse_output=False):
    if nd == 2 and (sparse_output is not False or _sparse.is_sparse(x)
                    or _sparse.is_sparse(weight)):
        return _sparse.conv2d_image(x, weight, bias, stride, padding, dilation, groups,
                                    padding_mode, algorithm, out, workers, sparse_output)
    x, weight, bias, backend, problem, nthreads = _setup(
        nd, x, weight, bias, stride, padding, dilation, groups, padding_mode, algorithm,
        out, workers)
    if algorithm == "auto" and _tuning.get_autotune() and backend.all_finite(x, weight):
        algorithm = _tuned(backend, problem, x, weight, bias, nthreads)["algorithm"]
    # otherwise the backend resolves "auto" itself (as _auto would, but it
    # may fold the finiteness checks into the work, see CPUBackend.conv)
    return backend.conv(x, weight, bias, problem, algorithm, out, nthreads)


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", algorithm="auto", out=None, workers=None):
    r"""1-D cross-correlation over a batch of signals, like ``torch.nn.functional.conv1d``.

    .. math::

        \mathrm{out}[n, c_o, l] = b[c_o] + \sum_{c_i} \sum_{k}
            w[c_o, c_i, k]\, x_p[n, g c_{ig} + c_i, l s + k d]

    where :math:`x_p` is `x` padded as `padding` and `padding_mode` say and
    the sum over :math:`c_i` runs over the input channels of the group of
    output channel :math:`c_o`.

    Parameters
    ----------
    x : (N, C_in, L) or (C_in, L) or (L,) array of float32 or float64
        Input signals (batched, unbatched, or one plain signal when `weight`
        is 1-D too).
    weight : (C_out, C_in/groups, kL) or (kL,) array of float32 or float64
        Filters, OIL layout.
    bias : (C_out,) array, optional
        Added to every output position of each output channel.
    stride : int or (int,), default 1
        Step between output samples, in input samples (>= 1).
    padding : int, (int,), ((int, int),), "valid" or "same", default 0
        Samples added before and after the signal. An int pads both sides
        alike; a pair gives (before, after). "same" (stride 1 only) pads so
        the output has length L, the extra sample going after, as in PyTorch.
    dilation : int or (int,), default 1
        Spacing between kernel taps, in input samples (>= 1).
    groups : int, default 1
        Channel groups; C_in and C_out must both be divisible by it.
        ``groups == C_in`` is a depthwise convolution.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, default "zeros"
        Values used for the padding, as in ``torch.nn.Conv1d``.
    algorithm : {"auto", "direct", "im2col", "fft", "winograd", "separable", "sparse"}, default "auto"
        Kernel to run.  "auto" runs the candidate the fitted cost model of
        ``fastconv._cost`` estimates fastest (or, with autotuning on, the
        measured fastest), never a transform method (FFT, Winograd) or
        "sparse" on inputs holding NaN or Inf;
        :func:`fastconv.choose_algorithm` shows the choice.  "winograd"
        serves 3x3, 5x5 and 2x2 kernels with stride 1 and dilation 1 (conv2d);
        "separable" serves low-rank 2-D kernels of one-channel and
        depthwise convolutions; "sparse" (any arguments) packs the nonzero
        weights to CSR and convolves by them only (pruned weights: "auto"
        counts the nonzeros on every call and weighs it).
    out : array, optional
        Array of the result's shape and dtype to write into.
    workers : int, optional
        Threads for this call (negative counts back from the CPU count);
        default :func:`fastconv.get_num_threads`.

    Returns
    -------
    y : (N, C_out, L_out) or (C_out, L_out) or (L_out,) array
        Same dtype as the promoted inputs, with
        ``L_out = (L + pad_before + pad_after - dilation*(kL-1) - 1) // stride + 1``.

    Raises
    ------
    TypeError
        If an array is not float32/float64 (or is scipy.sparse: only conv2d
        takes sparse images), a size argument is not an int, `out` has the
        wrong dtype, or arrays of two namespaces are mixed.
    ValueError
        If shapes disagree (channels, groups, bias, kernel larger than the
        padded input), a size argument is out of range, `padding`,
        `padding_mode` or `algorithm` is unknown, `out` has the wrong shape,
        or the output size would overflow.

    See Also
    --------
    conv2d, conv3d, fastconv.get_num_threads

    Notes
    -----
    Algorithms: "direct" streams each output row through a SIMD row kernel
    (AVX-512/AVX2 by function multiversioning); "im2col" multiplies the
    weights by tiles of the im2col matrix with BLAS GEMM (Chellapilla et
    al., 2006, "High Performance Convolutional Neural Networks for Document
    Processing"), never materialising the whole matrix.  Both accumulate in
    the input dtype ("winograd" and "separable" serve 2-D kernels only:
    see :func:`conv2d`).  "fft"
    transforms the padded input and the dilated, flipped filters with
    pocketfft (``scipy.fft`` real transforms, lengths
    from ``next_fast_len``), sums the channels of each group in the
    frequency domain (one small matrix product per frequency) and samples
    the stride-1 result at the stride; its error is normwise, measured
    below ``fastconv.signal.FFT_NORMWISE_BOUND`` times ``max|result|``.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(6, dtype=np.float64)
    >>> fastconv.conv1d(x, np.array([1.0, -1.0]))
    array([-1., -1., -1., -1., -1.])
    """
    return _convnd(1, x, weight, bias, stride, padding, dilation, groups, padding_mode,
                   algorithm, out, workers)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", algorithm="auto", out=None, workers=None,
           sparse_output=False):
    r"""2-D cross-correlation over a batch of images, like ``torch.nn.functional.conv2d``.

    .. math::

        \mathrm{out}[n, c_o, i, j] = b[c_o] + \sum_{c_i} \sum_{u, v}
            w[c_o, c_i, u, v]\, x_p[n, g c_{ig} + c_i, i s_h + u d_h, j s_w + v d_w]

    where :math:`x_p` is `x` padded as `padding` and `padding_mode` say.

    Parameters
    ----------
    x : (N, C_in, H, W) or (C_in, H, W) or (H, W) array of float32 or float64
        Input images, NCHW (batched, unbatched, or one plain image when
        `weight` is 2-D too).  A plain image may be a SciPy sparse array or
        matrix (CSR, CSC or COO): it is convolved by its nonzeros (each
        scattered through the kernel, any stride, padding, padding mode and
        dilation), with algorithm "auto" or "sparse".
    weight : (C_out, C_in/groups, kH, kW) or (kH, kW) array of float32 or float64
        Filters, OIHW layout.  The (kH, kW) kernel of a plain 2-D image may
        be a SciPy sparse array (it is densified: it is small); pruned
        weights stay dense arrays and run by ``algorithm="sparse"``.
    bias : (C_out,) array, optional
        Added to every pixel of each output channel.
    stride : int or (int, int), default 1
        Step between output pixels, in input pixels (>= 1).
    padding : int, (int, int), ((int, int), (int, int)), "valid" or "same", default 0
        Pixels added around the image: an int for all sides, one int per
        dimension for both its sides, or (before, after) pairs per
        dimension.  "same" (stride 1 only) keeps the size H x W, extra
        pixels going after, as in PyTorch.
    dilation : int or (int, int), default 1
        Spacing between kernel taps, in input pixels (>= 1).
    groups : int, default 1
        Channel groups; C_in and C_out must both be divisible by it.
        ``groups == C_in`` is a depthwise convolution.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, default "zeros"
        Values used for the padding, as in ``torch.nn.Conv2d``.
    algorithm : {"auto", "direct", "im2col", "fft", "winograd", "separable", "sparse"}, default "auto"
        Kernel to run.  "auto" runs the candidate the fitted cost model of
        ``fastconv._cost`` estimates fastest (or, with autotuning on, the
        measured fastest), never a transform method (FFT, Winograd) or
        "sparse" on inputs holding NaN or Inf;
        :func:`fastconv.choose_algorithm` shows the choice.  "winograd"
        serves 3x3, 5x5 and 2x2 kernels with stride 1 and dilation 1 (conv2d);
        "separable" serves low-rank 2-D kernels of one-channel and
        depthwise convolutions; "sparse" (any arguments) packs the nonzero
        weights to CSR and convolves by them only (pruned weights: "auto"
        counts the nonzeros on every call and weighs it).
    out : array, optional
        Array of the result's shape and dtype to write into.
    workers : int, optional
        Threads for this call (negative counts back from the CPU count);
        default :func:`fastconv.get_num_threads`.
    sparse_output : bool, default False
        With a scipy.sparse `x`: return a ``scipy.sparse`` CSR array (a CSR
        matrix for a sparse matrix `x`) built from the dense result.  A
        scipy.sparse `x` is convolved by its nonzeros ("sparse"), or with
        "auto" densified when more than 8% of it is nonzero (measured
        crossover of the scatter against ``toarray()`` and the dense paths).

    Returns
    -------
    y : (N, C_out, H_out, W_out) or (C_out, H_out, W_out) or (H_out, W_out) array
        Same dtype as the promoted inputs, with, per dimension,
        ``H_out = (H + pad_before + pad_after - dilation*(kH-1) - 1) // stride + 1``.

    Raises
    ------
    TypeError
        If an array is not float32/float64, a size argument is not an int,
        `out` has the wrong dtype, arrays of two namespaces are mixed, a
        scipy.sparse `weight` is not the 2-D kernel of a plain 2-D image,
        or `sparse_output` is not a bool.
    ValueError
        If shapes disagree (channels, groups, bias, kernel larger than the
        padded input; a sparse `x` with a weight that is not 2-D), a size
        argument is out of range, `padding`, `padding_mode` or `algorithm`
        is unknown (or not "auto"/"sparse" for a sparse `x`), `out` has the
        wrong shape or is combined with ``sparse_output=True``,
        ``sparse_output=True`` is given with a dense `x`, or the output size
        would overflow.

    See Also
    --------
    conv1d, conv3d, scipy.ndimage.correlate, scipy.signal.correlate2d

    Notes
    -----
    This is cross-correlation, as in deep-learning frameworks; for true
    convolution flip the kernel (``weight[..., ::-1, ::-1]``).

    Array namespaces: NumPy arrays run on the CPU kernels, CuPy arrays on
    the GPU (:mod:`fastconv._cuda`); a Dask array (of NumPy or CuPy chunks)
    gives a lazy Dask array whose chunks are computed, when asked, by this
    function on each chunk and the halo of its neighbours that its windows
    reach (:mod:`fastconv._dask`; ``out=`` is refused, plans take
    in-memory arrays).
    ``conv2d(image, kernel, padding="same")`` equals
    ``scipy.ndimage.correlate(image, kernel, mode="constant")`` for odd
    kernel sizes.

    Algorithms: "direct" streams each output row through a SIMD row kernel
    (AVX-512/AVX2 by function multiversioning) and serves one-channel and
    depthwise convolutions; "im2col" multiplies the weights by
    cache-sized tiles of the im2col matrix with BLAS GEMM (Chellapilla et
    al., 2006, "High Performance Convolutional Neural Networks for Document
    Processing"), never materialising the whole matrix.  Both accumulate in
    the input dtype.  "winograd" computes 4x4 or 2x2 output tiles (the
    variant the cost model estimates faster; plans, which transform the
    filters once, leave that cost out) with Winograd's minimal filtering
    F(4x4,3x3) / F(2x2,3x3) (Lavin & Gray,
    2016, "Fast Algorithms for Convolutional Neural Networks"): 2.25 (or 4)
    multiplications per output instead of 9; for 5x5 kernels F(2x2,5x5), 9
    instead of 25; for 2x2 kernels F(3x3,2x2), 1.78 instead of 4; one BLAS
    GEMM per transform position; its error is normwise, within
    ``fastconv._winograd.ERROR_BOUND`` times ``max|result|``.  "separable"
    runs a kernel of low rank (SVD) as pairs of 1-D passes.  "sparse" is
    direct sparse convolution (Park et al., 2017, "Faster CNNs with Direct
    Sparse Convolutions and Guided Pruning"): the weights packed once to
    CSR rows per output channel (plans keep them), each nonzero an offset
    into a zero-padded polyphase copy of the input, vectorised over output
    pixels; zero taps are skipped, so where an Inf or NaN input meets only
    zero weights the result is finite (the dense sum gives NaN).  "fft"
    transforms the padded input and the dilated, flipped filters with
    pocketfft (``scipy.fft`` real transforms, lengths
    from ``next_fast_len``), sums the channels of each group in the
    frequency domain (one small matrix product per frequency) and samples
    the stride-1 result at the stride; its error is normwise, measured
    below ``fastconv.signal.FFT_NORMWISE_BOUND`` times ``max|result|``.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> image = np.arange(16, dtype=np.float32).reshape(4, 4)
    >>> fastconv.conv2d(image, np.ones((3, 3), np.float32))
    array([[45., 54.],
           [81., 90.]], dtype=float32)
    >>> x = np.ones((8, 3, 32, 32), np.float32)
    >>> w = np.ones((16, 3, 3, 3), np.float32)
    >>> fastconv.conv2d(x, w, stride=2, padding=1).shape
    (8, 16, 16, 16)
    """
    return _convnd(2, x, weight, bias, stride, padding, dilation, groups, padding_mode,
                   algorithm, out, workers, sparse_output)


def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", algorithm="auto", out=None, workers=None):
    r"""3-D cross-correlation over a batch of volumes, like ``torch.nn.functional.conv3d``.

    .. math::

        \mathrm{out}[n, c_o, t, i, j] = b[c_o] + \sum_{c_i} \sum_{q, u, v}
            w[c_o, c_i, q, u, v]\,
            x_p[n, g c_{ig} + c_i, t s_d + q d_d, i s_h + u d_h, j s_w + v d_w]

    Parameters
    ----------
    x : (N, C_in, D, H, W) or (C_in, D, H, W) or (D, H, W) array of float32 or float64
        Input volumes, NCDHW (batched, unbatched, or one plain volume when
        `weight` is 3-D too).
    weight : (C_out, C_in/groups, kD, kH, kW) or (kD, kH, kW) array of float32 or float64
        Filters, OIDHW layout.
    bias : (C_out,) array, optional
        Added to every voxel of each output channel.
    stride : int or (int, int, int), default 1
        Step between output voxels, in input voxels (>= 1).
    padding : int, 3 ints, 3 (before, after) pairs, "valid" or "same", default 0
        Voxels added around the volume, as for :func:`conv2d`.
    dilation : int or (int, int, int), default 1
        Spacing between kernel taps, in input voxels (>= 1).
    groups : int, default 1
        Channel groups; C_in and C_out must both be divisible by it.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, default "zeros"
        Values used for the padding, as in ``torch.nn.Conv3d``.
    algorithm : {"auto", "direct", "im2col", "fft", "winograd", "separable", "sparse"}, default "auto"
        Kernel to run.  "auto" runs the candidate the fitted cost model of
        ``fastconv._cost`` estimates fastest (or, with autotuning on, the
        measured fastest), never a transform method (FFT, Winograd) or
        "sparse" on inputs holding NaN or Inf;
        :func:`fastconv.choose_algorithm` shows the choice.  "winograd"
        serves 3x3, 5x5 and 2x2 kernels with stride 1 and dilation 1 (conv2d);
        "separable" serves low-rank 2-D kernels of one-channel and
        depthwise convolutions; "sparse" (any arguments) packs the nonzero
        weights to CSR and convolves by them only (pruned weights: "auto"
        counts the nonzeros on every call and weighs it).
    out : array, optional
        Array of the result's shape and dtype to write into.
    workers : int, optional
        Threads for this call (negative counts back from the CPU count);
        default :func:`fastconv.get_num_threads`.

    Returns
    -------
    y : (N, C_out, D_out, H_out, W_out) or (C_out, D_out, H_out, W_out) or (D_out, H_out, W_out) array
        Same dtype as the promoted inputs; each output size is
        ``(size + pad_before + pad_after - dilation*(k-1) - 1) // stride + 1``.

    Raises
    ------
    TypeError
        If an array is not float32/float64 (or is scipy.sparse: only conv2d
        takes sparse images), a size argument is not an int, `out` has the
        wrong dtype, or arrays of two namespaces are mixed.
    ValueError
        If shapes disagree (channels, groups, bias, kernel larger than the
        padded input), a size argument is out of range, `padding`,
        `padding_mode` or `algorithm` is unknown, `out` has the wrong shape,
        or the output size would overflow.

    See Also
    --------
    conv1d, conv2d, scipy.ndimage.correlate

    Notes
    -----
    Same algorithms as :func:`conv2d`: the direct kernel walks output rows
    over (channel, depth, row) triples; im2col tiles span the flattened
    output volume; "fft" transforms over the three spatial axes.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> vol = np.ones((4, 4, 4))
    >>> float(fastconv.conv3d(vol, np.ones((3, 3, 3)))[0, 0, 0])
    27.0
    """
    return _convnd(3, x, weight, bias, stride, padding, dilation, groups, padding_mode,
                   algorithm, out, workers)
