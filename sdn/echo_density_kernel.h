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
 * which are added to grad_mag and grad_square. A window's d wait in a buffer of L values between
 * its passes, so nothing of size W L is stored. LANES taps go through together as GCC vector
 * types (the compiler emits SIMD code).
 *
 * tanh(z / 2) = (e^z - 1) / (e^z + 1), with z clamped to +-ZMAX (beyond it tanh rounds to +-1) and
 * e^z - 1 = 2^k (1 + r p(r)) - 1, z = k ln2 + r, |r| <= ln2 / 2 (Cody-Waite: ln2 in a high part
 * exact in k ln2 and a low part), p the Taylor polynomial of (e^r - 1) / r to degree DEGREE - 1.
 * Relative error about one unit in the last place of REAL. k comes from the round-to-nearest of
 * adding SHIFTER = 1.5 2^MANTISSA, whose low bits then hold k, and 2^k is (k + BIAS) << MANTISSA.
 *
 * Included by echo_density.c once per precision, with NAME, REAL, INT, LANES, MANTISSA, BIAS,
 * ZMAX, LN2_HI, LN2_LO and DEGREE defined.
 */

typedef REAL NAME(vec) __attribute__((vector_size(LANES * sizeof(REAL))));
typedef REAL NAME(unaligned) __attribute__((vector_size(LANES * sizeof(REAL)), aligned(sizeof(REAL)), may_alias));
typedef INT NAME(ivec) __attribute__((vector_size(LANES * sizeof(REAL))));

/* z clamped to [-ZMAX, ZMAX]: MIN and MAX if the instruction set has them, else by masks. */
static inline NAME(vec) NAME(clamp)(NAME(vec) z) {
    const NAME(vec) top = (NAME(vec)){0} + (REAL)ZMAX;
#if defined(MIN) && defined(MAX)
    return MAX(MIN(z, top), -top);
#else
    NAME(ivec) above = z > top, below = z < -top;
    return (NAME(vec))(((NAME(ivec))z & ~(above | below)) | ((NAME(ivec))top & above) | ((NAME(ivec))(-top) & below));
#endif
}

/* tanh(z / 2), elementwise. */
static inline NAME(vec) NAME(tanh_half)(NAME(vec) z) {
    z = NAME(clamp)(z);
    const REAL shifter = (REAL)1.5 * (REAL)((INT)1 << MANTISSA);
    NAME(vec) shifted = z * (REAL)1.4426950408889634 + shifter;  /* k + SHIFTER, rounded */
    NAME(vec) k = shifted - shifter;
    NAME(vec) r = z - k * (REAL)LN2_HI - k * (REAL)LN2_LO;
    NAME(vec) p = (NAME(vec)){0} + (REAL)INVERSE_FACTORIAL[DEGREE];
    for (int n = DEGREE - 1; n >= 1; n--)
        p = p * r + (REAL)INVERSE_FACTORIAL[n];
    NAME(vec) power = (NAME(vec))(((NAME(ivec))shifted + BIAS) << MANTISSA);  /* 2^k */
    NAME(vec) expm1 = power * (r * p) + (power - 1);
    return expm1 / (expm1 + 2);
}

void NAME(sdn_soft_echo_density)(int64_t rows, int64_t samples, int64_t length, int64_t first, int64_t last,
                                 const REAL *h, const REAL *kappa, const REAL *window, const REAL *target,
                                 const REAL *grad_sums, double scale, REAL *sums, REAL *grad_mag,
                                 REAL *grad_square) {
    const int gradient = target || grad_sums;
    const int64_t width = samples - length, n_vectors = (length + LANES - 1) / LANES;
    const int64_t span = last - first + length - 1;        /* samples the windows read */
    const int64_t padded = last - first + n_vectors * LANES;  /* and zeros beyond */
    NAME(vec) *w = aligned_alloc(sizeof(NAME(vec)), n_vectors * sizeof(NAME(vec)));
    NAME(vec) *d = aligned_alloc(sizeof(NAME(vec)), n_vectors * sizeof(NAME(vec)));
    REAL *mag = calloc(4 * padded, sizeof(REAL)), *square = mag + padded;
    REAL *accumulated_mag = square + padded, *accumulated_square = accumulated_mag + padded;
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
        memset(accumulated_mag, 0, 2 * padded * sizeof(REAL));
        for (int64_t i = 0; i < last - first; i++) {
            const int64_t window_index = row * width + first + i;
            NAME(vec) acc = {0};
            for (int64_t v = 0; v < n_vectors; v++)
                acc += w[v] * *(const NAME(unaligned) *)(square + i + v * LANES);
            REAL variance = 0;
            for (int lane = 0; lane < LANES; lane++)
                variance += acc[lane];
            const REAL sigma = variance > 0 ? sqrt(variance) : 0;
            const REAL k = kappa[first + i], bias = -k * sigma;
            NAME(vec) acc_t = {0}, acc_d = {0};
            for (int64_t v = 0; v < n_vectors; v++) {
                NAME(vec) t = NAME(tanh_half)(*(const NAME(unaligned) *)(mag + i + v * LANES) * k + bias);
                acc_t += w[v] * t;
                d[v] = w[v] - w[v] * (t * t);
                acc_d += d[v];
            }
            REAL s = 0, d_sum = 0;
            for (int lane = 0; lane < LANES; lane++) {
                s += acc_t[lane];
                d_sum += acc_d[lane];
            }
            sums[window_index] = s;
            if (!gradient)
                continue;
            const REAL eta = (REAL)scale * ((REAL)0.5 * window_sum + (REAL)0.5 * s);
            const REAL q = (target ? (eta - target[window_index]) * (REAL)scale / (REAL)width : grad_sums[window_index])
                           * (REAL)0.5 * k;
            const REAL g = sigma > 0 ? -q * d_sum / sigma : 0;  /* g_i / sigma_i */
            for (int64_t v = 0; v < n_vectors; v++) {
                *(NAME(unaligned) *)(accumulated_mag + i + v * LANES) += q * d[v];
                *(NAME(unaligned) *)(accumulated_square + i + v * LANES) += g * w[v];
            }
        }
        if (!gradient)
            continue;
        for (int64_t m = 0; m < span; m++) {
            grad_mag[row * samples + first + m] += accumulated_mag[m];
            grad_square[row * samples + first + m] += accumulated_square[m];
        }
    }
    free(w);
    free(d);
    free(mag);
}
