"""Plans and introspection for conv1d / conv2d / conv3d.

:func:`plan` prepares one convolution for fixed shapes: the arguments are
validated, the algorithm chosen and the weights laid out and transformed
(Winograd-domain filters, filter spectra) once; calling the plan then runs
only the kernels.  :func:`choose_algorithm` tells which algorithm ``"auto"``
would run for given arguments and why.
"""
from __future__ import annotations

from typing import NamedTuple

from . import _api, _threads, _tuning
from ._validation import check_out

__all__ = ["plan", "Plan", "choose_algorithm", "AlgorithmChoice"]

_FUNCS = {}


def _nd_of(conv) -> int:
    if not _FUNCS:
        _FUNCS.update({_api.conv1d: 1, _api.conv2d: 2, _api.conv3d: 3})
    try:
        return _FUNCS[conv]
    except (KeyError, TypeError):
        raise TypeError(
            f"conv must be fastconv.conv1d, conv2d or conv3d, got {conv!r}") from None


class AlgorithmChoice(NamedTuple):
    """What ``algorithm="auto"`` runs for some arguments, and why.

    Attributes
    ----------
    algorithm : str
        The algorithm ``"auto"`` runs for these arrays.
    seconds : dict
        Candidate algorithm -> estimated (cost model) or measured seconds.
    measured : bool
        Whether `seconds` are timings (autotuning or ``measure=True``; never
        for inputs holding NaN or Inf).
    unavailable : dict
        Algorithm -> the reason it cannot serve these arguments.
    note : str
        Why `algorithm` is not the fastest of `seconds`, or why nothing was
        timed, when the inputs hold NaN or Inf (they rule out the transform
        methods, and autotuning never times on them).
    """

    algorithm: str
    seconds: dict
    measured: bool
    unavailable: dict
    note: str = ""


def choose_algorithm(conv, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                     *, padding_mode="zeros", measure=False, workers=None) -> AlgorithmChoice:
    """Which algorithm ``algorithm="auto"`` runs for these arguments, and why.

    Like :func:`scipy.signal.choose_conv_method`: by default the candidates'
    times are the cost model's estimates (``fastconv._cost``, fitted to
    this package's kernels); with ``measure=True``, or when autotuning is
    on, they are timings (those of the autotuning cache when it has the
    problem, else measured now and cached).

    Parameters
    ----------
    conv : {fastconv.conv1d, fastconv.conv2d, fastconv.conv3d}
        The function the arguments are for.
    x, weight, bias, stride, padding, dilation, groups, padding_mode
        As for `conv`.
    measure : bool, default False
        Time the candidates instead of estimating.
    workers : int, optional
        Threads the convolution would run with.

    Returns
    -------
    choice : AlgorithmChoice
        ``(algorithm, seconds, measured, unavailable, note)``.

    Raises
    ------
    TypeError, ValueError
        For invalid arguments, exactly as `conv` raises them.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.ones((1, 16, 32, 32), np.float32)
    >>> w = np.ones((16, 16, 3, 3), np.float32)
    >>> choice = fastconv.choose_algorithm(fastconv.conv2d, x, w, padding=1)
    >>> choice.algorithm in choice.seconds
    True
    >>> sorted(choice.unavailable)
    ['separable']
    """
    nd = _nd_of(conv)
    if not isinstance(measure, bool):
        raise TypeError(f"measure must be a bool, got {type(measure).__name__}")
    x, weight, bias, backend, problem, nthreads = _api._setup(
        nd, x, weight, bias, stride, padding, dilation, groups, padding_mode, "auto", None,
        workers)
    _, unavailable = _api._candidates(backend, problem)
    finite = backend.all_finite(x, weight)
    if (measure or _tuning.get_autotune()) and finite:
        # Timed (and cached) on finite data only, as conv2d's autotuning is.
        entry = _api._tuned(backend, problem, x, weight, bias, nthreads)
        seconds, measured, best = dict(entry["seconds"]), True, entry["algorithm"]
    else:
        seconds, measured = backend.estimate(problem, weight), False
        best = min(seconds, key=seconds.get)
    algorithm, note = best, ""
    if not finite:
        if measure or _tuning.get_autotune():
            note = "an input holds NaN or Inf: estimates only, nothing timed"
        if best in backend.finite_only:
            algorithm = backend.auto_algorithm(problem, x, weight)
            why = ("skips zero weights, so 0 * Inf would give no NaN there"
                   if best == "sparse" else
                   "a transform method would spread beyond the windows that cover it")
            note = (f"{best!r} is estimated fastest, but an input holds NaN or Inf, which "
                    f"{why}")
    return AlgorithmChoice(algorithm, seconds, measured, unavailable, note)


