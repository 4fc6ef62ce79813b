/*
 * Accuracy and special-value test for the vectorised math of the level this
 * is built for (x86-64: src/kernels/vmath/avx2.h, whose lanes AVX-512 repeats
 * bit for bit; aarch64: vmath/neon.h, as pairs of 4-lane vectors), plus a
 * rough throughput figure. Both run 8 floats per call through the names below.
 *
 *   gcc -O2 -mavx2 -mfma -Isrc/kernels tests/c/test_vmath.c -lm && ./a.out
 *   aarch64-linux-gnu-gcc -O2 -Isrc/kernels tests/c/test_vmath.c -lm
 *
 * Compares the sigmoid / tanh with double-precision libm
 * (absolute error, bound 1e-6) and the exp with exp (relative error
 * over normal results, bound 1e-6) on: a dense uniform sweep of [-20, 20],
 * every float with 2^-6 <= |x| < 2 (both signs), a strided walk through every
 * finite float, and special values (+-0, denormals, +-FLT_MIN, +-FLT_MAX,
 * +-inf, NaNs of either sign and several payloads). Also requires NaN -> NaN,
 * exact saturation at +-inf, sigmoid in [0, 1], |tanh| <= 1, tanh exactly
 * odd, and a small relative error for tanh near 0.
 *
 * x86: exits 0 with "skipped: no AVX2" on a CPU without AVX2 + FMA; nothing
 * compiled for AVX2 runs before that check (NEON is baseline on aarch64).
 * Options: "--no-bench" skips timing; "--quick" (ctest under an emulator, where
 * the full run takes minutes) takes every 13th point of the sweeps.
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime under -std=c11 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The level's 8-float vector and operations. */
#if defined(__x86_64__) || defined(__i386__)
#include "vmath/avx2.h"
typedef __m256 vec8;
#define V_LD _mm256_loadu_ps
#define V_ST _mm256_storeu_ps
#define V_SET1 _mm256_set1_ps
#define V_ADD _mm256_add_ps
#define V_MUL _mm256_mul_ps
#define V_SIGMOID fs_sigmoid_ps__avx2
#define V_TANH fs_tanh_ps__avx2
#define V_EXP fs_exp_ps__avx2
#define CPU_HAS_LEVEL() (__builtin_cpu_init(), __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
#define LEVEL_NAME "AVX2"
#elif defined(__aarch64__)
#include "vmath/neon.h"
typedef fs_v8 vec8;
#define V_LD fs_v8_ld
#define V_ST fs_v8_st
#define V_SET1 fs_v8_set1
#define V_ADD fs_v8_add
#define V_MUL fs_v8_mul
#define V_SIGMOID fs_v8_sigmoid
#define V_TANH fs_v8_tanh
#define V_EXP fs_v8_exp
#define CPU_HAS_LEVEL() 1
#define LEVEL_NAME "NEON"
#else
#error "test_vmath: no vectorised math for this architecture"
#endif

#define ABS_BOUND 1e-6
#define EXP_REL_BOUND 1e-6
#define TANH_REL_BOUND 1e-6   /* tanh for 0 < |x| < 0.5 (expm1 form keeps it) */

typedef struct err_stat {
    const char *name;
    double max_err;
    float worst_x;
    unsigned long long count;
} err_stat;

static int failures;

static float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t float_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static void fail(const char *what, float x, float got)
{
    if (failures < 20)
        printf("FAIL %s: x=%a (%.9g) got %a (%.9g)\n", what, x, x, got, got);
    failures++;
}

static void note(err_stat *s, double err, float x)
{
    s->count++;
    if (err > s->max_err || err != err) {
        s->max_err = err;
        s->worst_x = x;
    }
}

static double sigmoid_ref(double x) { return 1.0 / (1.0 + exp(-x)); }

static err_stat st_sig = {"sigmoid abs", 0, 0, 0};
static err_stat st_tanh = {"tanh abs", 0, 0, 0};
static err_stat st_tanh_rel = {"tanh rel (|x|<0.5)", 0, 0, 0};
static err_stat st_exp = {"exp rel (normal results)", 0, 0, 0};

/* Checks 8 inputs against the references and the invariants. Finite and
 * infinite inputs only; NaN inputs go through check_nan. */
