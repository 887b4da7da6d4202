/* The soft echo-density profile of sdn.echo_density (paper windows) and its loss, window by window.
 *
 * For every row h of T samples and window i = first .. last - 1 of the paper's placement
 * (windows i = 0 .. W - 1, W = T - L, of L taps w):
 *   sigma_i^2 = sum_j w(j) h(i + j)^2,
 *   t(i, j) = tanh(kappa_i (|h(i + j)| - sigma_i) / 2),   S(i) = sum_j w(j) t(i, j),
 * and, when asked, the exact gradient of a loss given dloss/dS: either grad_sums, or from a
 * target profile for
 *   loss = mean_i (target(i) - eta(i))^2,   eta(i) = c (sum_j w(j) + S(i)) / 2,
 * dloss/dS(i) = c (eta(i) - target(i)) / W, known as soon as the window's S(i) is.
 * With q(i) = dloss/dS(i) kappa_i / 2, d(i, j) = w(j) (1 - t(i, j)^2) and
 * g_i = dloss/dsigma_i = -q(i) sum_j d(i, j), it is dloss/dh(m) = sign(h(m)) G(m) + h(m) Q(m) with
 *   G(m) = sum_i q(i) d(i, m - i),   Q(m) = sum_i w(m - i) g_i / sigma_i   (0 where sigma_i = 0),
 * which is written to grad, laid out as (rows, last - first + L - 1) from sample first on: the
 * samples these windows read (sdn/native.py adds the parts' blocks in order).
 * One pass over the taps of window i computes its t(i, j), adds window
 * i - 1's terms to G and Q (its q is known by then) and sums window i + 1's sigma^2: these loads
 * and adds use the ports that tanh leaves idle (the kernel took 3.9 ms with a pass for each,
 * 3.0 ms fused, on 1 s of signal), and the d of two windows, L values each, are all that is stored.
 * The taps go through as GCC vector types of the machine's width (VECTOR_BYTES), and every sum over
 * taps is kept in LANES lanes, tap j in lane j mod LANES, as LANES / WIDTH machine vectors, then
 * added in lane order. LANES is fixed (echo_density.c), the multiply-adds are explicit fma, and
 * nothing else is fused: the order and rounding of every operation are the same on every CPU.
 *
 * tanh(z / 2) = (e^z - 1) / (e^z + 1) is computed from y = z log2(e) = kappa_i log2(e) |h| -
 * kappa_i log2(e) sigma_i (one fma per tap), clamped to +-YMAX (beyond it tanh rounds to
 * +-1, and 2^+-YMAX are normal numbers): e^z - 1 = 2^k (1 + r P(r)) - 1 with k = round(y) and
 * r = y - k (exact, |r| <= 1/2), and P the interpolant of (2^r - 1) / r of expm1_coefficients
 * (echo_density.c), so that r P(r) has degree DEGREE. Relative error of a window's sum, as a share
 * of sum_j w(j) |t(i, j)|, tiny arguments and both signs included (test_losses.py, against libm's
 * tanh in long double): 4.0e-7 in float32 and 7.6e-16 in float64, a few units in the last place
 * (4.1e-7 and 7.6e-16 with the Taylor polynomials of degree 7 and 13). k comes from the
 * round-to-nearest of adding SHIFTER = 1.5 2^MANTISSA, whose low bits then hold k, and 2^k is
 * (k + BIAS) << MANTISSA.
 *
 * Included by echo_density.c once per precision, with NAME, REAL, INT, LANES, MANTISSA, BIAS,
 * YMAX, DEGREE, VECTOR_BYTES and FMA defined, and where the instruction set has them MACHINE (its
 * vector type), FMA_VECTOR, MIN and MAX.
 */

typedef REAL NAME(vec) __attribute__((vector_size(VECTOR_BYTES)));
typedef REAL NAME(unaligned) __attribute__((vector_size(VECTOR_BYTES), aligned(sizeof(REAL)), may_alias));
typedef INT NAME(ivec) __attribute__((vector_size(VECTOR_BYTES)));
#define WIDTH (VECTOR_BYTES / (int)sizeof(REAL))  /* lanes of one machine vector */
#define PIECES (LANES / WIDTH)                    /* machine vectors per LANES lanes */

/* a b + c in each lane, rounded once: fused on every build, so that every machine rounds the same.
 * By the CPU's FMA instructions where it has them, else by libm's fma, exact in software (slow:
 * a build for CPUs without FMA is for checking results, not for speed). */
