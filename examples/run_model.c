/*
 * run_model.c -- run a .fsq model on an input file, with the C library alone
 * (no Python anywhere).
 *
 *   run_model MODEL.fsq INPUT.npy OUTPUT.npy [--threads N] [--state STATE.npy]
 *
 * INPUT.npy: float32 (or float64) array, C order:
 *   [T, input_size]                  one sequence (unbatched), or
 *   [T, B, input_size]               a batch, time-major, or
 *   [B, T, input_size]               a batch, when the model was saved batch_first.
 * OUTPUT.npy: float32, the last layer's output, shaped like the input with
 * input_size replaced by directions * features (features: hidden_size, or
 * proj_size for a projected LSTM): the same array fastseq's Python layer
 * returns first. --state also writes the final hidden state h_n
 * [layers * directions, (B,) features].
 *
 * Build: CMake target `run_model` (cmake -S . -B build && cmake --build build).
 * Exit status: 0 ok, 1 error (message on stderr), 2 usage.
 */
#include "fastseq.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---------------------------------------------------------- */

static int fail(const char *what, const char *detail) {
    fprintf(stderr, "run_model: %s%s%s\n", what, detail && *detail ? ": " : "", detail ? detail : "");
    return 1;
}

static int fail_status(const char *what, fs_status st) {
    const char *detail = fs_last_error();
    return fail(what, *detail ? detail : fs_status_str(st));
}

/* Reads a whole file (the .npy inputs); the caller frees *data. */
static int read_file(const char *path, unsigned char **data, size_t *size) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    size_t len = 0, cap = 1 << 16;
    unsigned char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (got == 0) break;
        if (len == cap) {
            unsigned char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    int ok = buf && !ferror(fp);
    fclose(fp);
    if (!ok) { free(buf); return 0; }
    *data = buf;
    *size = len;
    return 1;
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- .npy (format versions 1-3, little-endian float32/float64, C order) ------ */

typedef struct npy_array {
    int ndim;
    size_t shape[8];
    size_t count;
    float *data;
} npy_array;

/* The value text after 'key': in the header dict, or NULL. */
static const char *npy_field(const char *header, const char *key) {
    char quoted[32];
    snprintf(quoted, sizeof quoted, "'%s'", key);
    const char *p = strstr(header, quoted);
    if (!p) return NULL;
    p = strchr(p + strlen(quoted), ':');
    if (!p) return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static int npy_read(const char *path, npy_array *a, char *err, size_t errlen) {
    unsigned char *buf = NULL;
    size_t size = 0;
    if (!read_file(path, &buf, &size)) {
        snprintf(err, errlen, "%s: cannot read the file", path);
        return 0;
    }
    int ok = 0;
    char header[4096];
    size_t hlen = 0, start = 0;
    if (size < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        snprintf(err, errlen, "%s: not a .npy file (save it with numpy.save)", path);
        goto done;
    }
    if (buf[6] == 1) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        start = 10;
    } else if ((buf[6] == 2 || buf[6] == 3) && size >= 12) {
        hlen = le32(buf + 8);
        start = 12;
    } else {
        snprintf(err, errlen, "%s: unsupported .npy version %d", path, buf[6]);
        goto done;
    }
    if (hlen >= sizeof header || hlen > size - start) {
        snprintf(err, errlen, "%s: .npy header is truncated or too long", path);
        goto done;
    }
    memcpy(header, buf + start, hlen);
    header[hlen] = '\0';
    const char *descr = npy_field(header, "descr"), *order = npy_field(header, "fortran_order");
    const char *shape = npy_field(header, "shape");
    int f64 = 0;
    if (descr && strncmp(descr, "'<f4'", 5) == 0) f64 = 0;
    else if (descr && strncmp(descr, "'<f8'", 5) == 0) f64 = 1;
    else {
        snprintf(err, errlen, "%s: expected a little-endian float32 or float64 array (descr '<f4' or '<f8')", path);
        goto done;
    }
    if (!order || strncmp(order, "False", 5) != 0) {
        snprintf(err, errlen, "%s: expected a C-order array (fortran_order False)", path);
        goto done;
    }
    if (!shape || *shape != '(') {
        snprintf(err, errlen, "%s: .npy header has no shape", path);
        goto done;
    }
    a->ndim = 0;
    a->count = 1;
    for (const char *p = shape + 1; *p && *p != ')';) {
        if (*p == ' ' || *p == ',') { p++; continue; }
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || a->ndim == 8 || v > 0x7fffffffull || (v && a->count > SIZE_MAX / v)) {
            snprintf(err, errlen, "%s: bad shape in the .npy header", path);
            goto done;
        }
        a->shape[a->ndim++] = (size_t)v;
        a->count *= (size_t)v;
        p = end;
    }
    const size_t item = f64 ? 8 : 4;
    if (a->count > (size - start - hlen) / item) {
        snprintf(err, errlen, "%s: the file holds fewer values than its shape says", path);
        goto done;
    }
    a->data = malloc((a->count ? a->count : 1) * sizeof(float));
    if (!a->data) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto done;
    }
    const unsigned char *src = buf + start + hlen;
    for (size_t i = 0; i < a->count; i++) {
        if (f64) {
            uint64_t bits = (uint64_t)le32(src + 8 * i) | (uint64_t)le32(src + 8 * i + 4) << 32;
            double d;
            memcpy(&d, &bits, 8);
            a->data[i] = (float)d;
        } else {
            uint32_t bits = le32(src + 4 * i);
            memcpy(&a->data[i], &bits, 4);
        }
    }
    ok = 1;