class Plan:
    """A convolution prepared for fixed shapes (see :func:`plan`).

    Attributes
    ----------
    algorithm : str
        The algorithm the plan runs.
    choice : AlgorithmChoice or None
        How ``"auto"`` chose it (None when the algorithm was forced).
    input_shape : tuple
        The shape every input must have.
    dtype : numpy.dtype
        The input dtype every call must use.
    out_shape : tuple
        Shape of the result.
    """

    def __init__(self, nd, x, weight, bias, stride, padding, dilation, groups, padding_mode,
                 algorithm, workers):
        x, weight, bias, backend, problem, nthreads = _api._setup(
            nd, x, weight, bias, stride, padding, dilation, groups, padding_mode, algorithm,
            None, workers)
        self._backend, self._problem = backend, problem
        self._workers = workers
        self._auto = algorithm == "auto"
        self.choice = None
        if self._auto:
            self.choice = choose_algorithm(
                {1: _api.conv1d, 2: _api.conv2d, 3: _api.conv3d}[nd], x, weight, bias,
                stride, padding, dilation, groups, padding_mode=padding_mode, workers=workers)
            algorithm = self.choice.algorithm
            if not backend.all_finite(weight) and algorithm in backend.finite_only:
                algorithm = backend.fallback_algorithm(problem)
        self.algorithm = algorithm
        # The plan keeps its own copy of the weights: later changes to the
        # caller's array do not leak into some algorithms and not others.
        weight = weight.copy()
        bias = None if bias is None else bias.copy()
        self._weight, self._bias = weight, bias
        self._prepared = backend.prepare(problem, algorithm, weight, bias, nthreads)
        self._fallback = None
        self.input_shape = tuple(x.shape)
        self.dtype = x.dtype
        self.out_shape = tuple(problem.user_out_shape)

    def __repr__(self):
        return (f"<fastconv.Plan conv{self._problem.nd}d {self.input_shape} "
                f"{self.dtype} -> {self.out_shape}, algorithm={self.algorithm!r}>")

    def __call__(self, x, out=None, *, workers=None):
        """Run the planned convolution on `x`.

        Parameters
        ----------
        x : array of the plan's ``input_shape`` and ``dtype``
            Input, of the same array namespace the plan was made for.
        out : array, optional
            Array of ``out_shape`` and the result dtype to write into.
        workers : int, optional
            Threads for this call (default: the plan's `workers`).

        Returns
        -------
        y : array of shape ``out_shape``

        Raises
        ------
        TypeError
            If `x` or `out` is not an array of the plan's namespace, or has
            the wrong dtype.
        ValueError
            If `x` or `out` has the wrong shape, or `workers` is out of range.
        """
        backend = self._backend
        if not backend.is_array(x):
            raise TypeError(f"x must be an array of the plan's kind ({backend.name}), "
                            f"got {type(x).__name__}")
        if tuple(x.shape) != self.input_shape:
            raise ValueError(f"x must have the plan's input shape {self.input_shape}, "
                             f"got {tuple(x.shape)}")
        if x.dtype != self.dtype:
            raise TypeError(f"x must have the plan's dtype {self.dtype}, got {x.dtype}")
        if out is not None:
            if not backend.is_array(out):
                raise TypeError(f"out must be an array, got {type(out).__name__}")
            check_out(out, self._problem, backend.is_array)
        nthreads = _threads.resolve_workers(self._workers if workers is None else workers)
        prepared = self._prepared
        if self._auto and self.algorithm in backend.finite_only and not backend.all_finite(x):
            if self._fallback is None:
                self._fallback = backend.prepare(
                    self._problem, backend.fallback_algorithm(self._problem), self._weight,
                    self._bias, nthreads)
            prepared = self._fallback
        return backend.execute(prepared, x, out, nthreads)


def plan(conv, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
         padding_mode="zeros", algorithm="auto", workers=None) -> Plan:
    """Prepare a convolution for inputs shaped like `x`, to call many times.

    Validation, the algorithm choice (autotuning included, when on) and the
    weight preparation -- the Winograd filter transform, the filters' FFT,
    the banded im2col weights -- happen here once; each call of the plan
    then checks only the input's shape and dtype and runs the kernels.
    Since a plan's calls pay no filter transform, its Winograd variant is
    chosen by a cost model fitted on plan calls: F(4x4,3x3) on 512-channel
    7x7 layers at N=8, where a single call takes F(2x2,3x3).

    Parameters
    ----------
    conv : {fastconv.conv1d, fastconv.conv2d, fastconv.conv3d}
        The convolution to plan.
    x : array
        An example input: only its shape, dtype and array namespace are
        used (and its values when autotuning times the candidates).
    weight, bias, stride, padding, dilation, groups, padding_mode, algorithm
        As for `conv`.  The plan keeps a copy of `weight` and `bias`.
    workers : int, optional
        Default threads of the plan's calls.

    Returns
    -------
    plan : Plan
        Callable as ``plan(x, out=None, *, workers=None)``; ``plan.algorithm``
        is the algorithm it runs and ``plan.choice`` why.

    Raises
    ------
    TypeError, ValueError
        For invalid arguments, exactly as `conv` raises them.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.ones((2, 8, 16, 16), np.float32)
    >>> w = np.ones((8, 8, 3, 3), np.float32)
    >>> p = fastconv.plan(fastconv.conv2d, x, w, padding=1, algorithm="winograd")
    >>> p
    <fastconv.Plan conv2d (2, 8, 16, 16) float32 -> (2, 8, 16, 16), algorithm='winograd'>
    >>> float(p(x)[0, 0, 5, 5])
    72.0
    """
    return Plan(_nd_of(conv), x, weight, bias, stride, padding, dilation, groups,
                padding_mode, algorithm, workers)