static inline NAME(vec) NAME(fma)(NAME(vec) a, NAME(vec) b, NAME(vec) c) {
#if defined(FMA_VECTOR)
    return (NAME(vec))FMA_VECTOR((MACHINE)a, (MACHINE)b, (MACHINE)c);
#else
    NAME(vec) result;
    for (int lane = 0; lane < WIDTH; lane++)
        result[lane] = FMA(a[lane], b[lane], c[lane]);
    return result;
#endif
}

static inline NAME(vec) NAME(broadcast)(REAL value) { return (NAME(vec)){0} + value; }

/* y clamped to [-YMAX, YMAX]. x86's min and max return their second operand when either is NaN,
 * so that NaN goes through as it does through the masks used elsewhere. */
static inline NAME(vec) NAME(clamp)(NAME(vec) z) {
    const NAME(vec) top = NAME(broadcast)((REAL)YMAX);
#if defined(MIN) && defined(MAX)
    return (NAME(vec))MAX((MACHINE)(-top), MIN((MACHINE)top, (MACHINE)z));
#else
    NAME(ivec) above = z > top, below = z < -top;
    return (NAME(vec))(((NAME(ivec))z & ~(above | below)) | ((NAME(ivec))top & above) | ((NAME(ivec))(-top) & below));
#endif
}

/* tanh(z / 2), elementwise, from y = z log2(e); coefficient[n] of P(r) = sum_n coefficient[n] r^n. */
static inline NAME(vec) NAME(tanh_half)(NAME(vec) y, const REAL *coefficient) {
    y = NAME(clamp)(y);
    const REAL shifter = (REAL)1.5 * (REAL)((INT)1 << MANTISSA);
    NAME(vec) shifted = y + shifter;  /* k + SHIFTER, rounded */
    NAME(vec) r = y - (shifted - shifter);
    NAME(vec) p = NAME(broadcast)(coefficient[DEGREE - 1]);
    for (int n = DEGREE - 2; n >= 0; n--)
        p = NAME(fma)(p, r, NAME(broadcast)(coefficient[n]));
    NAME(vec) power = (NAME(vec))(((NAME(ivec))shifted + BIAS) << MANTISSA);  /* 2^k */
    NAME(vec) expm1 = NAME(fma)(power, r * p, power - 1);
    return expm1 / (expm1 + 2);
}

/* Window i's terms of G and Q, WIDTH taps from tap v WIDTH on: d(i, j) q(i) and w(j) g_i / sigma_i. */
static inline void NAME(add_gradient)(REAL *accumulated_mag, REAL *accumulated_square, NAME(vec) d, NAME(vec) w,
                                      REAL q, REAL g) {
    NAME(unaligned) *mag = (NAME(unaligned) *)accumulated_mag, *square = (NAME(unaligned) *)accumulated_square;
    *mag = NAME(fma)(NAME(broadcast)(q), d, *mag);
    *square = NAME(fma)(NAME(broadcast)(g), w, *square);
}

/* The sum of LANES lanes held as PIECES machine vectors, in lane order. */
static inline REAL NAME(lane_sum)(const NAME(vec) *acc) {
    REAL total = 0;
    for (int piece = 0; piece < PIECES; piece++)
        for (int lane = 0; lane < WIDTH; lane++)
            total += acc[piece][lane];
    return total;
}

