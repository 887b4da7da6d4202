/* The backward pass of sdn_node_system over bins [first, last), from the derivatives it stored.
 *
 * With the output gradient g (n_bins), the gradients of the complex inputs are g conj(dY/dz)
 * (torch's convention), written to g_pair (15, n), g_walls (6, n), g_source (6, n) and
 * g_mic (6, n); those of the real weights,
 *   Re sum_f conj(g) mu_l Z_lk (junction)   and   -Re sum_f conj(g) c_l Z_lk (extraction),
 * are added to g_weights (2, 6, 6). Complex rows are interleaved real and imaginary parts of
 * REAL. A sum of Re(u_f Z_f) is the sum of the even minus the odd entries of the interleaved
 * elementwise products u o Z, so each is a plain multiply-add over the row, LANES entries at a
 * time, summed in double precision every BLOCK bins.
 *
 * Included by node_system.c once per precision, with NAME and REAL defined.
 */

#define LANES_B (32 / sizeof(REAL))
#define BLOCK 256

typedef REAL NAME(bvec) __attribute__((vector_size(32)));
typedef REAL NAME(bunaligned) __attribute__((vector_size(32), aligned(sizeof(REAL)), may_alias));

/* out[f] = g[f] conj(d[f]) for f in [first, last), complex, interleaved. */
static void NAME(times_conjugate)(const REAL *g, const REAL *d, REAL *out, int64_t first, int64_t last) {
    for (int64_t f = first; f < last; f++) {
        const REAL gr = g[2 * f], gi = g[2 * f + 1], dr = d[2 * f], di = d[2 * f + 1];
        out[2 * f] = gr * dr + gi * di;
        out[2 * f + 1] = gi * dr - gr * di;
    }
}

/* sum over f in [first, last) of Re(u[f] z[f]), complex, interleaved (u from first on). */
static double NAME(real_dot)(const REAL *u, const REAL *z, int64_t first, int64_t last) {
    double total = 0;
    const REAL *x = z + 2 * first;
    const int64_t n = 2 * (last - first);
    for (int64_t start = 0; start < n; start += 2 * BLOCK) {
        const int64_t stop = start + 2 * BLOCK < n ? start + 2 * BLOCK : n;
        NAME(bvec) acc = {0};
        int64_t i = start;
        for (; i + (int64_t)LANES_B <= stop; i += LANES_B)
            acc += *(const NAME(bunaligned) *)(u + i) * *(const NAME(bunaligned) *)(x + i);
        for (unsigned lane = 0; lane < LANES_B; lane++)
            total += lane % 2 ? -(double)acc[lane] : (double)acc[lane];
        for (; i < stop; i++)  /* entries past the last whole vector */
            total += i % 2 ? -(double)(u[i] * x[i]) : (double)(u[i] * x[i]);
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
    for (int input = 0; input < 4; input++)
        for (int r = 0; r < rows[input]; r++)
            NAME(times_conjugate)(grad, derivatives[input] + 2 * r * n_bins, gradients[input] + 2 * r * n_bins, first,
                                  last);
    /* conj(g) mu_l = conj(g_source_l) and conj(g) c_l, for f in [first, last) */
    REAL *u = malloc(4 * (last - first) * sizeof(REAL)), *v = u + 2 * (last - first);
    for (int l = 0; l < N; l++) {
        const REAL *source_l = g_source + 2 * l * n_bins, *mic_l = mic + 2 * l * n_bins;
        for (int64_t f = first; f < last; f++) {
            const REAL gr = grad[2 * f], gi = grad[2 * f + 1], cr = mic_l[2 * f], ci = mic_l[2 * f + 1];
            u[2 * (f - first)] = source_l[2 * f];
            u[2 * (f - first) + 1] = -source_l[2 * f + 1];
            v[2 * (f - first)] = gr * cr + gi * ci;
            v[2 * (f - first) + 1] = gr * ci - gi * cr;
        }
        for (int k = 0; k < N; k++) {
            const REAL *z = d_weights + 2 * (l * N + k) * n_bins;
            g_weights[l * N + k] += NAME(real_dot)(u, z, first, last);
            g_weights[N * N + l * N + k] -= NAME(real_dot)(v, z, first, last);
        }
    }
    free(u);
}

#undef LANES_B
#undef BLOCK
