/* Quantised weights: sizes, packing a PyTorch matrix into the quantised
 * layout of kernels.h and back, and fs_rnn_quantize. The numerics are
 * docs/quantization.md's: int8 symmetric per output row (scale = max|w| /
 * 127), int4 symmetric per group of `group` inputs and row (scale = max|w| /
 * 7), q = w / scale rounded to nearest, ties to even; bf16 the upper 16 bits
 * of fp32 rounded to nearest even. */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "rnn.h"

const char *fs_dtype_name(fs_dtype dtype) {
    static const char *const names[] = {"f32", "int8", "int4", "bf16"};
    /* unsigned: arm-none-eabi's enums are short and unsigned, where (int)dtype >= 0 warns */
    return (unsigned)dtype <= (unsigned)FS_DTYPE_BF16 ? names[dtype] : "unknown";
}

int fs__mat_sizes(int32_t dtype, size_t group, size_t cols, size_t k, size_t *bytes, size_t *scales) {
    size_t n;
    *scales = 0;
    switch (dtype) {
    case FS_DTYPE_INT8: *scales = cols; return fs__mul(cols, FS_Q8_ROUND(k), bytes);
    case FS_DTYPE_BF16: return fs__mul(cols, k, &n) && fs__mul(n, 2, bytes);
    case FS_DTYPE_INT4: return fs__mul(cols, FS_Q4_ROUND(k) / 2, bytes) && fs__mul(cols, (k + group - 1) / group, scales);
    default: return fs__mul(cols, k, &n) && fs__mul(n, sizeof(float), bytes);
    }
}