void NAME(sdn_soft_echo_density)(int64_t rows, int64_t samples, int64_t length, int64_t first, int64_t last,
                                 const REAL *h, const REAL *kappa, const REAL *window, const REAL *target,
                                 const REAL *grad_sums, double scale, REAL *sums, REAL *grad) {
    const int gradient = target || grad_sums;
    /* taps in whole groups of LANES, zero-weighted beyond L, as machine vectors of WIDTH taps */
    const int64_t width = samples - length, n_taps = (length + LANES - 1) / LANES * LANES, n_vectors = n_taps / WIDTH;
    const int64_t span = last - first + length - 1;  /* samples the windows read */
    const int64_t padded = last - first + n_taps;    /* and zeros beyond */
    long double exact[DEGREE];
    REAL coefficient[DEGREE];
    expm1_coefficients(DEGREE, exact);
    for (int n = 0; n < DEGREE; n++)
        coefficient[n] = (REAL)exact[n];
    NAME(vec) *w = aligned_alloc(sizeof(NAME(vec)), n_vectors * sizeof(NAME(vec)));
    NAME(vec) *d = aligned_alloc(sizeof(NAME(vec)), 2 * n_vectors * sizeof(NAME(vec)));  /* two windows' */
    /* the accumulators start one sample early: window i adds window i - 1's terms, from i = 0 on */
    REAL *mag = calloc(4 * padded + 2, sizeof(REAL)), *square = mag + padded;
    REAL *accumulated_mag = square + padded + 1, *accumulated_square = accumulated_mag + padded + 1;
    REAL window_sum = 0;
    for (int64_t j = 0; j < n_taps; j++) {
        ((REAL *)w)[j] = j < length ? window[j] : 0;
        window_sum += ((REAL *)w)[j];
    }
    for (int64_t row = 0; row < rows; row++) {
        const REAL *x = h + row * samples + first;
        for (int64_t m = 0; m < span; m++) {
            mag[m] = x[m] < 0 ? -x[m] : x[m];
            square[m] = x[m] * x[m];
        }
        memset(accumulated_mag - 1, 0, 2 * (padded + 1) * sizeof(REAL));
        memset(d, 0, 2 * n_vectors * sizeof(NAME(vec)));
        REAL q_previous = 0, g_previous = 0;  /* window i - 1's q and g / sigma (none before window 0) */
        /* LANES lanes of partial sums as PIECES machine vectors: taps j of lane j mod LANES, in tap order */
        NAME(vec) *d_previous = d + n_vectors, acc_next[PIECES] = {{0}};
        for (int64_t v = 0; v < n_vectors; v++)
            acc_next[v % PIECES] = NAME(fma)(w[v], *(const NAME(unaligned) *)(square + v * WIDTH),
                                             acc_next[v % PIECES]);
        for (int64_t i = 0; i < last - first; i++) {
            const int64_t window_index = row * width + first + i;
            NAME(vec) *d_this = d + (i % 2) * n_vectors;
            const REAL variance = NAME(lane_sum)(acc_next);
            const REAL sigma = variance > 0 ? sqrt(variance) : 0;
            const REAL k = kappa[first + i], k_log2e = k * (REAL)1.4426950408889634, bias = -k_log2e * sigma;
            NAME(vec) acc_t[PIECES] = {{0}}, acc_d[PIECES] = {{0}};
            for (int piece = 0; piece < PIECES; piece++)
                acc_next[piece] = (NAME(vec)){0};
            for (int64_t v = 0; v < n_vectors; v++) {
                const int piece = v % PIECES;
                NAME(vec) t = NAME(tanh_half)(NAME(fma)(*(const NAME(unaligned) *)(mag + i + v * WIDTH),
                                                        NAME(broadcast)(k_log2e), NAME(broadcast)(bias)),
                                              coefficient);
                acc_t[piece] = NAME(fma)(w[v], t, acc_t[piece]);
                d_this[v] = NAME(fma)(-w[v], t * t, w[v]);
                acc_d[piece] += d_this[v];
                acc_next[piece] = NAME(fma)(w[v], *(const NAME(unaligned) *)(square + i + 1 + v * WIDTH),
                                            acc_next[piece]);
                if (gradient)
                    NAME(add_gradient)(accumulated_mag + i - 1 + v * WIDTH, accumulated_square + i - 1 + v * WIDTH,
                                       d_previous[v], w[v], q_previous, g_previous);
            }
            d_previous = d_this;
            const REAL s = NAME(lane_sum)(acc_t), d_sum = NAME(lane_sum)(acc_d);
            sums[window_index] = s;
            if (!gradient)
                continue;
            const REAL eta = (REAL)scale * ((REAL)0.5 * window_sum + (REAL)0.5 * s);
            q_previous = (target ? (eta - target[window_index]) * (REAL)scale / (REAL)width : grad_sums[window_index])
                         * (REAL)0.5 * k;
            g_previous = sigma > 0 ? -q_previous * d_sum / sigma : 0;  /* g_i / sigma_i */
        }
        if (!gradient)
            continue;
        for (int64_t v = 0; v < n_vectors; v++)  /* the last window's terms */
            NAME(add_gradient)(accumulated_mag + last - first - 1 + v * WIDTH,
                               accumulated_square + last - first - 1 + v * WIDTH, d_previous[v], w[v], q_previous,
                               g_previous);
        for (int64_t m = 0; m < span; m++)  /* d|h|/dh = sign(h), 0 at 0 as torch.sign has it */
            grad[row * span + m] = (REAL)((x[m] > 0) - (x[m] < 0)) * accumulated_mag[m] + x[m] * accumulated_square[m];
    }
    free(w);
    free(d);
    free(mag);
}

#undef WIDTH
#undef PIECES
