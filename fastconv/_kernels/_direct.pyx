"""Direct cross-correlation kernel (leaf code).

The output rows of each plane (n, c_out, od) are taken two at a time; a
run of such row pairs in one plane is one task of an OpenMP ``prange``
(runs are long enough to amortise the task's setup, and there are enough
of them to keep every thread busy).

For each row pair the task lists the input rows its windows touch,
skipping rows that fall into the vertical zero padding and marking for
each row the kernel row that feeds each of the two outputs, and hands the
list to the SIMD row kernel ``fc_conv_rows`` (fc_kernels.c).  That kernel
keeps a block of both output rows in vector registers while it streams over
the taps, so an input row shared by the two outputs is loaded once.

One-channel images and depthwise layers (one input channel per group, 2-D
kernels) take a dedicated fast path: their task hands a whole run of rows
to ``fc_conv_plane``, which walks the row pairs in C with no per-row list
building in Cython at all.

The caller (fastconv._cpu) has validated all sizes and passes C-contiguous
(N, C, D, H, W) arrays, so bounds checks are disabled.
"""
from cython.parallel cimport prange, parallel, threadid
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset

from ._fc cimport (real, fc_geometry, make_geometry, fc_conv_rows_f32, fc_conv_rows_f64,
                   fc_conv_plane_f32, fc_conv_plane_f64, FC_PLANE_MAX_KH, fc_conv_blocked_f32,
                   fc_conv_blocked_f64, fc_blocked_lanes, fc_blocked_pixels,
                   fc_conv_blocked_flat_f32, fc_conv_blocked_flat_f64,
                   fc_pack_lanes_f32, fc_pack_lanes_f64, fc_all_finite_f32, fc_all_finite_f64)


cdef inline void _rows(real *out0, real *out1, const real **rows, const real **w0,
                       const real **w1, Py_ssize_t nrows, const fc_geometry *g,
                       real init, Py_ssize_t ox0, Py_ssize_t width) noexcept nogil:
    # Output columns [ox0, ox0 + width): the same rows seen with their
    # leading padding reduced by ox0 * sw (negative inside the row).
    if out1 != NULL:
        out1 = out1 + ox0
    if real is float:
        fc_conv_rows_f32(out0 + ox0, out1, width, rows, w0, w1, nrows, g.KW, g.W,
                         g.pw - ox0 * g.sw, g.sw, g.dw, init)
    else:
        fc_conv_rows_f64(out0 + ox0, out1, width, rows, w0, w1, nrows, g.KW, g.W,
                         g.pw - ox0 * g.sw, g.sw, g.dw, init)


cdef inline void _plane(real *out, Py_ssize_t oy0, Py_ssize_t nout, const real *inp,
                        const real *w, const fc_geometry *g, real init, real *scratch,
                        Py_ssize_t scratch_len) noexcept nogil:
    if real is float:
        fc_conv_plane_f32(out, g.OW, oy0, nout, g.OW, inp, g.W, g.H, g.W, g.ph, g.pw,
                          w, g.KH, g.KW, g.sh, g.sw, g.dh, g.dw, init, scratch, scratch_len)
    else:
        fc_conv_plane_f64(out, g.OW, oy0, nout, g.OW, inp, g.W, g.H, g.W, g.ph, g.pw,
                          w, g.KH, g.KW, g.sh, g.sw, g.dh, g.dw, init, scratch, scratch_len)




