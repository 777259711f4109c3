"""Gradients of convolutions, like ``torch.nn.grad``.

``conv{1,2,3}d_input(input_size, weight, grad_output, ...)`` is the gradient
of ``fastconv.conv{1,2,3}d`` with respect to its input: the transposed
convolution of `grad_output` whose output has the input's size (the
``output_padding`` that recovers `input_size` is implied), run by
:func:`fastconv.conv_transpose2d`'s kernels.

``conv{1,2,3}d_weight(input, weight_size, grad_output, ...)`` is the
gradient with respect to the weight: per group,
``dW = sum_n grad_output_n @ im2col(input_n)^T``, computed as BLAS GEMMs
over cache-sized chunks of the im2col matrix (never the whole matrix),
each thread accumulating its own copy of dW, or for large dW the threads
sharing each chunk; 3x3 stride-1 2-D
kernels with at least 8 channels per group run by Winograd F(3x3, 2x2) or
F(3x3, 4x4) instead (Lavin & Gray, 2016).

Both follow from the matrix form of convolution, ``y = W X`` with
``X = im2col(x)``: ``dX = W^T dY`` (then col2im: a transposed
convolution) and ``dW = dY X^T`` (Dumoulin & Visin, 2016, "A guide to
convolution arithmetic for deep learning"; Chellapilla et al., 2006).

Arguments are those of ``torch.nn.grad`` (stride, padding, dilation,
groups), with fastconv's padding forms on top: (before, after) pairs and
the strings "valid" and "same".  Shapes may be batched (N, C, *spatial),
unbatched (C, *spatial), or plain spatial shapes with an N-D kernel, as for
:func:`fastconv.conv2d`.  float32 and float64; mixed dtypes promote.
NumPy arrays run on the CPU, CuPy arrays on the GPU (the result stays
there).
"""
from __future__ import annotations

from ._transpose import conv_input_grad as _input_grad
from ._transpose import conv_weight_grad as _weight_grad

__all__ = ["conv1d_input", "conv1d_weight", "conv2d_input", "conv2d_weight",
           "conv3d_input", "conv3d_weight"]

_INPUT_DOC = r"""Gradient of :func:`fastconv.conv{nd}d` with respect to its input.

    Like ``torch.nn.grad.conv{nd}d_input``.

    Parameters
    ----------
    input_size : sequence of ints
        Shape of the convolution's input (and of the result), e.g. {xshape}.
    weight : {wshape} array of float32 or float64
        The convolution's weights (C_out, C_in/groups, *kernel).
    grad_output : array of float32 or float64
        Gradient of the convolution's output, of the output's shape.
    stride, padding, dilation, groups
        The convolution's arguments, as for :func:`fastconv.conv{nd}d`
        (``padding_mode="zeros"``).

    Returns
    -------
    grad_input : array of shape `input_size`
        In the promoted dtype of `weight` and `grad_output`.

    Raises
    ------
    TypeError
        For non-float arrays or non-int size arguments.
    ValueError
        If `grad_output` does not have the shape the convolution of an
        input of `input_size` gives, or any argument is invalid for
        :func:`fastconv.conv{nd}d`.

    See Also
    --------
    conv{nd}d_weight, fastconv.conv_transpose{nd}d

    Notes
    -----
    The transposed convolution of `grad_output` with `weight` whose output
    size is `input_size` (input rows the convolution never reaches get
    zero), computed without zero insertion (polyphase, or GEMM + col2im for
    strided layers with many channels).

    CuPy arrays (`weight` and `grad_output` both on the GPU) are accepted:
    the result is a CuPy array computed on the GPU, on CuPy's current
    stream, by :func:`fastconv.conv_transpose{nd}d`'s CuPy paths.

    Examples
    --------
{example}
"""

