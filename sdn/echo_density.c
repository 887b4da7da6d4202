/* The soft echo-density loss of sdn.echo_density in C, in single and double precision: the
 * kernel is written once, in echo_density_kernel.h, and included here once per precision
 * (exported as sdn_soft_echo_density_f32 and sdn_soft_echo_density_f64). Built by sdn/native.py
 * with the system's C compiler.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* 1 / n!: with ln(2)^n, the Taylor coefficients of 2^r. */
static const double INVERSE_FACTORIAL[] = {
    1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320, 1.0 / 362880,
    1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0, 1.0 / 87178291200.0,
};

/* Single precision: 8 lanes; tanh(115 ln(2) / 2) rounds to 1; degree 7. */
#define NAME(x) x##_f32
#define REAL float
#define INT int32_t
#define LANES 8
#define MANTISSA 23
#define BIAS 127
#define YMAX 115
#define DEGREE 7
#ifdef __AVX__
#define MIN __builtin_ia32_minps256
#define MAX __builtin_ia32_maxps256
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

/* Double precision: 4 lanes; tanh(1010 ln(2) / 2) rounds to 1; degree 13. */
#define NAME(x) x##_f64
#define REAL double
#define INT int64_t
#define LANES 4
#define MANTISSA 52
#define BIAS 1023
#define YMAX 1010
#define DEGREE 13
#ifdef __AVX__
#define MIN __builtin_ia32_minpd256
#define MAX __builtin_ia32_maxpd256
#endif
#include "echo_density_kernel.h"