def conv_direct(const real[:, :, :, :, ::1] x, const real[:, :, :, :, ::1] weight,
                const real[::1] bias, real[:, :, :, :, ::1] out,
                tuple stride, tuple pad, tuple dilation, Py_ssize_t groups,
                int nthreads, Py_ssize_t run, real[::1] workspace, Py_ssize_t colw):
    """out = correlate(x, weight) + bias, all arrays 5-D (N, C, D, H, W).

    ``bias`` has length C_out, or 0 for no bias.  ``pad`` holds the leading
    padding of each spatial dimension; trailing padding is implied by the
    output shape.  ``run`` is the number of row pairs per task (>= 1);
    ``colw`` the output columns per task (``OW`` for whole rows; narrower
    splits a few long rows, e.g. one long 1-D signal, across threads).
    ``workspace`` (reused between calls by the caller) holds each thread's
    scratch for the one-input-channel path: ``nthreads`` equal parts, or
    nothing.
    """
    cdef Py_ssize_t N = x.shape[0], Cout = out.shape[1]
    cdef Py_ssize_t cin_g = weight.shape[1], cout_g = Cout // groups
    cdef fc_geometry g = make_geometry(
        (cin_g, x.shape[2], x.shape[3], x.shape[4]),
        (weight.shape[2], weight.shape[3], weight.shape[4]),
        (out.shape[2], out.shape[3], out.shape[4]), stride, pad, dilation)
    # At most 2*KH input rows per (channel, kd) for a pair of output rows;
    # each thread's three tables start on their own cache lines.
    cdef Py_ssize_t table = (cin_g * g.KD * 2 * g.KH + 15) // 16 * 16
    cdef Py_ssize_t pairs = (g.OH + 1) // 2
    cdef Py_ssize_t runs = (pairs + run - 1) // run
    # Column chunks of width colw (== OW unless a few long rows are split
    # across threads; never on the plane path).
    cdef Py_ssize_t ncc = (g.OW + colw - 1) // colw if colw > 0 else 1
    cdef Py_ssize_t total = N * Cout * g.OD * runs * ncc
    cdef bint has_bias = bias.shape[0] > 0
    cdef bint plane_path = cin_g == 1 and g.KD == 1 and g.KH <= FC_PLANE_MAX_KH and ncc == 1
    cdef Py_ssize_t scratch_len = workspace.shape[0] // nthreads if plane_path and nthreads > 0 else 0
    cdef real *scratch_all = &workspace[0] if scratch_len > 0 else NULL
    cdef real *scratch
    cdef const real **tables
    cdef const real **rows
    cdef const real **w0
    cdef const real **w1
    cdef real *out0
    cdef real *out1
    cdef const real *rowp
    cdef Py_ssize_t t, r, n, co, od, oy, gi, ci, kd, ky, idd, iy, k, first, j
    cdef Py_ssize_t pr, pr_end, ox0, width
    cdef real init

    if total == 0:
        return
    if nthreads < 1:
        nthreads = 1
    tables = <const real **> malloc(3 * nthreads * table * sizeof(real *))
    if tables == NULL:
        raise MemoryError("fastconv: cannot allocate the direct kernel's row tables")
    try:
        with nogil, parallel(num_threads=nthreads):
            rows = tables + 3 * threadid() * table
            w0 = rows + table
            w1 = w0 + table
            scratch = (scratch_all + threadid() * scratch_len) if scratch_len > 0 else NULL
            for t in prange(total, schedule='guided'):
                ox0 = (t % ncc) * colw
                width = g.OW - ox0 if g.OW - ox0 < colw else colw
                r = t // ncc
                pr = (r % runs) * run
                pr_end = pr + run if pr + run < pairs else pairs
                r = r // runs
                od = r % g.OD
                r = r // g.OD
                co = r % Cout
                n = r // Cout
                gi = co // cout_g
                init = bias[co] if has_bias else 0
                if plane_path:
                    # One input channel, 2-D kernel: the whole run in C.
                    idd = od * g.sd - g.pd
                    out0 = &out[n, co, od, 0, 0]
                    if idd < 0 or idd >= g.D:
                        for j in range(2 * pr * g.OW, min(2 * pr_end, g.OH) * g.OW):
                            out0[j] = init
                    else:
                        _plane(out0, 2 * pr, min(2 * pr_end, g.OH) - 2 * pr,
                               &x[n, gi, idd, 0, 0], &weight[co, 0, 0, 0, 0], &g, init,
                               scratch, scratch_len)
                    continue
                while pr < pr_end:
                    oy = 2 * pr
                    pr = pr + 1
                    out0 = &out[n, co, od, oy, 0]
                    out1 = &out[n, co, od, oy + 1, 0] if oy + 1 < g.OH else NULL
                    k = 0
                    for ci in range(cin_g):
                        for kd in range(g.KD):
                            idd = od * g.sd - g.pd + kd * g.dd
                            if idd < 0 or idd >= g.D:
                                continue
                            first = k
                            for j in range(2):
                                if j == 1 and out1 == NULL:
                                    break
                                for ky in range(g.KH):
                                    iy = (oy + j) * g.sh - g.ph + ky * g.dh
                                    if iy < 0 or iy >= g.H:
                                        continue
                                    rowp = &x[n, gi * cin_g + ci, idd, iy, 0]
                                    if j == 0:
                                        rows[k] = rowp
                                        w0[k] = &weight[co, ci, kd, ky, 0]
                                        w1[k] = NULL
                                        k = k + 1
                                    else:
                                        # Share the row with out0 when it reads it too.
                                        r = first
                                        while r < k and rows[r] != rowp:
                                            r = r + 1
                                        if r == k:
                                            rows[k] = rowp
                                            w0[k] = NULL
                                            k = k + 1
                                        w1[r] = &weight[co, ci, kd, ky, 0]
                    _rows(out0, out1, rows, w0, w1, k, &g, init, ox0, width)
    finally:
        free(tables)