static void check8(const float *x)
{
    float sg[8], th[8], thn[8], ex[8], nx[8];
    for (int i = 0; i < 8; i++)
        nx[i] = -x[i];
    vec8 v = V_LD(x);
    V_ST(sg, V_SIGMOID(v));
    V_ST(th, V_TANH(v));
    V_ST(thn, V_TANH(V_LD(nx)));
    V_ST(ex, V_EXP(v));

    for (int i = 0; i < 8; i++) {
        double xd = x[i];

        double rs = sigmoid_ref(xd);
        if (!(sg[i] >= 0.0f && sg[i] <= 1.0f))
            fail("sigmoid out of [0,1] or NaN", x[i], sg[i]);
        note(&st_sig, fabs(sg[i] - rs), x[i]);

        double rt = tanh(xd);
        if (!(th[i] >= -1.0f && th[i] <= 1.0f))
            fail("tanh out of [-1,1] or NaN", x[i], th[i]);
        if (float_to_bits(thn[i]) != (float_to_bits(th[i]) ^ 0x80000000u))
            fail("tanh(-x) != -tanh(x)", x[i], thn[i]);
        note(&st_tanh, fabs(th[i] - rt), x[i]);
        if (xd != 0.0 && fabs(xd) < 0.5 && fabs(xd) >= FLT_MIN)
            note(&st_tanh_rel, fabs((th[i] - rt) / rt), x[i]);

        double re = exp(xd);
        if (re >= FLT_MIN && re <= FLT_MAX) {
            note(&st_exp, fabs((ex[i] - re) / re), x[i]);
        } else if (re > FLT_MAX) {
            /* Past ln(FLT_MAX) only +inf is acceptable, but a value within
             * rounding of the threshold may round either way. */
            if (!(ex[i] == INFINITY || (xd < 88.73 && ex[i] >= FLT_MAX * 0.9999f)))
                fail("exp overflow", x[i], ex[i]);
        } else {
            /* Denormal or zero result: absolute error within 2 denormal ulps. */
            if (!(fabs(ex[i] - re) <= 2.0 * 0x1p-149))
                fail("exp underflow", x[i], ex[i]);
        }
    }
}

static void check_buffer(const float *x, size_t n)
{
    float tmp[8];
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        check8(x + i);
    if (i < n) {
        for (size_t j = 0; j < 8; j++)
            tmp[j] = x[i + (j < n - i ? j : 0)];
        check8(tmp);
    }
}

/* Streams inputs through a small buffer so that sweeps need no big array. */
static float g_buf[4096];
static size_t g_fill;

static void push(float x)
{
    g_buf[g_fill++] = x;
    if (g_fill == sizeof g_buf / sizeof g_buf[0]) {
        check_buffer(g_buf, g_fill);
        g_fill = 0;
    }
}

static void flush(void)
{
    if (g_fill)
        check_buffer(g_buf, g_fill);
    g_fill = 0;
}

/* NaN in any lane must come out NaN in that lane and leave the others
 * untouched. */
static void check_nan(void)
{
    const uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u,
                             0x7fffffffu, 0xffffffffu, 0x7fa00000u, 0x7fc12345u};
    const float base[8] = {-3.0f, -1.0f, -0.25f, 0.0f, 0.5f, 2.0f, 7.0f, 30.0f};
    for (size_t k = 0; k < sizeof nans / sizeof nans[0]; k++) {
        for (int lane = 0; lane < 8; lane++) {
            float x[8], sg[8], th[8], ex[8];
            memcpy(x, base, sizeof x);
            x[lane] = bits_to_float(nans[k]);
            vec8 v = V_LD(x);
            V_ST(sg, V_SIGMOID(v));
            V_ST(th, V_TANH(v));
            V_ST(ex, V_EXP(v));
            for (int i = 0; i < 8; i++) {
                if (i == lane) {
                    if (!isnan(sg[i])) fail("sigmoid(NaN) not NaN", x[i], sg[i]);
                    if (!isnan(th[i])) fail("tanh(NaN) not NaN", x[i], th[i]);
                    if (!isnan(ex[i])) fail("exp(NaN) not NaN", x[i], ex[i]);
                } else {
                    if (fabs(sg[i] - sigmoid_ref(x[i])) > ABS_BOUND)
                        fail("sigmoid lane next to NaN", x[i], sg[i]);
                    if (fabs(th[i] - tanh(x[i])) > ABS_BOUND)
                        fail("tanh lane next to NaN", x[i], th[i]);
                }
            }
        }
    }
}

