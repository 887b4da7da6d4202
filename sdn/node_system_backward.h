/* The backward pass of sdn_node_system over bins [first, last), from the derivatives it stored.
 *
 * With the output gradient g (n_bins), the gradients of the complex inputs are g conj(dY/dz)
 * (torch's convention), written to g_pair (15, n), g_walls (6, n), g_source (6, n) and
 * g_mic (6, n); those of the real weights,
 *   Re sum_f conj(g) mu_l Z_lk (junction)   and   -Re sum_f conj(g) c_l Z_lk (extraction),
 * are added to g_weights (2, 6, 6). With a = g conj(mu_l) (that is, g_source) or g conj(c_l),
 * each is Re sum_f conj(a_f) Z_f, the plain dot product of the two rows' interleaved real and
 * imaginary parts: a multiply-add over the row, LANES_B entries at a time, summed in double
 * precision every BLOCK bins.
 *
 * Included by node_system.c once per precision, with NAME and REAL defined.
 */

#define LANES_B (32 / sizeof(REAL))
#define BLOCK 256

typedef REAL NAME(bvec) __attribute__((vector_size(32)));
typedef REAL NAME(bunaligned) __attribute__((vector_size(32), aligned(sizeof(REAL)), may_alias));

/* out[f] = g[f] conj(d[f]) for f < count, complex, interleaved. Not auto-vectorised: GCC 12 turns
 * the pair of products and the add and subtract into one fused vfmsubadd despite -ffp-contract=off,
 * and a CPU without FMA would round differently (tests/test_native.py looks for fused instructions). */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-vectorize")))
#endif
static void NAME(times_conjugate)(const REAL *g, const REAL *d, REAL *out, int64_t count) {
    for (int64_t f = 0; f < count; f++) {
        const REAL gr = g[2 * f], gi = g[2 * f + 1], dr = d[2 * f], di = d[2 * f + 1];
        out[2 * f] = gr * dr + gi * di;
        out[2 * f + 1] = gi * dr - gr * di;
    }
}

/* Re sum_{f < count} conj(a[f]) z[f], complex, interleaved: the dot product of the 2 count reals. */
static double NAME(conjugate_dot)(const REAL *a, const REAL *z, int64_t count) {
    double total = 0;
    for (int64_t start = 0; start < 2 * count; start += 2 * BLOCK) {
        const int64_t stop = start + 2 * BLOCK < 2 * count ? start + 2 * BLOCK : 2 * count;
        NAME(bvec) acc = {0};
        int64_t i = start;
        for (; i + (int64_t)LANES_B <= stop; i += LANES_B)
            acc += *(const NAME(bunaligned) *)(a + i) * *(const NAME(bunaligned) *)(z + i);
        for (unsigned lane = 0; lane < LANES_B; lane++)
            total += acc[lane];
        for (; i < stop; i++)  /* entries past the last whole vector */
            total += (double)(a[i] * z[i]);
    }
    return total;
}

void NAME(sdn_node_system_backward)(int64_t n_bins, int64_t first, int64_t last, const REAL *grad, const REAL *mic,
                                    const REAL *d_pair, const REAL *d_walls, const REAL *d_source,
                                    const REAL *d_mic, const REAL *d_weights, REAL *g_pair, REAL *g_walls,
                                    REAL *g_source, REAL *g_mic, double *g_weights) {
    const REAL *derivatives[] = {d_pair, d_walls, d_source, d_mic};
    REAL *gradients[] = {g_pair, g_walls, g_source, g_mic};
    const int rows[] = {NP, N, N, N};
    const int64_t count = last - first, at = 2 * first;  /* the bins, and the first one's offset */
    for (int input = 0; input < 4; input++)
        for (int r = 0; r < rows[input]; r++)
            NAME(times_conjugate)(grad + at, derivatives[input] + 2 * r * n_bins + at,
                                  gradients[input] + 2 * r * n_bins + at, count);
    REAL *scaled_mic = malloc(2 * count * sizeof(REAL));  /* g conj(c_l) */
    for (int l = 0; l < N; l++) {
        NAME(times_conjugate)(grad + at, mic + 2 * l * n_bins + at, scaled_mic, count);
        for (int k = 0; k < N; k++) {
            const REAL *z = d_weights + 2 * (l * N + k) * n_bins + at;
            g_weights[l * N + k] += NAME(conjugate_dot)(g_source + 2 * l * n_bins + at, z, count);
            g_weights[N * N + l * N + k] -= NAME(conjugate_dot)(scaled_mic, z, count);
        }
    }
    free(scaled_mic);
}

#undef LANES_B
#undef BLOCK