def blocked_lanes(Py_ssize_t itemsize):
    """Output channels per block of the channel-blocked kernel on this CPU."""
    return fc_blocked_lanes(<int> itemsize)


cdef inline void _blocked(real *out, Py_ssize_t ldo, Py_ssize_t nvalid, const real *x,
                          Py_ssize_t C, Py_ssize_t ldc, Py_ssize_t ldr, const real *wp,
                          Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sx, Py_ssize_t dy,
                          Py_ssize_t dx, Py_ssize_t OW, const real *bias) noexcept nogil:
    """fc_conv_blocked of the dtype: one output row, one block of channels."""
    if real is float:
        fc_conv_blocked_f32(out, ldo, nvalid, x, C, ldc, ldr, wp, KH, KW, sx, dy, dx, OW, bias)
    else:
        fc_conv_blocked_f64(out, ldo, nvalid, x, C, ldc, ldr, wp, KH, KW, sx, dy, dx, OW, bias)


cdef inline void _blocked_flat(real *out, Py_ssize_t ldo, Py_ssize_t nvalid, const real *x,
                               Py_ssize_t C, Py_ssize_t ldc, Py_ssize_t ldr, const real *wp,
                               Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sy, Py_ssize_t sx,
                               Py_ssize_t dy, Py_ssize_t dx, Py_ssize_t OW, Py_ssize_t q0,
                               Py_ssize_t nq, const real *bias) noexcept nogil:
    """fc_conv_blocked_flat of the dtype: pixels q0 .. q0+nq-1 of the
    flattened plane, one block of channels."""
    if real is float:
        fc_conv_blocked_flat_f32(out, ldo, nvalid, x, C, ldc, ldr, wp, KH, KW, sy, sx, dy, dx,
                                 OW, q0, nq, bias)
    else:
        fc_conv_blocked_flat_f64(out, ldo, nvalid, x, C, ldc, ldr, wp, KH, KW, sy, sx, dy, dx,
                                 OW, q0, nq, bias)