static void check_exact(const char *what, vec8 (*f)(vec8), float x, float want)
{
    float out[8];
    V_ST(out, f(V_SET1(x)));
    for (int i = 0; i < 8; i++)
        if (float_to_bits(out[i]) != float_to_bits(want)) {
            fail(what, x, out[i]);
            return;
        }
}

static vec8 sig_fn(vec8 x) { return V_SIGMOID(x); }
static vec8 tanh_fn(vec8 x) { return V_TANH(x); }
static vec8 exp_fn(vec8 x) { return V_EXP(x); }

static void check_specials(void)
{
    const float sp[] = {0.0f, -0.0f, 0x1p-149f, -0x1p-149f, 0x1.fffffcp-127f, -0x1.fffffcp-127f,
                        FLT_MIN, -FLT_MIN, FLT_MAX, -FLT_MAX, INFINITY, -INFINITY,
                        1e-30f, -1e-30f, 1e-10f, -1e-10f, 5.9604645e-8f, 1e-4f, -1e-4f,
                        9.0f, 9.5f, 10.0f, 10.5f, -10.0f, 15.0f, 16.6355324f, 17.0f,
                        20.0f, -20.0f, 86.9f, 87.0f, 87.1f, -87.0f, -87.1f,
                        87.3365479f, 88.0f, 88.3762589f, 88.7228394f, 88.7228470f, 89.0f,
                        -88.7f, -89.0f, -100.0f, -103.9f, -104.0f, -110.0f, 100.0f, 1e10f,
                        -1e10f, 1e30f, -1e30f, 0.3465736f, -0.3465736f, 0.6931472f};
    check_buffer(sp, sizeof sp / sizeof sp[0]);

    check_exact("sigmoid(-inf) == 0", sig_fn, -INFINITY, 0.0f);
    check_exact("sigmoid(+inf) == 1", sig_fn, INFINITY, 1.0f);
    check_exact("sigmoid(FLT_MAX) == 1", sig_fn, FLT_MAX, 1.0f);
    check_exact("sigmoid(0) == 0.5", sig_fn, 0.0f, 0.5f);
    check_exact("tanh(+inf) == 1", tanh_fn, INFINITY, 1.0f);
    check_exact("tanh(-inf) == -1", tanh_fn, -INFINITY, -1.0f);
    check_exact("tanh(FLT_MAX) == 1", tanh_fn, FLT_MAX, 1.0f);
    check_exact("tanh(-FLT_MAX) == -1", tanh_fn, -FLT_MAX, -1.0f);
    check_exact("tanh(0) == 0", tanh_fn, 0.0f, 0.0f);
    check_exact("tanh(-0) == -0", tanh_fn, -0.0f, -0.0f);
    check_exact("exp(+inf) == inf", exp_fn, INFINITY, INFINITY);
    check_exact("exp(-inf) == 0", exp_fn, -INFINITY, 0.0f);
    check_exact("exp(0) == 1", exp_fn, 0.0f, 1.0f);
    {
        /* sigmoid(-FLT_MAX) need only be within the bound of 0. */
        float out[8];
        V_ST(out, V_SIGMOID(V_SET1(-FLT_MAX)));
        if (!(out[0] >= 0.0f && out[0] <= ABS_BOUND))
            fail("sigmoid(-FLT_MAX) ~ 0", -FLT_MAX, out[0]);
    }
}

static int g_dense_step = 1; /* --quick: 13 */

static void sweeps(void)
{
    /* Dense uniform sweep of [-20, 20]: 4M + 1 points. */
    const long n_uniform = 4L << 20;
    for (long i = 0; i <= n_uniform; i += g_dense_step)
        push((float)(-20.0 + 40.0 * (double)i / (double)n_uniform));
    flush();

    /* Every float with 2^-6 <= |x| < 2, both signs (the region where the
     * functions bend and rounding matters most). */
    for (uint32_t u = float_to_bits(0x1p-6f); u < float_to_bits(2.0f); u += (uint32_t)g_dense_step) {
        push(bits_to_float(u));
        push(bits_to_float(u | 0x80000000u));
    }
    flush();

    /* A strided walk through every finite float of either sign, tiny to huge. */
    for (uint32_t u = 0; u < 0x7f800000u; u += 101u * (uint32_t)g_dense_step) {
        push(bits_to_float(u));
        push(bits_to_float(u | 0x80000000u));
    }
    flush();
}

