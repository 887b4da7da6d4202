/* The node system of sdn.node_system, one bin at a time in C, vectorised across bins.
 *
 * Same equations and layout as the PyTorch implementation (see sdn/node_system.py): per bin,
 * R_p = 1 / (1 - E_p^2 H_k H_l), S_p = R_p E_p for the 15 pairs p = (k, l), k < l,
 *   A = diag(sum_k a_lk R_lk) - I - (a o S) diag(H),   A x = b,
 *   Y = c^T B x,  B = diag(sum_l w_kl R_kl) - (w o S) diag(H),
 * solved by Gaussian elimination without pivoting, and, when asked, the derivatives of Y with
 * respect to every input (the adjoint mu = A^-T B^T c reuses the factors).
 *
 * Every input row (one per pair, wall or node) holds n_bins complex numbers, interleaved real and
 * imaginary parts, in single or double precision; arithmetic is in double precision. LANES bins
 * go through the elimination together as GCC vector types, so the compiler emits SIMD code: 8
 * with AVX-512, else 4 (for 16385 bins in complex64, fastest of 50 calls, 8 lanes took 4.7 ms
 * with the derivatives and 1.6 ms without, where 4 took 5.2 and 2.25 ms). Each bin's arithmetic is
 * the same whatever the lane count, and the build's -ffp-contract=off keeps the compiler from
 * fusing a multiply and an add where the CPU has FMA: every build gives the same bits.
 * Built by sdn/native.py with the system's C compiler.
 */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>

#define N 6
#define NP 15
#ifdef __AVX512F__
#define LANES 8
#else
#define LANES 4
#endif

typedef double V __attribute__((vector_size(LANES * sizeof(double))));
typedef struct { V re, im; } C;

static inline C cadd(C a, C b) { return (C){a.re + b.re, a.im + b.im}; }
static inline C csub(C a, C b) { return (C){a.re - b.re, a.im - b.im}; }
static inline C cmul(C a, C b) { return (C){a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re}; }
static inline C cscale(C a, double s) { return (C){a.re * s, a.im * s}; }
static inline C crecip(C a) {
    V d = a.re * a.re + a.im * a.im;
    return (C){a.re / d, -a.im / d};
}
static inline C czero(void) { return (C){{0}, {0}}; }

/* The pairs k < l in the order of torch.triu_indices(6, 6, 1), and [k][l] -> pair. */
static const int pair_k[NP] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4};
static const int pair_l[NP] = {1, 2, 3, 4, 5, 2, 3, 4, 5, 3, 4, 5, 4, 5, 5};
static const int pair_of[N][N] = {
    {-1, 0, 1, 2, 3, 4}, {0, -1, 5, 6, 7, 8}, {1, 5, -1, 9, 10, 11},
    {2, 6, 9, -1, 12, 13}, {3, 7, 10, 12, -1, 14}, {4, 8, 11, 13, 14, -1},
};

/* Rows [0, rows) of LANES bins from bin f0 (m of them valid; the rest zero). */
static void load(C *dst, const void *src, int rows, int64_t n_bins, int64_t f0, int m, int single) {
    for (int r = 0; r < rows; r++) {
        dst[r] = czero();
        for (int v = 0; v < m; v++) {
            int64_t i = 2 * (r * n_bins + f0 + v);
            dst[r].re[v] = single ? ((const float *)src)[i] : ((const double *)src)[i];
            dst[r].im[v] = single ? ((const float *)src)[i + 1] : ((const double *)src)[i + 1];
        }
    }
}

static void store(void *dst, const C *src, int rows, int64_t n_bins, int64_t f0, int m, int single) {
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < m; v++) {
            int64_t i = 2 * (r * n_bins + f0 + v);
            if (single) {
                ((float *)dst)[i] = (float)src[r].re[v];
                ((float *)dst)[i + 1] = (float)src[r].im[v];
            } else {
                ((double *)dst)[i] = src[r].re[v];
                ((double *)dst)[i + 1] = src[r].im[v];
            }
        }
}