static uint16_t f32_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if (isnan(f)) return (uint16_t)((bits >> 16) | 0x40); /* quiet, sign kept */
    return (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

static float bf16_to_f32(uint16_t v) {
    const uint32_t bits = (uint32_t)v << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* The symmetric scale of w[0, n) for levels [-qmax, qmax], and q of one value. */
static float scale_of(const float *w, size_t n, float qmax) {
    float amax = 0.0f;
    for (size_t i = 0; i < n; i++) amax = fabsf(w[i]) > amax ? fabsf(w[i]) : amax;
    return amax / qmax;
}
static int quant(float w, float s, int qmax) {
    if (s == 0.0f) return 0;
    const long q = lrintf(w / s);
    return q > qmax ? qmax : q < -qmax ? -qmax : (int)q;
}

/* Where column (g, j) of a [g_count*h] matrix sits: its block and column in it. */
typedef struct colpos { size_t jb, col, width; } colpos;
static colpos pos_of(size_t g_count, size_t g, size_t j) {
    return (colpos){j / FS_NB, g * FS_NB + j % FS_NB, g_count * FS_NB};
}
/* The byte of input kk of that column in the int8 dot layout (kernels.h). */
static size_t q8_at(colpos p, size_t k, size_t kk) {
    return (p.jb * FS_Q8_ROUND(k) + kk / 4 * 4) * p.width + p.col * 4 + kk % 4;
}
/* The byte of input kk in the int4 dot layout, and the shift of its nibble. */
static size_t q4_at(colpos p, size_t k, size_t kk) {
    return (p.jb * FS_Q4_ROUND(k) / 2 + kk / 8 * 4) * p.width + p.col * 4 + kk % 4;
}
static int q4_shift(size_t kk) { return (int)(kk / 4 % 2) * 4; }
static void q4_put(uint8_t *base, colpos p, size_t k, size_t kk, int nibble) {
    uint8_t *byte = base + q4_at(p, k, kk);
    *byte = (uint8_t)((*byte & ~(15 << q4_shift(kk))) | nibble << q4_shift(kk));
}
static int q4_get(const uint8_t *base, colpos p, size_t k, size_t kk) { return (base[q4_at(p, k, kk)] >> q4_shift(kk)) & 15; }

void fs__quant_pack(int32_t dtype, size_t group, const float *w, void *base, float *scale, size_t g_count,
                    size_t h, size_t k) {
    const size_t groups = dtype == FS_DTYPE_INT4 ? (k + group - 1) / group : 0;
    for (size_t g = 0; g < g_count; g++)
        for (size_t j = 0; j < h; j++) {
            const float *row = w + (g * h + j) * k;
            const colpos p = pos_of(g_count, g, j);
            if (dtype == FS_DTYPE_INT8) {
                const float s = scale_of(row, k, 127.0f);
                scale[p.jb * p.width + p.col] = s;
                for (size_t kk = 0; kk < k; kk++) ((uint8_t *)base)[q8_at(p, k, kk)] = (uint8_t)(quant(row[kk], s, 127) + 128);
            } else if (dtype == FS_DTYPE_INT4) {
                for (size_t gr = 0; gr < groups; gr++) {
                    const size_t k0 = gr * group, n = k - k0 < group ? k - k0 : group;
                    const float s = scale_of(row + k0, n, 7.0f);
                    scale[(p.jb * groups + gr) * p.width + p.col] = s;
                    for (size_t kk = k0; kk < k0 + n; kk++) q4_put(base, p, k, kk, quant(row[kk], s, 7) + 8);
                }
                for (size_t kk = k; kk < FS_Q4_ROUND(k); kk++) q4_put(base, p, k, kk, 0); /* padding */
            } else {
                uint16_t *col = (uint16_t *)base + p.jb * k * p.width + p.col;
                for (size_t kk = 0; kk < k; kk++) col[kk * p.width] = f32_to_bf16(row[kk]);
            }
        }
}

void fs__quant_unpack(int32_t dtype, size_t group, const void *base, const float *scale, size_t g_count,
                      size_t h, size_t k, float *w) {
    const size_t groups = dtype == FS_DTYPE_INT4 ? (k + group - 1) / group : 0;
    for (size_t g = 0; g < g_count; g++)
        for (size_t j = 0; j < h; j++) {
            float *row = w + (g * h + j) * k;
            const colpos p = pos_of(g_count, g, j);
            for (size_t kk = 0; kk < k; kk++) {
                if (dtype == FS_DTYPE_INT8) {
                    const int q = ((const uint8_t *)base)[q8_at(p, k, kk)] - 128;
                    row[kk] = scale[p.jb * p.width + p.col] * (float)q;
                } else if (dtype == FS_DTYPE_INT4) {
                    const int q = q4_get(base, p, k, kk) - 8;
                    row[kk] = scale[(p.jb * groups + kk / group) * p.width + p.col] * (float)q;
                } else {
                    row[kk] = bf16_to_f32(((const uint16_t *)base)[(p.jb * k + kk) * p.width + p.col]);
                }
            }
        }
}

fs_status fs_rnn_quantize(const fs_rnn *src, int32_t dtype, int32_t group_size, fs_rnn **out) {
    fs__clear_error();
    if (!src || !out) return fs__fail(FS_ERR_NULL_ARG, "src and out must not be NULL");
    *out = NULL;
    if (src->cfg.dtype != FS_DTYPE_F32)
        return fs__fail(FS_ERR_UNSUPPORTED, "src: expected an fp32 model, got one of dtype %s (quantise the fp32 original)",
                        fs_dtype_name((fs_dtype)src->cfg.dtype));
    if (dtype == FS_DTYPE_F32)
        return fs__fail(FS_ERR_INVALID_ARG, "dtype: expected 1 (int8), 2 (int4) or 3 (bf16), got 0 (f32)");
    fs_rnn_config cfg = src->cfg;
    cfg.dtype = dtype;
    cfg.group_size = group_size;
    fs_rnn *dst = NULL;
    fs_status st = fs_rnn_create(&cfg, &dst);
    if (st != FS_OK) return st;
    size_t most = 1, rows, cols;
    for (int32_t l = 0; l < cfg.num_layers; l++)
        for (int32_t d = 0; d < (int32_t)src->dirs; d++)
            for (int p = 0; p < FS_PARAM_COUNT; p++)
                if (fs_rnn_param_shape(src, l, d, (fs_param)p, &rows, &cols) == FS_OK && rows * cols > most)
                    most = rows * cols;
    float *buf = fs__alloc(most * sizeof(float));
    if (!buf) {
        fs_rnn_free(dst);
        return fs__fail(FS_ERR_NOMEM, "out of memory for a %zu-float parameter buffer", most);
    }
    for (int32_t l = 0; l < cfg.num_layers && st == FS_OK; l++)
        for (int32_t d = 0; d < (int32_t)src->dirs && st == FS_OK; d++)
            for (int p = 0; p < FS_PARAM_COUNT && st == FS_OK; p++) {
                if (fs_rnn_param_shape(src, l, d, (fs_param)p, &rows, &cols) != FS_OK) continue;
                st = fs_rnn_get_param(src, l, d, (fs_param)p, buf, rows * cols);
                if (st == FS_OK) st = fs_rnn_set_param(dst, l, d, (fs_param)p, buf, rows * cols);
            }
    fs__free(buf);
    if (st != FS_OK) {
        fs_rnn_free(dst);
        return st;
    }
    fs__clear_error();
    *out = dst;
    return FS_OK;
}

/* ---- the stored ("raw") form of a quantised matrix (.fsq tensors) ---- */

static void put_le32(unsigned char *p, float f) {
    uint32_t v;
    memcpy(&v, &f, 4);
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static float get_le32(const unsigned char *p) {
    const uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &v, 4);
    return f;
}

size_t fs__raw_scales_per_row(int32_t dtype, size_t group, size_t k) {
    return dtype == FS_DTYPE_INT8 ? 1 : dtype == FS_DTYPE_INT4 ? (k + group - 1) / group : 0;
}
size_t fs__raw_row_bytes(int32_t dtype, size_t k) {
    return dtype == FS_DTYPE_INT8 ? k : dtype == FS_DTYPE_INT4 ? (k + 1) / 2 : 2 * k;
}

int fs__quant_raw(int32_t dtype, size_t group, void *base, float *scale, size_t g_count, size_t h, size_t k,
                  unsigned char *scales, unsigned char *codes, int mode) {
    const int to_raw = mode == FS_RAW_READ;
    const size_t kp = (k + 1) / 2, spr = fs__raw_scales_per_row(dtype, group, k), rb = fs__raw_row_bytes(dtype, k);
    for (size_t r = 0; mode == FS_RAW_CHECK && r < g_count * h; r++) {
        for (size_t i = 0; i < spr; i++) {
            const float s = get_le32(scales + (r * spr + i) * 4);
            if (!isfinite(s) || s < 0.0f) return 0;
        }
        for (size_t b = 0; b < rb; b++) {
            const unsigned char v = codes[r * rb + b];
            const int high_used = b * 2 + 1 < k;
            if ((dtype == FS_DTYPE_INT8 && v == 0x80) ||
                (dtype == FS_DTYPE_INT4 && ((v & 15) == 0 || (high_used ? v >> 4 == 0 : v >> 4 != 0))) ||
                (dtype == FS_DTYPE_BF16 && b % 2 == 1 && (v & 0x7F) == 0x7F && (codes[r * rb + b - 1] & 0x80)))
                return 0;
        }
    }
    if (mode == FS_RAW_CHECK) return 1;
    for (size_t g = 0; g < g_count; g++)
        for (size_t j = 0; j < h; j++) {
            const size_t r = g * h + j;
            const colpos p = pos_of(g_count, g, j);
            unsigned char *row = codes + r * rb;
            for (size_t i = 0; i < spr; i++) {
                float *s = dtype == FS_DTYPE_INT8 ? &scale[p.jb * p.width + p.col]
                                                  : &scale[(p.jb * spr + i) * p.width + p.col];
                if (to_raw) put_le32(scales + (r * spr + i) * 4, *s);
                else *s = get_le32(scales + (r * spr + i) * 4);
            }
            for (size_t kk = 0; kk < k; kk++) {
                if (dtype == FS_DTYPE_INT8) {
                    uint8_t *q = (uint8_t *)base + q8_at(p, k, kk); /* stored q + 128, raw q */
                    if (to_raw) row[kk] = (unsigned char)(*q ^ 0x80u);
                    else *q = (uint8_t)(row[kk] ^ 0x80u);
                } else if (dtype == FS_DTYPE_INT4) {
                    const int shift = (int)(kk % 2) * 4; /* raw: k = 2 b in byte b's low nibble, 2 b + 1 in its high one */
                    if (to_raw) row[kk / 2] = (unsigned char)((row[kk / 2] & ~(15 << shift)) | q4_get(base, p, k, kk) << shift);
                    else q4_put(base, p, k, kk, (row[kk / 2] >> shift) & 15);
                } else {
                    uint16_t *q = (uint16_t *)base + (p.jb * k + kk) * p.width + p.col;
                    if (to_raw) row[2 * kk] = (unsigned char)*q, row[2 * kk + 1] = (unsigned char)(*q >> 8);
                    else *q = (uint16_t)(row[2 * kk] | row[2 * kk + 1] << 8);
                }
            }
            if (to_raw && dtype == FS_DTYPE_INT4 && k % 2) row[kp - 1] &= 15; /* the unused high nibble: 0 */
        }
    return 1;
}