done:
    free(buf);
    return ok;
}

static int npy_write(const char *path, const float *data, const size_t *shape, int ndim) {
    char header[256];
    int n = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t count = 1;
    for (int d = 0; d < ndim; d++) {
        n += snprintf(header + n, sizeof header - (size_t)n, "%zu%s", shape[d], ndim == 1 || d + 1 < ndim ? ", " : "");
        count *= shape[d];
    }
    n += snprintf(header + n, sizeof header - (size_t)n, "), }");
    /* pad with spaces so data starts on a 64-byte boundary; the header ends in '\n' */
    while ((10 + n + 1) % 64 != 0) header[n++] = ' ';
    header[n++] = '\n';
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 0xff), (unsigned char)(n >> 8)};
    int ok = fwrite(pre, 1, 10, fp) == 10 && fwrite(header, 1, (size_t)n, fp) == (size_t)n;
    for (size_t i = 0; ok && i < count; i++) {
        uint32_t bits;
        memcpy(&bits, &data[i], 4);
        unsigned char b[4] = {(unsigned char)bits, (unsigned char)(bits >> 8), (unsigned char)(bits >> 16),
                              (unsigned char)(bits >> 24)};
        ok = fwrite(b, 1, 4, fp) == 4;
    }
    return fclose(fp) == 0 && ok;
}

/* ---- main --------------------------------------------------------------------- */

static int usage(void) {
    fprintf(stderr,
            "usage: run_model MODEL.fsq INPUT.npy OUTPUT.npy [--threads N] [--state STATE.npy]\n"
            "  INPUT.npy  float32 [T, input_size] or [T, B, input_size] ([B, T, input_size] for a\n"
            "             model saved batch_first)\n"
            "  OUTPUT.npy the output sequence, float32, input_size replaced by directions*hidden\n"
            "  --state    also write the final hidden state h_n\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *paths[3] = {NULL, NULL, NULL}, *state_path = NULL;
    int n_paths = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--state") == 0 && i + 1 < argc) state_path = argv[++i];
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return usage(), 0;
        else if (argv[i][0] == '-' || n_paths == 3) return usage();
        else paths[n_paths++] = argv[i];
    }
    if (n_paths != 3) return usage();

    void *file = NULL; /* read no further than the model file's header states */
    size_t file_size = 0;
    fs_model_desc desc;
    fs_rnn *model = NULL;
    fs_status st = fs_model_read_file(paths[0], &file, &file_size);
    if (st != FS_OK) return fail_status("cannot read the model file", st); /* the detail names the path */
    st = fs_model_inspect(file, file_size, &desc);
    if (st == FS_OK) st = fs_model_load(file, file_size, &model);
    fs_model_data_free(file);
    if (st != FS_OK) return fail_status(paths[0], st);
    if (threads > 0 && (st = fs_set_num_threads(threads)) != FS_OK) return fail_status("--threads", st);

    npy_array x = {0};
    char err[512];
    if (!npy_read(paths[1], &x, err, sizeof err)) return fs_rnn_free(model), fail(err, NULL);
    const fs_rnn_config *c = &desc.config;
    /* H: features of h -- the projection size of a projected LSTM, else hidden_size */
    const size_t I = (size_t)c->input_size, D = c->bidirectional ? 2 : 1,
                 H = (size_t)(c->proj_size ? c->proj_size : c->hidden_size);
    const size_t LD = (size_t)c->num_layers * D;
    if ((x.ndim != 2 && x.ndim != 3) || x.shape[x.ndim - 1] != I || x.count == 0) {
        snprintf(err, sizeof err, "%s: expected shape [T, %zu] or [%s, %zu] with T, B >= 1 for this %s",
                 paths[1], I, desc.batch_first ? "B, T" : "T, B", I, desc.kind);
        free(x.data);
        fs_rnn_free(model);
        return fail(err, NULL);
    }
    const int unbatched = x.ndim == 2, bf = desc.batch_first && !unbatched;
    const size_t T = bf ? x.shape[1] : x.shape[0], B = unbatched ? 1 : (bf ? x.shape[0] : x.shape[1]);
    float *y = malloc(T * B * D * H * sizeof(float)), *h_n = malloc(LD * B * H * sizeof(float));
    if (!y || !h_n) return fail("out of memory", NULL);

    fs_seq_args a;
    memset(&a, 0, sizeof a);
    a.seq_len = (int32_t)T;
    a.batch = (int32_t)B;
    a.batch_first = bf;
    a.x = x.data;
    a.x_count = x.count;
    a.y = y;
    a.y_count = T * B * D * H;
    a.h_n = h_n;
    a.h_n_count = LD * B * H;
    st = fs_rnn_forward(model, &a);
    int rc = 0;
    if (st != FS_OK) {
        rc = fail_status("forward", st);
    } else {
        size_t shape[3];
        int nd = x.ndim;
        memcpy(shape, x.shape, sizeof shape);
        shape[nd - 1] = D * H;
        if (!npy_write(paths[2], y, shape, nd)) rc = fail(paths[2], "cannot write the output");
        size_t hshape[3] = {LD, B, H};
        if (unbatched) hshape[1] = H;
        if (!rc && state_path && !npy_write(state_path, h_n, hshape, unbatched ? 2 : 3))
            rc = fail(state_path, "cannot write the state");
    }
    free(x.data);
    free(y);
    free(h_n);
    fs_rnn_free(model);
    return rc;
}