/* Bins [first, last) of Y (n_bins) and, unless d_pair is NULL, dY/d(pair, walls, source, mic) and Z for the weights'
 * gradients: d_pair (15, n), d_walls (6, n), d_source = mu (6, n), d_mic = B x (6, n),
 * d_weights (6, 6, n) with Z_lk = S_lk H_k x_k - R_lk x_l. junction and extraction: (6, 6). */
void sdn_node_system(int64_t n_bins, int64_t first, int64_t last, int single, const void *pair, const void *walls, const void *source,
                     const void *mic, const double *junction, const double *extraction, void *out,
                     void *d_pair, void *d_walls, void *d_source, void *d_mic, void *d_weights) {
    const double(*a)[N] = (const double(*)[N])junction;
    const double(*w)[N] = (const double(*)[N])extraction;
    for (int64_t f0 = first; f0 < last; f0 += LANES) {
        int m = last - f0 < LANES ? (int)(last - f0) : LANES;
        C E[NP], H[N], b[N], c[N];
        load(E, pair, NP, n_bins, f0, m, single);
        load(H, walls, N, n_bins, f0, m, single);
        load(b, source, N, n_bins, f0, m, single);
        load(c, mic, N, n_bins, f0, m, single);

        C HH[NP], R[NP], S[NP];
        for (int p = 0; p < NP; p++) {
            HH[p] = cmul(H[pair_k[p]], H[pair_l[p]]);
            C one = {{0}, {0}};
            one.re += 1;
            R[p] = crecip(csub(one, cmul(cmul(E[p], E[p]), HH[p])));
            S[p] = cmul(R[p], E[p]);
        }
        C dA[N], dB[N], M[N][N];
        for (int l = 0; l < N; l++) {
            dA[l] = dB[l] = czero();
            for (int k = 0; k < N; k++) {
                if (k == l) continue;
                int p = pair_of[l][k];
                dA[l] = cadd(dA[l], cscale(R[p], a[l][k]));
                dB[l] = cadd(dB[l], cscale(R[p], w[l][k]));
                M[l][k] = cscale(cmul(S[p], H[k]), -a[l][k]);
            }
            M[l][l] = dA[l];
            M[l][l].re -= 1;
        }
        /* A = L U in place (unit lower L below the diagonal), the pivots' reciprocals apart. */
        C inv[N];
        for (int i = 0; i < N; i++) {
            inv[i] = crecip(M[i][i]);
            for (int j = i + 1; j < N; j++) {
                C f = cmul(M[j][i], inv[i]);
                M[j][i] = f;
                for (int k = i + 1; k < N; k++) M[j][k] = csub(M[j][k], cmul(f, M[i][k]));
            }
        }
        C x[N];
        for (int i = 0; i < N; i++) {  /* L y = b */
            x[i] = b[i];
            for (int j = 0; j < i; j++) x[i] = csub(x[i], cmul(M[i][j], x[j]));
        }
        for (int i = N - 1; i >= 0; i--) {  /* U x = y */
            for (int j = i + 1; j < N; j++) x[i] = csub(x[i], cmul(M[i][j], x[j]));
            x[i] = cmul(x[i], inv[i]);
        }
        C h[N], bx[N], Y = czero();
        for (int k = 0; k < N; k++) h[k] = cmul(H[k], x[k]);
        for (int l = 0; l < N; l++) {
            bx[l] = cmul(dB[l], x[l]);
            for (int k = 0; k < N; k++)
                if (k != l) bx[l] = csub(bx[l], cscale(cmul(S[pair_of[l][k]], h[k]), w[l][k]));
            Y = cadd(Y, cmul(c[l], bx[l]));
        }
        store(out, &Y, 1, n_bins, f0, m, single);
        if (d_pair == NULL) continue;

        C mu[N];  /* B^T c, then A^T mu = B^T c: U^T z = B^T c, L^T mu = z */
        for (int j = 0; j < N; j++) {
            C sum = czero();
            for (int i = 0; i < N; i++)
                if (i != j) sum = cadd(sum, cscale(cmul(S[pair_of[i][j]], c[i]), w[i][j]));
            mu[j] = csub(cmul(dB[j], c[j]), cmul(H[j], sum));
        }
        for (int i = 0; i < N; i++) {
            for (int j = 0; j < i; j++) mu[i] = csub(mu[i], cmul(M[j][i], mu[j]));
            mu[i] = cmul(mu[i], inv[i]);
        }
        for (int i = N - 1; i >= 0; i--)
            for (int j = i + 1; j < N; j++) mu[i] = csub(mu[i], cmul(M[j][i], mu[j]));

        C node[N][N];  /* a_lk mu_l - w_lk c_l */
        for (int l = 0; l < N; l++)
            for (int k = 0; k < N; k++) node[l][k] = csub(cscale(mu[l], a[l][k]), cscale(c[l], w[l][k]));
        C dP[NP], dW[N];
        for (int k = 0; k < N; k++) {  /* through S_lk H_k: x_k sum_l node_lk S_lk */
            C sum = czero();
            for (int l = 0; l < N; l++)
                if (l != k) sum = cadd(sum, cmul(node[l][k], S[pair_of[l][k]]));
            dW[k] = cmul(x[k], sum);
        }
        for (int p = 0; p < NP; p++) {
            int k = pair_k[p], l = pair_l[p];
            C via_coupling = cadd(cmul(node[k][l], h[l]), cmul(node[l][k], h[k]));  /* dY/dS_p */
            C mx_k = cmul(mu[k], x[k]), mx_l = cmul(mu[l], x[l]), cx_k = cmul(c[k], x[k]), cx_l = cmul(c[l], x[l]);
            C via_resolvent = cadd(cadd(cscale(mx_k, -a[k][l]), cscale(mx_l, -a[l][k])),
                                   cadd(cscale(cx_k, w[k][l]), cscale(cx_l, w[l][k])));  /* dY/dR_p */
            via_resolvent = cadd(via_resolvent, cmul(via_coupling, E[p]));
            C via_loop = cmul(cmul(via_resolvent, cmul(R[p], R[p])), E[p]);  /* through R_p, times E_p */
            dP[p] = cadd(cmul(via_coupling, R[p]), cscale(cmul(via_loop, HH[p]), 2));
            C loop_e = cmul(via_loop, E[p]);  /* through H_k H_l */
            dW[k] = cadd(dW[k], cmul(loop_e, H[l]));
            dW[l] = cadd(dW[l], cmul(loop_e, H[k]));
        }
        C Z[N * N];
        for (int l = 0; l < N; l++)
            for (int k = 0; k < N; k++) {
                int p = pair_of[l][k];
                Z[l * N + k] = p < 0 ? czero() : csub(cmul(S[p], h[k]), cmul(R[p], x[l]));
            }
        store(d_pair, dP, NP, n_bins, f0, m, single);
        store(d_walls, dW, N, n_bins, f0, m, single);
        store(d_source, mu, N, n_bins, f0, m, single);
        store(d_mic, bx, N, n_bins, f0, m, single);
        store(d_weights, Z, N * N, n_bins, f0, m, single);
    }
}

/* The backward pass, in single and double precision (node_system_backward.h). */
#define NAME(x) x##_f32
#define REAL float
#include "node_system_backward.h"
#undef NAME
#undef REAL
#define NAME(x) x##_f64
#define REAL double
#include "node_system_backward.h"

/* The widest vector instructions this build may use, and "+fma" where fused multiply-adds are
 * instructions (without them, echo_density_kernel.h's fma is libm's, in software), for
 * sdn.native.compute_path. */
const char *sdn_vector_isa(void) {
#if defined(__AVX512F__)
    return "avx512f+fma";
#elif defined(__AVX2__) && defined(__FMA__)
    return "avx2+fma";
#elif defined(__AVX__) && defined(__FMA__)
    return "avx+fma";
#elif defined(__AVX__)
    return "avx";
#elif defined(__SSE2__)
    return "sse2";
#elif defined(__aarch64__)
    return "neon+fma";
#else
    return "scalar";
#endif
}