def conv_blocked(const real[:, :, ::1] x, real[:, ::1] xp, Py_ssize_t Hp, Py_ssize_t Wp,
                 Py_ssize_t top, Py_ssize_t left, const real[:, :, :, :, :, ::1] wp,
                 const real[:, :, ::1] bias, real[:, :, :, ::1] out, Py_ssize_t sy,
                 Py_ssize_t sx, Py_ssize_t dy, Py_ssize_t dx, Py_ssize_t groups,
                 int nthreads, bint by_image=False, const real[:, ::1] w=None):
    """out = correlate(x zero-padded, weights) + bias with the channel-blocked
    kernel.

    ``x`` is the input (N*C_in, H, W); ``xp`` (copies, length) buffers
    that each hold it zero-padded by ``top`` and ``left`` (or cropped) as
    (N, C_in, Hp, Wp), with slack after the last row (see fc_rows_impl.h,
    and zeroed by the caller); ``wp``
    the packed weights (groups, blocks, C_in/groups, KH, KW, lanes), output
    channel ``g*C_out/groups + b*lanes + l`` at [g, b, ..., l], zero past
    C_out/groups; ``bias`` (groups, blocks, lanes); ``out`` (N, C_out, OH,
    OW).  With one copy the threads pad its planes between them; with
    ``nthreads`` copies each thread pads the whole input into its own.

    Tasks are (channel block, output row), or, for rows shorter than half a
    pixel block, (channel block, block of the flattened plane), for each
    image and group, statically scheduled so that a thread reads little
    that another wrote in the call: ordered by image (``by_image``) each
    thread runs whole images, the planes it padded; otherwise by group and
    channel block, each thread runs the channel blocks pack_blocked's
    static schedule had it pack (with one input copy per thread, or one
    shared copy where the input is too large to copy per thread).  That
    matters where the threads' cores share no cache (see
    fastconv._winograd.schedule: a shared padded input and shared weights
    took 2.0 ms against 1.25 on a strided 128-channel layer).

    With ``w``, the unpacked weights (C_out, C_in/groups*KH*KW), the tasks
    pack them themselves (not with ``by_image``): ``wp`` is then the
    threads' packing buffers (nthreads, 1, C_in/groups, KH, KW, lanes), and
    a thread packs a block of output channels into its buffer when its
    tasks reach that block.  Each thread's tasks cover a contiguous run of
    blocks, so every block is packed about once, and its packed weights
    stay in the core's cache instead of going out to memory and back
    (512 channels at 7x7 pack 9.4 MB).
    """
    cdef Py_ssize_t copies = xp.shape[0]
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2]
    cdef bint fused = w is not None
    cdef Py_ssize_t cin_g = wp.shape[2]
    cdef Py_ssize_t N = out.shape[0], C = groups * cin_g, plane = Hp * Wp
    cdef Py_ssize_t rows = min(H, Hp - top), cols = max(0, min(W, Wp - left))
    cdef Py_ssize_t KH = wp.shape[3], KW = wp.shape[4], lanes = wp.shape[5]
    cdef Py_ssize_t Cout = out.shape[1], OH = out.shape[2], OW = out.shape[3]
    cdef Py_ssize_t cout_g = Cout // groups
    cdef Py_ssize_t nb = (cout_g + lanes - 1) // lanes if fused else wp.shape[1]
    cdef Py_ssize_t ur = fc_blocked_pixels()
    cdef bint flat = 2 * OW < ur
    cdef Py_ssize_t per = (OH * OW + ur - 1) // ur if flat else OH
    cdef Py_ssize_t total = N * groups * nb * per
    cdef Py_ssize_t t, r, j, b, gi, n, oc0, nvalid, q0, nq, q, qs, tid, th
    cdef const real *wb
    # the block each thread's buffer holds (fused packing), -1 for none
    cdef Py_ssize_t *packed = NULL
    if total == 0 or OW == 0:
        return
    if fused:
        if (by_image or wp.shape[0] < nthreads or w.shape[0] != Cout
                or w.shape[1] != cin_g * KH * KW):
            raise ValueError("conv_blocked: fused packing needs one buffer per thread, "
                             "tasks by channel block and (C_out, C_in/groups*KH*KW) weights")
        packed = <Py_ssize_t *> malloc(nthreads * sizeof(Py_ssize_t))
        if packed == NULL:
            raise MemoryError()
        for th in range(nthreads):
            packed[th] = -1
    with nogil, parallel(num_threads=nthreads):
        tid = threadid() if copies > 1 else 0
        if copies > 1:
            for q in range(N * C):
                _pad_plane(&x[q, 0, 0], W, &xp[tid, q * plane], Hp, Wp, top, left, rows,
                           cols)
        else:
            for qs in prange(N * C, schedule='static'):
                _pad_plane(&x[qs, 0, 0], W, &xp[0, qs * plane], Hp, Wp, top, left, rows,
                           cols)
        for t in prange(total, schedule='static'):
            j = t % per
            r = t // per
            if by_image:
                b = r % nb
                r = r // nb
                gi = r % groups
                n = r // groups
            else:
                n = r % N
                r = r // N
                b = r % nb
                gi = r // nb
            oc0 = gi * cout_g + b * lanes
            nvalid = cout_g - b * lanes if cout_g - b * lanes < lanes else lanes
            if fused:
                th = threadid()
                wb = &wp[th, 0, 0, 0, 0, 0]
                if packed[th] != gi * nb + b:
                    # the buffer is the caller's writable scratch (const only
                    # as the kernels' operand)
                    _pack_lanes(<real *> wb, lanes, &w[oc0, 0], w.shape[1], nvalid,
                                cin_g * KH * KW)
                    packed[th] = gi * nb + b
            else:
                wb = &wp[gi, b, 0, 0, 0, 0]
            if flat:
                q0 = j * ur
                nq = OH * OW - q0 if OH * OW - q0 < ur else ur
                _blocked_flat(&out[n, oc0, 0, 0], OH * OW, nvalid,
                              &xp[tid, (n * C + gi * cin_g) * plane], cin_g, plane, Wp,
                              wb, KH, KW, sy, sx, dy, dx, OW, q0, nq, &bias[gi, b, 0])
            else:
                _blocked(&out[n, oc0, j, 0], OH * OW, nvalid,
                         &xp[tid, (n * C + gi * cin_g) * plane + j * sy * Wp], cin_g, plane,
                         Wp, wb, KH, KW, sx, dy, dx, OW, &bias[gi, b, 0])
    free(packed)


