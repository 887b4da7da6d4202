/* The soft echo-density loss of sdn.echo_density in C, in single and double precision: the
 * kernel is written once, in echo_density_kernel.h, and included here once per precision
 * (exported as sdn_soft_echo_density_f32 and sdn_soft_echo_density_f64). Built by sdn/native.py
 * with the system's C compiler.
 *
 * The lane counts of the sums are fixed (16 in single, 8 in double precision: 64 bytes) whatever
 * the CPU: the machine's vector width only sets how many vectors hold them (one with AVX-512, two
 * with AVX2, four with SSE2). The kernel's multiply-adds are explicit fma and the build has
 * -ffp-contract=off, so every build for any CPU gives the same bits (tests/test_native.py compares
 * them). 16 lanes in one vector type were fine with AVX-512 but took 30 ms instead of 3.6 ms with
 * AVX2, where GCC spilled them to memory: hence machine vectors, with the lanes kept apart.
 */
#if defined(__x86_64__) || defined(__i386__)
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

/* The machine vector: the widest the build's instruction set has, with its FMA, min and max. */
#if defined(__AVX512F__)
#define VECTOR_BYTES 64
#elif defined(__AVX__)
#define VECTOR_BYTES 32
#else
#define VECTOR_BYTES 16
#endif

/* Single precision: 16 lanes; tanh(115 ln(2) / 2) rounds to 1; degree 6. */
#define NAME(x) x##_f32
#define REAL float
#define INT int32_t
#define MANTISSA 23
#define BIAS 127
#define YMAX 115
#define DEGREE 6
#define LANES 16
#define FMA fmaf
#if defined(__AVX512F__)
#define MACHINE __m512
#define FMA_VECTOR _mm512_fmadd_ps
#define MIN _mm512_min_ps
#define MAX _mm512_max_ps
#elif defined(__AVX__)
#define MACHINE __m256
#define MIN _mm256_min_ps
#define MAX _mm256_max_ps
#ifdef __FMA__
#define FMA_VECTOR _mm256_fmadd_ps
#endif
#elif defined(__SSE2__)
#define MACHINE __m128
#define MIN _mm_min_ps
#define MAX _mm_max_ps
#endif
#include "echo_density_kernel.h"
#undef NAME
#undef REAL
#undef INT
#undef MANTISSA
#undef BIAS
#undef YMAX
#undef DEGREE
#undef LANES
#undef FMA
#undef MACHINE
#undef FMA_VECTOR
#undef MIN
#undef MAX

/* Double precision: 8 lanes; tanh(1010 ln(2) / 2) rounds to 1; degree 11. */
#define NAME(x) x##_f64
#define REAL double
#define INT int64_t
#define MANTISSA 52
#define BIAS 1023
#define YMAX 1010
#define DEGREE 11
#define LANES 8
#define FMA fma
#if defined(__AVX512F__)
#define MACHINE __m512d
#define FMA_VECTOR _mm512_fmadd_pd
#define MIN _mm512_min_pd
#define MAX _mm512_max_pd
#elif defined(__AVX__)
#define MACHINE __m256d
#define MIN _mm256_min_pd
#define MAX _mm256_max_pd
#ifdef __FMA__
#define FMA_VECTOR _mm256_fmadd_pd
#endif
#elif defined(__SSE2__)
#define MACHINE __m128d
#define MIN _mm_min_pd
#define MAX _mm_max_pd
#endif
#include "echo_density_kernel.h"