_WEIGHT_DOC = r"""Gradient of :func:`fastconv.conv{nd}d` with respect to its weight.

    Like ``torch.nn.grad.conv{nd}d_weight``.

    Parameters
    ----------
    input : {xshape} array of float32 or float64
        The convolution's input.
    weight_size : sequence of ints
        Shape of the weight (and of the result), {wshape}.
    grad_output : array of float32 or float64
        Gradient of the convolution's output, of the output's shape.
    stride, padding, dilation, groups
        The convolution's arguments, as for :func:`fastconv.conv{nd}d`
        (``padding_mode="zeros"``).

    Returns
    -------
    grad_weight : array of shape `weight_size`
        In the promoted dtype of `input` and `grad_output`.

    Raises
    ------
    TypeError
        For non-float arrays or non-int size arguments.
    ValueError
        If `grad_output` does not have the shape of the convolution's
        output, or any argument is invalid for :func:`fastconv.conv{nd}d`.

    See Also
    --------
    conv{nd}d_input

    Notes
    -----
    Per group, ``sum_n grad_output_n @ im2col(input_n)^T``: the output
    pixels of all images are cut into chunks (at most 1 MiB of buffers
    each; a chunk may span images, so that small images still give the
    GEMMs a wide inner dimension), whose im2col columns are filled by the
    compiled im2col kernel and multiplied in by BLAS GEMMs with beta = 1.
    OpenMP threads run whole chunks, each accumulating its own copy of the
    gradient (summed at the end); when one copy would exceed 3 MiB (many
    channels), the threads share each chunk instead and own disjoint
    blocks of one gradient.

    2-D 3x3 kernels with stride 1 and dilation 1, and at least 8 input and
    8 output channels per group, use Winograd minimal filtering instead:
    F(3x3, 2x2) or, on outputs of 400 pixels or more, F(3x3, 4x4), the
    transposes of the forward pass's F(2x2, 3x3) and F(4x4, 3x3) (Lavin &
    Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016;
    Nervana neon's "update" kernels).  Each output tile contributes
    ``G^T [(A u A^T) * (B^T d B)] G`` for its output-gradient block u and
    input patch d, and the sum over tiles and images runs in the transform
    domain as BLAS GEMMs, so the multiplications drop 2.25x (4x for 4x4
    tiles).  Its normwise error (max error / max of a float64 reference)
    is held to the forward Winograd's bounds, 5e-5 in float32 and 1e-12
    in float64; measured on 64 channels at 56x56 (float32, N=8), 3.3e-6,
    against 3.2e-7 for the GEMM path and 4.1e-6 for PyTorch's
    ``torch.nn.grad.conv2d_weight``.

    CuPy arrays (`input` and `grad_output` both on the GPU) are accepted:
    the result is a CuPy array computed on the GPU, on CuPy's current
    stream, as ``sum_n grad_output_n @ im2col(input_n)^T`` per group (no
    Winograd there): a CUDA im2col kernel fills the columns of all images
    for tiles of output positions (at most 64 MiB of columns each), and one
    cuBLAS batched GEMM per tile (``cupy.matmul``) adds them in, tile after
    tile, so the result is deterministic.

    Examples
    --------
{example}
"""


def conv1d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    return _input_grad(1, input_size, weight, grad_output, stride, padding, dilation, groups)


def conv2d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    return _input_grad(2, input_size, weight, grad_output, stride, padding, dilation, groups)


def conv3d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    return _input_grad(3, input_size, weight, grad_output, stride, padding, dilation, groups)


def conv1d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1):
    return _weight_grad(1, input, weight_size, grad_output, stride, padding, dilation, groups)


def conv2d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1):
    return _weight_grad(2, input, weight_size, grad_output, stride, padding, dilation, groups)


def conv3d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1):
    return _weight_grad(3, input, weight_size, grad_output, stride, padding, dilation, groups)


_SHAPES = {
    1: ("(N, C_in, L)", "(C_out, C_in/groups, kL)"),
    2: ("(N, C_in, H, W)", "(C_out, C_in/groups, kH, kW)"),
    3: ("(N, C_in, D, H, W)", "(C_out, C_in/groups, kD, kH, kW)"),
}
_INPUT_EXAMPLES = {
    1: """    >>> import numpy as np, fastconv.grad
    >>> w = np.array([[[1.0, 2.0]]])
    >>> fastconv.grad.conv1d_input((1, 1, 4), w, np.ones((1, 1, 3)))
    array([[[1., 3., 3., 2.]]])""",
    2: """    >>> import numpy as np, fastconv
    >>> x = np.ones((2, 3, 8, 8), np.float32)
    >>> w = np.ones((4, 3, 3, 3), np.float32)
    >>> gy = np.ones((2, 4, 4, 4), np.float32)
    >>> fastconv.grad.conv2d_input(x.shape, w, gy, stride=2, padding=1).shape
    (2, 3, 8, 8)""",
    3: """    >>> import numpy as np, fastconv.grad
    >>> gy = np.ones((1, 1, 2, 2, 2))
    >>> float(fastconv.grad.conv3d_input((1, 1, 3, 3, 3), np.ones((1, 1, 2, 2, 2)), gy).sum())
    64.0""",
}
_WEIGHT_EXAMPLES = {
    1: """    >>> import numpy as np, fastconv.grad
    >>> x = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    >>> fastconv.grad.conv1d_weight(x, (1, 1, 2), np.ones((1, 1, 3)))
    array([[[6., 9.]]])""",
    2: """    >>> import numpy as np, fastconv
    >>> x = np.ones((2, 3, 8, 8), np.float32)
    >>> gy = np.ones((2, 4, 8, 8), np.float32)
    >>> fastconv.grad.conv2d_weight(x, (4, 3, 3, 3), gy, padding=1)[0, 0]
    array([[ 98., 112.,  98.],
           [112., 128., 112.],
           [ 98., 112.,  98.]], dtype=float32)""",
    3: """    >>> import numpy as np, fastconv.grad
    >>> x = np.ones((1, 1, 3, 3, 3))
    >>> fastconv.grad.conv3d_weight(x, (1, 1, 2, 2, 2), np.ones((1, 1, 2, 2, 2)))[0, 0, 0]
    array([[8., 8.],
           [8., 8.]])""",
}
for _nd in (1, 2, 3):
    _xs, _ws = _SHAPES[_nd]
    globals()[f"conv{_nd}d_input"].__doc__ = _INPUT_DOC.format(
        nd=_nd, xshape=_xs, wshape=_ws, example=_INPUT_EXAMPLES[_nd])
    globals()[f"conv{_nd}d_weight"].__doc__ = _WEIGHT_DOC.format(
        nd=_nd, xshape=_xs, wshape=_ws, example=_WEIGHT_EXAMPLES[_nd])
del _nd, _xs, _ws
