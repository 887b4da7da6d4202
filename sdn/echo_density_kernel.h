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
 * which is added to grad. One pass over the taps of window i computes its t(i, j), adds window
 * i - 1's terms to G and Q (its q is known by then) and sums window i + 1's sigma^2: these loads
 * and adds use the ports that tanh leaves idle (the kernel took 3.9 ms with a pass for each,
 * 3.0 ms fused, on 1 s of signal), and the d of two windows, L values each, are all that is stored.
 * LANES taps go through together as GCC vector types (the compiler emits SIMD code): 16 float32
 * lanes with AVX-512 took 2.5 ms where 8 took 3.0 ms.
 *
 * tanh(z / 2) = (e^z - 1) / (e^z + 1) is computed from y = z log2(e) = kappa_i log2(e) |h| -
 * kappa_i log2(e) sigma_i (one multiply-add per tap), clamped to +-YMAX (beyond it tanh rounds to
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
 * YMAX and DEGREE defined.
 */

typedef REAL NAME(vec) __attribute__((vector_size(LANES * sizeof(REAL))));
typedef REAL NAME(unaligned) __attribute__((vector_size(LANES * sizeof(REAL)), aligned(sizeof(REAL)), may_alias));
typedef INT NAME(ivec) __attribute__((vector_size(LANES * sizeof(REAL))));

/* y clamped to [-YMAX, YMAX]: MIN and MAX if the instruction set has them, else by masks. */
static inline NAME(vec) NAME(clamp)(NAME(vec) z) {
    const NAME(vec) top = (NAME(vec)){0} + (REAL)YMAX;
#if defined(MIN) && defined(MAX)
    return MAX(MIN(z, top), -top);
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
    NAME(vec) p = (NAME(vec)){0} + coefficient[DEGREE - 1];
    for (int n = DEGREE - 2; n >= 0; n--)
        p = p * r + coefficient[n];
    NAME(vec) power = (NAME(vec))(((NAME(ivec))shifted + BIAS) << MANTISSA);  /* 2^k */
    NAME(vec) expm1 = power * (r * p) + (power - 1);
    return expm1 / (expm1 + 2);
}

/* Window i's terms of G and Q, LANES taps from tap v LANES on: d(i, j) q(i) and w(j) g_i / sigma_i. */
static inline void NAME(add_gradient)(REAL *accumulated_mag, REAL *accumulated_square, NAME(vec) d, NAME(vec) w,
                                      REAL q, REAL g) {
    *(NAME(unaligned) *)accumulated_mag += q * d;
    *(NAME(unaligned) *)accumulated_square += g * w;
}

void NAME(sdn_soft_echo_density)(int64_t rows, int64_t samples, int64_t length, int64_t first, int64_t last,
                                 const REAL *h, const REAL *kappa, const REAL *window, const REAL *target,
                                 const REAL *grad_sums, double scale, REAL *sums, REAL *grad) {
    const int gradient = target || grad_sums;
    const int64_t width = samples - length, n_vectors = (length + LANES - 1) / LANES;
    const int64_t span = last - first + length - 1;        /* samples the windows read */
    const int64_t padded = last - first + n_vectors * LANES;  /* and zeros beyond */
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
    for (int64_t j = 0; j < n_vectors * LANES; j++) {
        ((REAL *)w)[j] = j < length ? window[j] : 0;  /* taps beyond L weigh nothing */
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
        NAME(vec) *d_previous = d + n_vectors, acc_next = {0};
        for (int64_t v = 0; v < n_vectors; v++)
            acc_next += w[v] * *(const NAME(unaligned) *)(square + v * LANES);
        for (int64_t i = 0; i < last - first; i++) {
            const int64_t window_index = row * width + first + i;
            NAME(vec) *d_this = d + (i % 2) * n_vectors, acc = acc_next;
            REAL variance = 0;
            for (int lane = 0; lane < LANES; lane++)
                variance += acc[lane];
            const REAL sigma = variance > 0 ? sqrt(variance) : 0;
            const REAL k = kappa[first + i], k_log2e = k * (REAL)1.4426950408889634, bias = -k_log2e * sigma;
            NAME(vec) acc_t = {0}, acc_d = {0};
            acc_next = (NAME(vec)){0};
            for (int64_t v = 0; v < n_vectors; v++) {
                NAME(vec) t = NAME(tanh_half)(*(const NAME(unaligned) *)(mag + i + v * LANES) * k_log2e + bias,
                                              coefficient);
                acc_t += w[v] * t;
                d_this[v] = w[v] - w[v] * (t * t);
                acc_d += d_this[v];
                acc_next += w[v] * *(const NAME(unaligned) *)(square + i + 1 + v * LANES);
                if (gradient)
                    NAME(add_gradient)(accumulated_mag + i - 1 + v * LANES, accumulated_square + i - 1 + v * LANES,
                                       d_previous[v], w[v], q_previous, g_previous);
            }
            d_previous = d_this;
            REAL s = 0, d_sum = 0;
            for (int lane = 0; lane < LANES; lane++) {
                s += acc_t[lane];
                d_sum += acc_d[lane];
            }
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
            NAME(add_gradient)(accumulated_mag + last - first - 1 + v * LANES,
                               accumulated_square + last - first - 1 + v * LANES, d_previous[v], w[v], q_previous,
                               g_previous);
        for (int64_t m = 0; m < span; m++)  /* d|h|/dh = sign(h), 0 at 0 as torch.sign has it */
            grad[row * samples + first + m] += (REAL)((x[m] > 0) - (x[m] < 0)) * accumulated_mag[m]
                                               + x[m] * accumulated_square[m];
    }
    free(w);
    free(d);
    free(mag);
}
