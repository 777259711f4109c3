"""Argument validation and normalisation for the neural-network family.

Everything here runs before any kernel: it turns the user's arguments into
a :class:`ConvProblem` (canonical, batched, with per-side padding and the
output shape computed once) or raises TypeError / ValueError naming the
argument at fault.  Backends receive only problems that passed.
"""
from __future__ import annotations

import functools
import math
import operator
import sys
from dataclasses import dataclass

import numpy as np

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_DIM_NAMES = {1: "1d", 2: "2d", 3: "3d"}


@dataclass(frozen=True)
class ConvProblem:
    """A validated convolution, batched form: x (N, C_in, *in_size).

    ``padding`` holds (before, after) pairs per spatial dimension;
    ``form`` says how the user passed x ("batched", "unbatched", "plain") so
    the result can be given back in the same form (``user_out_shape``).
    """

    nd: int
    batch: int
    in_channels: int
    in_size: tuple
    out_channels: int
    kernel_size: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    padding_mode: str
    out_size: tuple
    dtype: np.dtype
    has_bias: bool
    form: str

    @property
    def out_shape(self) -> tuple:
        """Batched output shape (N, C_out, *out_size)."""
        return (self.batch, self.out_channels) + self.out_size

    @property
    def user_out_shape(self) -> tuple:
        """Output shape in the form the user passed x."""
        if self.form == "batched":
            return self.out_shape
        if self.form == "unbatched":
            return (self.out_channels,) + self.out_size
        return self.out_size

    @property
    def in_channels_per_group(self) -> int:
        return self.in_channels // self.groups

    @property
    def out_channels_per_group(self) -> int:
        return self.out_channels // self.groups

    @property
    def flops(self) -> int:
        """Multiply-adds counted as 2 flops, the usual CNN convention."""
        taps = math.prod(self.kernel_size) * self.in_channels_per_group
        return 2 * self.batch * self.out_channels * math.prod(self.out_size) * taps


def check_float_dtype(a, name: str, half: bool = False) -> np.dtype:  # a: array or dtype
    """The native-order float dtype of `a`, or TypeError naming `name`.

    Parameters
    ----------
    a : array or dtype
        An array (its ``dtype`` is used) or a dtype.
    name : str
        Argument name for the error message.
    half : bool, optional
        Whether float16 is accepted too (the CuPy backend's convolutions,
        which accumulate it in float32).

    Returns
    -------
    dtype : numpy.dtype
        float32 or float64 (or float16 with `half`) in native byte order.

    Raises
    ------
    TypeError
        For any other dtype (integer, bool, complex, float16 without
        `half`, object, ...).
    """
    dt = np.dtype(getattr(a, "dtype", a))
    if dt.kind == "f" and (dt.itemsize in (4, 8) or (half and dt.itemsize == 2)):
        return dt.newbyteorder("=")  # byte-swapped floats are converted, not refused
    if half:
        raise TypeError(
            f"{name} has dtype {dt}; fastconv's neural-network functions take "
            "float16 (GPU), float32 or float64 arrays (cast with .astype(cupy.float32))")
    raise TypeError(
        f"{name} has dtype {dt}; fastconv's neural-network functions take "
        "float32 or float64 arrays (cast with .astype(np.float32))"
    )