static void report(const err_stat *s, double bound)
{
    int ok = s->max_err <= bound;
    printf("%-26s max %.3e at x=%-14.9g (%llu points, bound %.0e) %s\n", s->name, s->max_err,
           s->worst_x, s->count, bound, ok ? "ok" : "FAIL");
    if (!ok)
        failures++;
}

/* ---- throughput ---------------------------------------------------------- */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

#define BENCH_N 2048 /* floats, 8 KiB in + 8 KiB out: stays in L1 */
static float b_in[BENCH_N], b_out[BENCH_N];

static double bench_vec(int which)
{
    const int reps = 4000;
    double best = 1e30;
    for (int trial = 0; trial < 5; trial++) {
        double t0 = now_ns();
        for (int r = 0; r < reps; r++) {
            if (which == 0)
                for (int i = 0; i < BENCH_N; i += 8)
                    V_ST(b_out + i, V_SIGMOID(V_LD(b_in + i)));
            else if (which == 1)
                for (int i = 0; i < BENCH_N; i += 8)
                    V_ST(b_out + i, V_TANH(V_LD(b_in + i)));
            else
                for (int i = 0; i < BENCH_N; i += 8)
                    V_ST(b_out + i, V_EXP(V_LD(b_in + i)));
            __asm__ volatile("" ::: "memory");
        }
        double dt = (now_ns() - t0) / ((double)reps * BENCH_N / 8);
        if (dt < best)
            best = dt;
    }
    return best;
}

/* Latency: each call waits for the previous result. */
static double bench_latency(int which)
{
    const int iters = 2000000;
    vec8 v = V_SET1(0.3f);
    double t0 = now_ns();
    for (int i = 0; i < iters; i++) {
        if (which == 0)
            v = V_SIGMOID(v);
        else if (which == 1)
            v = V_TANH(V_ADD(v, V_SET1(0.5f)));
        else
            v = V_EXP(V_MUL(v, V_SET1(0.5f)));
    }
    double dt = (now_ns() - t0) / iters;
    float sink[8];
    V_ST(sink, v);
    __asm__ volatile("" ::"r"(sink[0]));
    return dt;
}

static double bench_scalar(int which)
{
    const int reps = 200;
    double t0 = now_ns();
    for (int r = 0; r < reps; r++) {
        for (int i = 0; i < BENCH_N; i++)
            b_out[i] = which == 0 ? 1.0f / (1.0f + expf(-b_in[i])) : tanhf(b_in[i]);
        __asm__ volatile("" ::: "memory");
    }
    return (now_ns() - t0) / ((double)reps * BENCH_N / 8);
}

static void bench(void)
{
    uint32_t s = 12345;
    for (int i = 0; i < BENCH_N; i++) {
        s = s * 1664525u + 1013904223u;
        b_in[i] = ((float)(s >> 8) / (float)(1 << 24)) * 20.0f - 10.0f;
    }
    const char *names[] = {"sigmoid", "tanh", "exp"};
    for (int w = 0; w < 3; w++) {
        double thr = bench_vec(w), lat = bench_latency(w);
        printf("bench %-8s %.2f ns per 8 floats (throughput), %.2f ns latency", names[w], thr, lat);
        if (w < 2)
            printf("; libm scalar %.1f ns per 8", bench_scalar(w));
        printf("\n");
    }
}

/* Everything that runs the level's code lives below main's CPU check. */
__attribute__((noinline)) static int run(int do_bench)
{
    check_specials();
    check_nan();
    sweeps();
    report(&st_sig, ABS_BOUND);
    report(&st_tanh, ABS_BOUND);
    report(&st_tanh_rel, TANH_REL_BOUND);
    report(&st_exp, EXP_REL_BOUND);
    if (do_bench)
        bench();
    if (failures) {
        printf("test_vmath: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_vmath: ok\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (!CPU_HAS_LEVEL()) {
        printf("skipped: no " LEVEL_NAME "\n");
        return 0;
    }
    int do_bench = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-bench") == 0)
            do_bench = 0;
        else if (strcmp(argv[i], "--quick") == 0)
            g_dense_step = 13;
    }
    return run(do_bench);
}