cdef inline void _pack_lanes(real *dst, Py_ssize_t lanes, const real *src, Py_ssize_t lds,
                             Py_ssize_t nvalid, Py_ssize_t T) noexcept nogil:
    """fc_pack_lanes of the dtype: dst[t * lanes + l] = src[l * lds + t]
    for t < T, l < nvalid (zero for the other lanes)."""
    if real is float:
        fc_pack_lanes_f32(dst, lanes, src, lds, nvalid, T, lanes)
    else:
        fc_pack_lanes_f64(dst, lanes, src, lds, nvalid, T, lanes)


def pack_blocked(const real[:, ::1] w, real[:, :, :, ::1] out, Py_ssize_t cout_g,
                 int nthreads):
    """out[g, b, t, l] = w[g*cout_g + b*lanes + l, t] (0 past cout_g): the
    (C_out, C_in/groups*KH*KW) weights packed for the channel-blocked kernel
    as (groups, blocks, C_in/groups*KH*KW, lanes), each block transposed by
    ``fc_pack_lanes`` (in-register lanes x lanes transposes)."""
    cdef Py_ssize_t G = out.shape[0], nb = out.shape[1], T = out.shape[2], lanes = out.shape[3]
    cdef Py_ssize_t gb, g, b, nvalid
    if T == 0:
        return
    with nogil:
        for gb in prange(G * nb, schedule='static', num_threads=nthreads):
            g = gb // nb
            b = gb % nb
            nvalid = cout_g - b * lanes if cout_g - b * lanes < lanes else lanes
            _pack_lanes(&out[g, b, 0, 0], lanes, &w[g * cout_g + b * lanes, 0], w.shape[1],
                        nvalid, T)


cdef inline int _pad_plane(const real *x, Py_ssize_t ldx, real *o, Py_ssize_t Hp,
                           Py_ssize_t Wp, Py_ssize_t top, Py_ssize_t left, Py_ssize_t rows,
                           Py_ssize_t cols, bint check=False) noexcept nogil:
    """One (Hp, Wp) plane o = the (rows, cols) of plane x (rows ldx apart,
    or x NULL for a plane of zeros) placed at (top, left), zeros around.
    With `check`, returns 1 if a copied value is NaN or Inf (each row
    checked in the cache right after its copy), else 0."""
    cdef Py_ssize_t i, src
    cdef int bad = 0
    for i in range(Hp):
        src = i - top
        if x == NULL or src < 0 or src >= rows or cols <= 0:
            memset(o + i * Wp, 0, Wp * sizeof(real))
            continue
        memset(o + i * Wp, 0, left * sizeof(real))
        memcpy(o + i * Wp + left, x + src * ldx, cols * sizeof(real))
        memset(o + i * Wp + left + cols, 0, (Wp - left - cols) * sizeof(real))
        if not check:
            continue
        if real is float:
            bad |= not fc_all_finite_f32(o + i * Wp + left, cols)
        else:
            bad |= not fc_all_finite_f64(o + i * Wp + left, cols)
    return bad