def _int_tuple(value, nd: int, name: str, minimum: int) -> tuple:
    """Normalise an int or a length-nd sequence of ints; check >= minimum."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or a tuple of {nd} ints, got {value!r}")
    try:
        items = (operator.index(value),) * nd
    except TypeError:
        if not isinstance(value, (tuple, list)):
            raise TypeError(
                f"{name} must be an int or a tuple of {nd} ints, got {type(value).__name__} {value!r}"
            ) from None
        if len(value) != nd:
            raise ValueError(f"{name} must have {nd} entries, got {len(value)}: {value!r}")
        try:
            if any(isinstance(v, (bool, np.bool_)) for v in value):
                raise TypeError
            items = tuple(operator.index(v) for v in value)
        except TypeError:
            raise TypeError(f"{name} must contain ints, got {value!r}") from None
    if any(v < minimum for v in items):
        word = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{name} must be {word}, got {value!r}")
    return items


def normalize_padding(padding, nd: int, kernel_size, dilation, stride) -> tuple:
    """Per-side padding pairs from an int, tuple, pairs, "valid" or "same".

    Parameters
    ----------
    padding : int, tuple of nd ints, tuple of nd (before, after) pairs, or str
        The user's ``padding`` argument.
    nd : int
        Number of spatial dimensions.
    kernel_size, dilation, stride : tuple of nd ints
        Used by "same" (stride must be 1; PyTorch puts the odd extra pixel
        after).

    Returns
    -------
    pairs : tuple of nd (before, after) tuples of ints

    Raises
    ------
    TypeError
        If entries are not ints.
    ValueError
        For negative values, a wrong length, an unknown string, or "same"
        with a stride other than 1.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(
                    f"padding='same' is not supported for strided convolutions (stride={stride})"
                )
            pairs = []
            for k, d in zip(kernel_size, dilation):
                total = d * (k - 1)
                pairs.append((total // 2, total - total // 2))
            return tuple(pairs)
        raise ValueError(f"padding must be 'valid', 'same', an int or a tuple, got {padding!r}")
    if isinstance(padding, (tuple, list)) and len(padding) == nd and all(
        isinstance(p, (tuple, list)) for p in padding
    ):
        pairs = []
        for p in padding:
            if len(p) != 2:
                raise ValueError(f"padding pairs must be (before, after), got {padding!r}")
            pairs.append(_int_tuple(tuple(p), 2, "padding", 0))
        return tuple(pairs)
    if isinstance(padding, (tuple, list)) and len(padding) == 2 * nd and nd > 1:
        raise ValueError(
            f"padding {padding!r} is ambiguous: give {nd} (before, after) pairs, "
            f"e.g. {tuple((p, p) for p in padding[:nd])}"
        )
    flat = _int_tuple(padding, nd, "padding", 0)
    return tuple((p, p) for p in flat)


def check_groups(groups) -> int:
    """`groups` as a positive int.

    Parameters
    ----------
    groups : int-like
        The ``groups`` argument (bool refused).

    Returns
    -------
    groups : int

    Raises
    ------
    TypeError
        If `groups` is not an int (bools included).
    ValueError
        If it is below 1.
    """
    if isinstance(groups, (bool, np.bool_)):
        raise TypeError(f"groups must be an int, got {groups!r}")
    try:
        groups = operator.index(groups)
    except TypeError:
        raise TypeError(f"groups must be an int, got {type(groups).__name__} {groups!r}") from None
    if groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups}")
    return groups


def parse_layout(nd, xs, xdt, ws, wdt, bias_info, groups, name, weight_layout, half=False):
    """The layout shared by conv and conv_transpose, checked.

    From the shapes and dtypes of x and weight (and bias: (shape, dtype) or
    None) returns ``(dtype, form, xs, ws, groups)``: the promoted dtype,
    the input form ("plain": N-D input and kernel; "unbatched"; "batched"),
    the shapes lifted to (N, C, *spatial) and (A, B, *kernel), and groups
    as a positive int.  `name` (e.g. "conv2d") and `weight_layout` (e.g.
    "(C_out, C_in/groups, *kernel)") go into the error messages.  `half`:
    whether float16 is accepted (see check_float_dtype).
    """
    x_shape, w_shape = xs, ws
    dt = np.result_type(check_float_dtype(xdt, "x", half), check_float_dtype(wdt, "weight", half))
    if bias_info is not None:
        dt = np.result_type(dt, check_float_dtype(bias_info[1], "bias", half))
    if len(xs) == nd and len(ws) == nd:
        form = "plain"
        xs, ws = (1, 1) + xs, (1, 1) + ws
    elif len(xs) in (nd + 1, nd + 2):
        if len(ws) != nd + 2:
            raise ValueError(f"weight must be {nd + 2}-D {weight_layout} for {name}, "
                             f"got shape {w_shape}")
        form = "batched" if len(xs) == nd + 2 else "unbatched"
        if form == "unbatched":
            xs = (1,) + xs
    else:
        raise ValueError(
            f"x must be {nd + 2}-D (N, C_in, *spatial), {nd + 1}-D (C_in, *spatial) "
            f"or {nd}-D with a {nd}-D weight for {name}, got shape {x_shape}")
    groups = check_groups(groups)
    if any(k < 1 for k in ws[2:]):
        raise ValueError(f"weight has an empty kernel dimension: shape {w_shape}")
    if form == "plain" and groups != 1:
        raise ValueError(f"groups must be 1 for a plain {nd}-D input and kernel, got {groups}")
    return dt, form, xs, ws, groups


def check_shape(value, name) -> tuple:
    """A shape argument (a sequence of non-negative ints) as a tuple, or
    TypeError/ValueError naming it."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a sequence of ints, got {type(value).__name__} "
                        f"{value!r}")
    try:
        items = tuple(value)
        if any(isinstance(v, (bool, np.bool_)) for v in items):
            raise TypeError
        items = tuple(operator.index(v) for v in items)
    except TypeError:
        raise TypeError(f"{name} must contain ints, got {value!r}") from None
    if any(v < 0 for v in items):
        raise ValueError(f"{name} must not hold negative sizes, got {value!r}")
    return items


def _as_shape(a) -> tuple:
    return tuple(int(s) for s in a.shape)


def _typed(value):
    """A cache key that tells 1 from True and 1.0 (they hash alike)."""
    if isinstance(value, (tuple, list)):
        return (type(value),) + tuple(_typed(v) for v in value)
    return (type(value), value)


def _untyped(key):
    """The argument a _typed key was made from (lists come back as lists)."""
    if key[0] in (tuple, list):
        return key[0](_untyped(k) for k in key[1:])
    return key[1]


def plan_conv(nd, x, weight, bias, stride, padding, dilation, groups, padding_mode,
              half=False) -> ConvProblem:
    """Validate the arguments of ``conv{nd}d`` and compute the output shape.

    `x`, `weight` and `bias` are arrays of a supported namespace (already
    converted from array-likes); nothing is copied or computed here.  Plans
    depend only on shapes, dtypes and the size arguments, so repeated calls
    with the same ones reuse a cached plan (invalid ones are never cached:
    they raise).  `half`: whether float16 arrays are accepted (the backend
    serving them says so: ``accepts_half``).

    Returns
    -------
    problem : ConvProblem

    Raises
    ------
    TypeError, ValueError
        For any invalid argument, naming it.
    """
    key = (nd, _as_shape(x), x.dtype, _as_shape(weight), weight.dtype,
           None if bias is None else (_as_shape(bias), bias.dtype),
           _typed(stride), _typed(padding), _typed(dilation), _typed(groups), padding_mode,
           bool(half))
    return _plan_memo(key)


def _plan(key) -> ConvProblem:
    (nd, xs, xdt, ws, wdt, bias_info, stride, padding, dilation, groups, padding_mode,
     half) = key
    stride, padding, dilation, groups = (_untyped(k) for k in (stride, padding, dilation, groups))
    x_shape = xs
    dt, form, xs, ws, groups = parse_layout(nd, xs, xdt, ws, wdt, bias_info, groups,
                                            f"conv{_DIM_NAMES[nd]}",
                                            "(C_out, C_in/groups, *kernel)", half)
    batch, cin = xs[0], xs[1]
    cout, cin_g = ws[0], ws[1]
    kernel = ws[2:]
    if cin % groups:
        raise ValueError(f"groups={groups} does not divide the {cin} input channels of x")
    if cout % groups:
        raise ValueError(f"groups={groups} does not divide the {cout} output channels of weight")
    if cin_g * groups != cin:
        raise ValueError(
            f"weight expects {cin_g * groups} input channels (weight.shape[1]={cin_g} "
            f"x groups={groups}) but x has {cin}"
        )
    if bias_info is not None:
        bshape = bias_info[0]
        if bshape != (cout,):
            raise ValueError(f"bias must have shape ({cout},) (C_out), got {bshape}")

    stride = _int_tuple(stride, nd, "stride", 1)
    dilation = _int_tuple(dilation, nd, "dilation", 1)
    pads = normalize_padding(padding, nd, kernel, dilation, stride)

    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")

    in_size = xs[2:]
    out_size = []
    for i, (n, k, s, d, (pb, pa)) in enumerate(zip(in_size, kernel, stride, dilation, pads)):
        if padding_mode == "reflect" and max(pb, pa) >= max(n, 1):
            raise ValueError(
                f"padding {pads[i]} must be smaller than the input size {n} of spatial "
                f"dimension {i} for padding_mode='reflect'"
            )
        if padding_mode == "circular" and max(pb, pa) > n:
            raise ValueError(
                f"padding {pads[i]} must not exceed the input size {n} of spatial "
                f"dimension {i} for padding_mode='circular'"
            )
        if padding_mode == "replicate" and n == 0 and (pb or pa):
            raise ValueError(f"padding_mode='replicate' cannot pad the empty spatial dimension {i}")
        extent = d * (k - 1) + 1
        padded = n + pb + pa
        if extent > padded:
            raise ValueError(
                f"kernel size {k} (dilated extent {extent}) is larger than the padded input "
                f"size {padded} in spatial dimension {i} (x shape {x_shape}, padding {pads[i]})"
            )
        out_size.append((padded - extent) // s + 1)
    out_size = tuple(out_size)

    total = batch * cout
    for o in out_size:
        total *= o
    padded_total = batch * cin
    for n, (pb, pa) in zip(in_size, pads):
        padded_total *= n + pb + pa
    if max(total, padded_total) * dt.itemsize > sys.maxsize:
        raise ValueError(
            f"output shape {(batch, cout) + out_size} (padding {pads}) is too large: "
            "its size in bytes overflows a 64-bit index"
        )

    return ConvProblem(
        nd=nd, batch=batch, in_channels=cin, in_size=in_size, out_channels=cout,
        kernel_size=kernel, stride=stride, padding=pads, dilation=dilation,
        groups=groups, padding_mode=padding_mode, out_size=out_size, dtype=dt,
        has_bias=bias_info is not None, form=form,
    )


def memoized_plan(planner, maxsize: int):
    """`planner(key)` behind an LRU cache of `maxsize` keys; a key holding
    an unhashable argument (which the planner then rejects or converts) is
    planned without the cache."""
    cached = functools.lru_cache(maxsize=maxsize)(planner)

    def plan(key):
        try:
            hash(key)
        except TypeError:
            return planner(key)
        return cached(key)

    return plan


_plan_memo = memoized_plan(_plan, 512)


def check_out(out, problem: ConvProblem, namespace_check) -> None:
    """Validate a user-supplied ``out=`` array against the planned result.

    Parameters
    ----------
    out : array
        The user's ``out`` argument.
    problem : ConvProblem
        The planned convolution.
    namespace_check : callable
        ``namespace_check(out) -> bool``: the backend accepts this array.

    Raises
    ------
    TypeError
        If `out` is of another namespace or has the wrong dtype.
    ValueError
        If `out` has the wrong shape or is read-only.
    """
    if not namespace_check(out):
        raise TypeError(f"out must be an array of the inputs' namespace, got {type(out).__name__}")
    flags = getattr(out, "flags", None)
    if flags is not None and not getattr(flags, "writeable", True):  # CuPy flags have none
        raise ValueError("out is read-only")
    shape = _as_shape(out)
    if shape != problem.user_out_shape:
        raise ValueError(f"out has shape {shape}, expected {problem.user_out_shape}")
    if np.dtype(out.dtype) != problem.dtype:
        raise TypeError(f"out has dtype {out.dtype}, expected {problem.dtype} (the result dtype)")


def all_finite(*arrays) -> bool:
    """Whether every given array (None skipped) holds only finite values.

    Native float32/float64 contiguous arrays take one compiled pass over
    their bits (fastconv._kernels._runtime.all_finite).  Others take one
    reduction: a finite sum proves every term finite (a NaN or Inf term
    makes the sum NaN or Inf), with no temporary the size of the array; a
    sum that overflows reports "not finite" for finite data, which only
    costs the transform methods' speed, never correctness.  Integer and
    bool arrays are always finite.
    """
    from ._kernels import _runtime

    for a in arrays:
        if a is None:
            continue
        a = np.asarray(a)
        if a.dtype in _SCANNED and a.dtype.isnative and a.flags.c_contiguous:
            if not _runtime.all_finite(a.reshape(-1)):
                return False
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            if not np.isfinite(np.add.reduce(a, axis=None)):
                return False
    return True


_SCANNED = (np.dtype(np.float32), np.dtype(np.float64))
