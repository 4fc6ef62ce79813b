/*
 * read_bandwidth -- how fast one core streams weights at each cache level: the
 * floor of a batch-1 step, which reads every recurrent weight once.
 *
 *   read_bandwidth          (x86 with AVX2 + FMA; build with -O2 -mavx2 -mfma)
 *
 * For buffers of 32 KB to 16 MB, the best of many passes of a loop shaped
 * like the batch-1 GEMV: two weight streams, 8 independent FMA chains, 256
 * bytes per iteration in 256-bit loads, and 512 bytes in 512-bit loads where
 * the CPU has AVX-512 (the fastseq level there). Prints GB/s per size.
 */
#define _POSIX_C_SOURCE 199309L
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

/* n floats, a multiple of 128, as two halves read side by side. */
static float pass(const float *b, size_t n, const float *a) {
    __m256 acc[8];
    for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
    const float *b2 = b + n / 2;
    for (size_t i = 0; i < n / 2; i += 32) {
        const __m256 a0 = _mm256_broadcast_ss(a + (i / 32) % 64), a1 = _mm256_broadcast_ss(a + (i / 32 + 1) % 64);
        for (int v = 0; v < 4; v++) {
            acc[v] = _mm256_fmadd_ps(v < 2 ? a0 : a1, _mm256_load_ps(b + i + 8 * v), acc[v]);
            acc[4 + v] = _mm256_fmadd_ps(v < 2 ? a0 : a1, _mm256_load_ps(b2 + i + 8 * v), acc[4 + v]);
        }
    }
    __m256 s = acc[0];
    for (int i = 1; i < 8; i++) s = _mm256_add_ps(s, acc[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0];
}

/* The same with 512-bit loads: 512 bytes an iteration. */
__attribute__((target("avx512f"))) static float pass512(const float *b, size_t n, const float *a) {
    __m512 acc[8];
    for (int i = 0; i < 8; i++) acc[i] = _mm512_setzero_ps();
    const float *b2 = b + n / 2;
    for (size_t i = 0; i < n / 2; i += 64) {
        const __m512 a0 = _mm512_set1_ps(a[(i / 64) % 64]), a1 = _mm512_set1_ps(a[(i / 64 + 1) % 64]);
        for (int v = 0; v < 4; v++) {
            acc[v] = _mm512_fmadd_ps(v < 2 ? a0 : a1, _mm512_load_ps(b + i + 16 * v), acc[v]);
            acc[4 + v] = _mm512_fmadd_ps(v < 2 ? a0 : a1, _mm512_load_ps(b2 + i + 16 * v), acc[4 + v]);
        }
    }
    __m512 s = acc[0];
    for (int i = 1; i < 8; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

/* Best GB/s of passes over b (bytes long). */
static double best_gbs(float (*fn)(const float *, size_t, const float *), const float *b, size_t bytes,
                       const float *a) {
    const int reps = (int)(2e9 / bytes) + 20;
    double best = 1e30;
    volatile float sink = 0.0f;
    for (int r = 0; r < reps; r++) {
        const double t0 = now_ns();
        sink += fn(b, bytes / sizeof(float), a);
        const double t = now_ns() - t0;
        if (t < best) best = t;
    }
    (void)sink;
    return bytes / best;
}

int main(void) {
    static const size_t kb[] = {32, 256, 336, 1024, 1536, 4096, 16384};
    float a[65];
    for (int i = 0; i < 65; i++) a[i] = 1e-3f;
    for (size_t s = 0; s < sizeof kb / sizeof kb[0]; s++) {
        const size_t bytes = kb[s] * 1024, n = bytes / sizeof(float);
        float *b = aligned_alloc(64, bytes);
        if (!b) return 1;
        for (size_t i = 0; i < n; i++) b[i] = 1.0f;
        printf("%6zu KB: %6.1f GB/s 256-bit", kb[s], best_gbs(pass, b, bytes, a));
        if (__builtin_cpu_supports("avx512f")) printf(", %6.1f GB/s 512-bit", best_gbs(pass512, b, bytes, a));
        printf("\n");
        free(b);
    }
    return 0;
}