def pad_volumes(const real[:, :, :, ::1] x, real[:, :, :, ::1] out, Py_ssize_t front,
                Py_ssize_t top, Py_ssize_t left, int nthreads):
    """out[p, k, i, j] = x[p, k - front, i - top, j - left] where that is
    inside x, else 0: every (D, H, W) volume of x zero-padded (or cropped)
    into out in one pass, the output planes (p, k) spread over OpenMP
    threads.  front, top and left are >= 0 (the caller's leading padding).
    Returns whether every value copied is finite (what "auto" needs to know
    before the sparse kernel, so it need not scan the input separately)."""
    cdef Py_ssize_t P = out.shape[0], Dp = out.shape[1], Hp = out.shape[2], Wp = out.shape[3]
    cdef Py_ssize_t D = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t deps = min(D, Dp - front), rows = min(H, Hp - top)
    cdef Py_ssize_t cols = max(0, min(W, Wp - left))
    cdef Py_ssize_t t, q, k
    cdef int bad = 0
    if P == 0 or Dp == 0 or Hp == 0 or Wp == 0:
        return True
    with nogil:
        for t in prange(P * Dp, schedule='static', num_threads=nthreads):
            q = t // Dp
            k = t - q * Dp - front          # the input plane of output plane t
            bad |= _pad_plane(&x[q, k, 0, 0] if 0 <= k < deps else NULL, W,
                              &out[q, t - q * Dp, 0, 0], Hp, Wp, top, left, rows, cols, True)
    return bad == 0


def conv_pointwise(const real[:, :, ::1] x, const real[:, :, :, :, :, ::1] wp,
                   const real[:, :, ::1] bias, real[:, :, ::1] out, Py_ssize_t groups,
                   Py_ssize_t chunk, int nthreads):
    """out = weights @ x + bias for a 1x1 kernel with unit stride and no
    padding, by the channel-blocked kernel read straight from the input.

    ``x`` is the input (N, C_in, P) with P = the pixels of a plane; ``wp``
    the packed weights (groups, blocks, C_in/groups, 1, 1, lanes) and
    ``bias`` (groups, blocks, lanes) as in conv_blocked; ``out`` (N, C_out,
    P).  No padded copy is made: with unit stride and no padding a plane is
    one flat row, and the flat kernel never reads past its last pixel.

    Tasks are (image, group, chunk of ``chunk`` pixels, part of the channel
    blocks), statically scheduled; a task runs its part of the channel
    blocks over its pixels, so its input chunk (C_in/groups x chunk values)
    is read from the cache by every block after the first.  Channel blocks
    are split into parts only when there are fewer pixel chunks than four
    per thread.
    """
    cdef Py_ssize_t N = out.shape[0], Cout = out.shape[1], P = out.shape[2]
    cdef Py_ssize_t nb = wp.shape[1], cin_g = wp.shape[2], lanes = wp.shape[5]
    cdef Py_ssize_t C = groups * cin_g, cout_g = Cout // groups
    cdef Py_ssize_t nchunk = (P + chunk - 1) // chunk
    cdef Py_ssize_t tasks = N * groups * nchunk
    cdef Py_ssize_t parts = min(nb, max(1, (4 * nthreads + tasks - 1) // tasks))
    cdef Py_ssize_t per = (nb + parts - 1) // parts
    cdef Py_ssize_t ur = fc_blocked_pixels()
    cdef Py_ssize_t t, r, n, gi, j, part, b, q0, nq, q, oc0, nvalid
    if tasks == 0 or nb == 0:
        return
    with nogil:
        for t in prange(tasks * parts, schedule='static', num_threads=nthreads):
            part = t % parts
            r = t // parts
            j = r % nchunk
            r = r // nchunk
            gi = r % groups
            n = r // groups
            q0 = j * chunk
            nq = P - q0 if P - q0 < chunk else chunk
            for b in range(part * per, min(nb, (part + 1) * per)):
                oc0 = gi * cout_g + b * lanes
                nvalid = cout_g - b * lanes if cout_g - b * lanes < lanes else lanes
                # whole blocks of `ur` pixels by the row kernel, the rest by the
                # flat one (the row kernel's blocks of 4 may read past the end)
                q = nq - nq % ur
                if q > 0:
                    _blocked(&out[n, oc0, q0], P, nvalid, &x[n, gi * cin_g, q0], cin_g, P, 0,
                             &wp[gi, b, 0, 0, 0, 0], 1, 1, 1, 1, 1, q, &bias[gi, b, 0])
                if q < nq:
                    _blocked_flat(&out[n, oc0, 0], P, nvalid, &x[n, gi * cin_g, 0], cin_g, P,
                                  0, &wp[gi, b, 0, 0, 0, 0], 1, 1, 1, 1, 1, 1, P, q0 + q,
                                  nq - q, &bias[gi, b, 0])
