/* The soft echo-density loss of sdn.echo_density in C, in single and double precision: the
 * kernel is written once, in echo_density_kernel.h, and included here once per precision
 * (exported as sdn_soft_echo_density_f32 and sdn_soft_echo_density_f64). Built by sdn/native.py
 * with the system's C compiler.
 */
#ifdef __AVX512F__
#include <immintrin.h>
#endif
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The first `degree` coefficients c[n] of P(r) = sum_n c[n] r^n, the polynomial of degree
 * `degree` - 1 that interpolates (2^r - 1) / r at the `degree` Chebyshev nodes of [-1/2, 1/2]:
 * Newton's divided differences in long double, expanded into powers of r. Being close to the
 * minimax polynomial, r P(r) reaches the precision's rounding floor one degree lower than the
 * Taylor polynomial in float32 (6 against 7) and two lower in float64 (11 against 13), which
 * saves multiply-adds on every tap. */
static void expm1_coefficients(int degree, long double *c) {
    const long double ln2 = 0.693147180559945309417232121458176568L, pi = 3.141592653589793238462643383279502884L;
    long double node[16], difference[16];
    for (int k = 0; k < degree; k++) {
        node[k] = 0.5L * cosl((2 * k + 1) * pi / (2 * degree));
        difference[k] = expm1l(node[k] * ln2) / node[k];
    }
    for (int j = 1; j < degree; j++)
        for (int i = degree - 1; i >= j; i--)
            difference[i] = (difference[i] - difference[i - 1]) / (node[i] - node[i - j]);
    for (int n = 0; n < degree; n++)  /* Horner on the Newton form: P <- P (r - node[i]) + difference[i] */
        c[n] = n == 0 ? difference[degree - 1] : 0;
    for (int i = degree - 2; i >= 0; i--) {
        for (int n = degree - 1; n > 0; n--)
            c[n] = c[n - 1] - node[i] * c[n];
        c[0] = difference[i] - node[i] * c[0];
    }
}

/* Single precision: 16 lanes with AVX-512, else 8; tanh(115 ln(2) / 2) rounds to 1; degree 6. */
#define NAME(x) x##_f32
#define REAL float
#define INT int32_t
#define MANTISSA 23
#define BIAS 127
#define YMAX 115
#define DEGREE 6
#if defined(__AVX512F__)
#define LANES 16
#define MIN _mm512_min_ps
#define MAX _mm512_max_ps
#elif defined(__AVX__)
#define LANES 8
#define MIN __builtin_ia32_minps256
#define MAX __builtin_ia32_maxps256
#else
#define LANES 8
#endif
#include "echo_density_kernel.h"
#undef NAME
#undef REAL
#undef INT
#undef LANES
#undef MANTISSA
#undef BIAS
#undef YMAX
#undef DEGREE
#undef MIN
#undef MAX

/* Double precision: 8 lanes with AVX-512, else 4; tanh(1010 ln(2) / 2) rounds to 1; degree 11. */
#define NAME(x) x##_f64
#define REAL double
#define INT int64_t
#define MANTISSA 52
#define BIAS 1023
#define YMAX 1010
#define DEGREE 11
#if defined(__AVX512F__)
#define LANES 8
#define MIN _mm512_min_pd
#define MAX _mm512_max_pd
#elif defined(__AVX__)
#define LANES 4
#define MIN __builtin_ia32_minpd256
#define MAX __builtin_ia32_maxpd256
#else
#define LANES 4
#endif
#include "echo_density_kernel.h"
