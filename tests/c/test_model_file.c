/*
 * test_model_file.c -- the .fsq loader (fs_model_inspect / fs_model_load),
 * used the way a C caller would.
 *
 *   test_model_file                 self-contained checks (what ctest runs)
 *   test_model_file FILE.fsq ...    also cut and flip the bytes of these files
 *                                   (sequence layers or tree networks)
 *
 * Files are written here by a small writer made from docs/fsq-format.md alone
 * (with its own bitwise CRC-32), so the loader is checked against the spec, not
 * against itself. Then every truncation and a flip of every byte must come back
 * as an error status -- never FS_OK, never a crash -- and crafted files with
 * valid checksums but absurd lengths and shapes must be rejected. Each mutated
 * file is handed to the loader in a heap block of exactly its size, so a build
 * with -fsanitize=address flags any read past the end.
 *
 * Exit status 0 when every check passes; each failure is printed.
 */
#include "fastseq.h"
#include "check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- writer */

typedef struct buf {
    unsigned char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put32(buf *b, uint32_t v) {
    unsigned char c[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put(b, c, 4);
}

static void put64(buf *b, uint64_t v) {
    put32(b, (uint32_t)v);
    put32(b, (uint32_t)(v >> 32));
}

static void putstr(buf *b, const char *s) {
    put32(b, (uint32_t)strlen(s));
    put(b, s, strlen(s));
}

static void set32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void set64(unsigned char *p, uint64_t v) {
    set32(p, (uint32_t)v);
    set32(p + 4, (uint32_t)(v >> 32));
}

/* Bitwise CRC-32 (IEEE, reflected), independent of the library's. */
static uint32_t crc32(uint32_t crc, const unsigned char *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* Starts a section of `type`; returns its offset (patched by end_section). */
static size_t begin_section(buf *b, uint32_t type) {
    size_t at = b->n;
    put32(b, type);
    put32(b, 0);
    put64(b, 0);
    put32(b, 0);
    put32(b, 0);
    return at;
}

static void seal_section(buf *b, size_t at) {
    set64(b->p + at + 8, (uint64_t)(b->n - at - 24));
    set32(b->p + at + 20, crc32(crc32(0, b->p + at, 20), b->p + at + 24, b->n - at - 24));
}

/* Recomputes the checksum of the (complete) section at `at`, keeping its length. */
static void reseal(buf *b, size_t at) {
    uint64_t len = 0;
    for (int k = 7; k >= 0; k--) len = len << 8 | b->p[at + 8 + k];
    set32(b->p + at + 20, crc32(crc32(0, b->p + at, 20), b->p + at + 24, (size_t)len));
}

static void seal_file(buf *b, uint32_t sections) {
    set32(b->p + 12, sections);
    set64(b->p + 16, (uint64_t)b->n);
    set32(b->p + 28, crc32(0, b->p, 28));
}

static const char *kind_of(fs_cell cell) {
    return cell == FS_CELL_LSTM ? "LSTM" : cell == FS_CELL_GRU ? "GRU" : "RNN";
}

/* Writes `model` as a .fsq file (format version 1), tensors in state_dict order. */
static buf write_model(const fs_rnn *model, int batch_first) {
    static const char *names[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
    fs_rnn_config c;
    fs_rnn_get_config(model, &c);
    buf b = {NULL, 0, 0};
    const unsigned char magic[8] = {0x89, 'F', 'S', 'Q', '\r', '\n', 0x1a, '\n'};
    put(&b, magic, 8);
    put32(&b, 1);
    put32(&b, 0);
    put64(&b, 0);
    put32(&b, 0);
    put32(&b, 0);
    uint32_t sections = 1;

    size_t at = begin_section(&b, 1);
    putstr(&b, kind_of(c.cell));
    const int is_rnn = c.cell == FS_CELL_RNN_TANH || c.cell == FS_CELL_RNN_RELU;
    put32(&b, is_rnn ? 7 : 6);
    const struct { const char *k; int32_t v; } ints[6] = {
        {"input_size", c.input_size}, {"hidden_size", c.hidden_size}, {"num_layers", c.num_layers},
        {"bias", c.bias}, {"batch_first", batch_first}, {"bidirectional", c.bidirectional}};
    for (int i = 0; i < 6; i++) {
        putstr(&b, ints[i].k);
        put32(&b, 1);
        put32(&b, (uint32_t)ints[i].v);
    }
    if (is_rnn) {
        putstr(&b, "nonlinearity");
        put32(&b, 3);
        putstr(&b, c.cell == FS_CELL_RNN_RELU ? "relu" : "tanh");
    }
    seal_section(&b, at);

    const int dirs = c.bidirectional ? 2 : 1;
    for (int l = 0; l < c.num_layers; l++)
        for (int d = 0; d < dirs; d++)
            for (int p = 0; p < (c.bias ? 4 : 2); p++) {
                size_t rows, cols;
                fs_rnn_param_shape(model, l, d, (fs_param)p, &rows, &cols);
                float *w = malloc(rows * cols * sizeof(float));
                fs_rnn_get_param(model, l, d, (fs_param)p, w, rows * cols);
                char name[64];
                snprintf(name, sizeof name, "%s_l%d%s", names[p], l, d ? "_reverse" : "");
                at = begin_section(&b, 2);
                putstr(&b, name);
                put32(&b, 1);             /* float32 */
                put32(&b, p < 2 ? 2 : 1); /* ndim */
                put64(&b, rows);
                if (p < 2) put64(&b, cols);
                const size_t off_at = b.n;
                put64(&b, 0);
                while (b.n % 64 != 0) put(&b, "", 1);
                set64(b.p + off_at, (uint64_t)(b.n - (at + 24)));
                for (size_t i = 0; i < rows * cols; i++) {
                    uint32_t bits;
                    memcpy(&bits, &w[i], 4);
                    put32(&b, bits);
                }
                seal_section(&b, at);
                sections++;
                free(w);
            }
    seal_file(&b, sections);
    return b;
}

/* ---------------------------------------------------------------- helpers */

static fs_rnn *random_model(fs_cell cell, int I, int H, int L, int bidir, int bias) {
    const fs_rnn_config cfg = make_config(cell, I, H, L, bidir, bias);
    fs_rnn *m = NULL;
    if (fs_rnn_create(&cfg, &m) != FS_OK) {
        fprintf(stderr, "fs_rnn_create: %s\n", fs_last_error());
        exit(2);
    }
    for (int l = 0; l < L; l++)
        for (int d = 0; d < (bidir ? 2 : 1); d++)
            for (int p = 0; p < (bias ? 4 : 2); p++) {
                size_t rows, cols;
                fs_rnn_param_shape(m, l, d, (fs_param)p, &rows, &cols);
                float *w = malloc(rows * cols * sizeof(float));
                for (size_t i = 0; i < rows * cols; i++) w[i] = urand(0.5f);
                fs_rnn_set_param(m, l, d, (fs_param)p, w, rows * cols);
                free(w);
            }
    return m;
}

/* Loads a copy of bytes in a heap block of exactly n bytes (so ASan sees overreads). */
static fs_status load_exact(const unsigned char *bytes, size_t n, fs_rnn **out) {
    unsigned char *copy = malloc(n ? n : 1);
    if (n) memcpy(copy, bytes, n);
    fs_model_desc desc;
    fs_status st = fs_model_inspect(copy, n, &desc);
    fs_status st2 = fs_model_load(copy, n, out);
    /* the optional-section readers validate the same file first */
    static fs_model_entry entries[FS_MODEL_MAX_ENTRIES];
    fs_model_head_desc head;
    size_t n_entries = 0;
    fs_status st3 = fs_model_head(copy, n, &head, NULL, 0, NULL, 0);
    fs_status st4 = fs_model_metadata(copy, n, entries, FS_MODEL_MAX_ENTRIES, &n_entries);
    fs_tree *tree = NULL;
    fs_status st5 = fs_tree_load(copy, n, &tree); /* a file that is not a tree: FS_ERR_UNSUPPORTED */
    fs_tree_free(tree);
    free(copy);
    if (st == FS_OK && desc.model_type == FS_MODEL_TREE) { /* a tree network: fs_tree_load's, not fs_model_load's */
        CHECK(st2 == FS_ERR_UNSUPPORTED && st5 == FS_OK, "a tree file: fs_model_load -> %d, fs_tree_load -> %d",
              (int)st2, (int)st5);
        return st5;
    }
    CHECK(st == st2, "fs_model_inspect -> %d but fs_model_load -> %d", (int)st, (int)st2);
    CHECK(st5 == (st == FS_OK ? FS_ERR_UNSUPPORTED : st), "inspect -> %d, fs_tree_load -> %d", (int)st, (int)st5);
    CHECK(st == FS_OK || (st3 == st && st4 == st), "inspect -> %d, head -> %d, metadata -> %d", (int)st,
          (int)st3, (int)st4);
    return st2;
}

static int is_file_error(fs_status st) {
    return st == FS_ERR_FORMAT || st == FS_ERR_CHECKSUM || st == FS_ERR_VERSION || st == FS_ERR_UNSUPPORTED;
}

/* Every cut and every flipped byte must be an error, never FS_OK or a crash. */
static void mutate_all(const char *label, const unsigned char *bytes, size_t n) {
    int bad = 0;
    for (size_t cut = 0; cut < n; cut++) {
        fs_rnn *m = NULL;
        fs_status st = load_exact(bytes, cut, &m);
        if (!is_file_error(st) || m) {
            if (bad++ < 5) CHECK(0, "%s cut to %zu bytes: status %d (%s), model %p", label, cut, (int)st, fs_last_error(), (void *)m);
            fs_rnn_free(m);
        }
    }
    unsigned char *copy = malloc(n);
    static const unsigned char flips[3] = {0x01, 0x80, 0xff};
    for (size_t at = 0; at < n; at++)
        for (int f = 0; f < 3; f++) {
            memcpy(copy, bytes, n);
            copy[at] ^= flips[f];
            fs_rnn *m = NULL;
            fs_status st = load_exact(copy, n, &m);
            if (!is_file_error(st) || m) {
                if (bad++ < 5)
                    CHECK(0, "%s byte %zu ^ 0x%02x: status %d (%s)", label, at, flips[f], (int)st, fs_last_error());
                fs_rnn_free(m);
            }
        }
    free(copy);
    g_checks++;
    if (bad) g_failures++, fprintf(stderr, "FAIL %s: %d mutations were not rejected\n", label, bad);
}

static fs_status load_status(const buf *b) {
    fs_rnn *m = NULL;
    fs_status st = load_exact(b->p, b->n, &m);
    fs_rnn_free(m);
    return st;
}

/* Offset of section `index` (0: config) in a file written by write_model. */
static size_t section_at(const buf *b, uint32_t index) {
    size_t at = 32;
    for (uint32_t i = 0; i < index; i++) {
        uint64_t len = 0;
        for (int k = 7; k >= 0; k--) len = len << 8 | b->p[at + 8 + k];
        at += 24 + (size_t)len;
    }
    return at;
}

/* ---------------------------------------------------------------- checks */

static void check_round_trip(fs_cell cell, int I, int H, int L, int bidir, int bias) {
    fs_rnn *m = random_model(cell, I, H, L, bidir, bias);
    buf b = write_model(m, 1);
    fs_model_desc desc;
    fs_status st = fs_model_inspect(b.p, b.n, &desc);
    CHECK(st == FS_OK, "%s: inspect -> %d: %s", kind_of(cell), (int)st, fs_last_error());
    if (st == FS_OK) {
        CHECK(strcmp(desc.kind, fs_cell_name(cell)) == 0, "kind %s", desc.kind);
        CHECK(desc.config.cell == cell && desc.config.input_size == I && desc.config.hidden_size == H &&
                  desc.config.num_layers == L && desc.config.bidirectional == bidir && desc.config.bias == bias,
              "%s: config does not round-trip", kind_of(cell));
        CHECK(desc.batch_first == 1 && desc.format_version == 1, "batch_first / version");
        CHECK(desc.tensor_count == (uint32_t)(L * (bidir ? 2 : 1) * (bias ? 4 : 2)), "tensor_count %u",
              (unsigned)desc.tensor_count);
    }
    fs_rnn *loaded = NULL;
    st = fs_model_load(b.p + 0, b.n, &loaded);
    CHECK(st == FS_OK && loaded, "%s: load -> %d: %s", kind_of(cell), (int)st, fs_last_error());
    if (loaded) {
        int same = 1;
        for (int l = 0; l < L; l++)
            for (int d = 0; d < (bidir ? 2 : 1); d++)
                for (int p = 0; p < (bias ? 4 : 2); p++) {
                    size_t rows, cols;
                    fs_rnn_param_shape(m, l, d, (fs_param)p, &rows, &cols);
                    float *w1 = malloc(rows * cols * 4), *w2 = malloc(rows * cols * 4);
                    fs_rnn_get_param(m, l, d, (fs_param)p, w1, rows * cols);
                    fs_rnn_get_param(loaded, l, d, (fs_param)p, w2, rows * cols);
                    same &= memcmp(w1, w2, rows * cols * 4) == 0;
                    free(w1);
                    free(w2);
                }
        CHECK(same, "%s: weights differ after a round trip", kind_of(cell));
        /* and it runs exactly like the original */
        const int T = 5, B = 2, D = bidir ? 2 : 1;
        float *x = malloc((size_t)T * B * I * 4), *y1 = malloc((size_t)T * B * D * H * 4),
              *y2 = malloc((size_t)T * B * D * H * 4);
        for (int i = 0; i < T * B * I; i++) x[i] = urand(0.5f);
        fs_seq_args a;
        memset(&a, 0, sizeof a);
        a.seq_len = T, a.batch = B, a.x = x, a.x_count = (size_t)T * B * I;
        a.y = y1, a.y_count = (size_t)T * B * D * H;
        CHECK(fs_rnn_forward(m, &a) == FS_OK, "forward: %s", fs_last_error());
        a.y = y2;
        CHECK(fs_rnn_forward(loaded, &a) == FS_OK, "forward: %s", fs_last_error());
        CHECK(memcmp(y1, y2, (size_t)T * B * D * H * 4) == 0, "%s: loaded model runs differently", kind_of(cell));
        free(x);
        free(y1);
        free(y2);
        fs_rnn_free(loaded);
    }
    /* an unaligned copy of the buffer loads the same */
    unsigned char *shifted = malloc(b.n + 1);
    memcpy(shifted + 1, b.p, b.n);
    loaded = NULL;
    CHECK(fs_model_load(shifted + 1, b.n, &loaded) == FS_OK, "unaligned buffer: %s", fs_last_error());
    fs_rnn_free(loaded);
    free(shifted);
    free(b.p);
    fs_rnn_free(m);
}

static void check_crafted(void) {
    fs_rnn *m = random_model(FS_CELL_LSTM, 3, 5, 2, 1, 1);
    buf good = write_model(m, 0);
    fs_rnn_free(m);
    buf b = {malloc(good.n + 4096), good.n, good.n + 4096};
    const size_t t0 = section_at(&good, 1); /* weight_ih_l0 */
    const size_t name_len = strlen("weight_ih_l0");
    const size_t dims_at = t0 + 24 + 4 + name_len + 8; /* after name, dtype, ndim */
#define RESET() (memcpy(b.p, good.p, good.n), b.n = good.n)
#define EXPECT(status, what)                                                                     \
    do {                                                                                         \
        fs_status s_ = load_status(&b);                                                          \
        CHECK(s_ == (status), "%s: status %d (%s), expected %d", what, (int)s_, fs_last_error(), \
              (int)(status));                                                                    \
    } while (0)

    RESET();
    EXPECT(FS_OK, "unmodified");

    RESET(); /* a section length of 2^60 (caught before any checksum is computed) */
    set64(b.p + t0 + 8, (uint64_t)1 << 60);
    EXPECT(FS_ERR_FORMAT, "section length 2^60");

    RESET(); /* dimensions whose product overflows 64 bits */
    set64(b.p + dims_at, 0x7fffffffull);
    set64(b.p + dims_at + 8, 0x7fffffffull);
    reseal(&b, t0);
    EXPECT(FS_ERR_FORMAT, "shape product overflow");

    RESET(); /* a dimension above the limit */
    set64(b.p + dims_at, (uint64_t)1 << 62);
    reseal(&b, t0);
    EXPECT(FS_ERR_FORMAT, "dimension 2^62");

    RESET(); /* a file size beyond the buffer */
    set64(b.p + 16, (uint64_t)1 << 60);
    set32(b.p + 28, crc32(0, b.p, 28));
    EXPECT(FS_ERR_FORMAT, "file size 2^60");

    RESET(); /* a section count far beyond the sections present */
    set32(b.p + 12, 4000);
    set32(b.p + 28, crc32(0, b.p, 28));
    EXPECT(FS_ERR_FORMAT, "section count 4000");

    RESET(); /* a newer format version */
    set32(b.p + 8, FS_MODEL_FORMAT_VERSION + 1);
    set32(b.p + 28, crc32(0, b.p, 28));
    EXPECT(FS_ERR_VERSION, "a newer version");

    RESET(); /* wrong magic */
    b.p[1] = 'X';
    EXPECT(FS_ERR_FORMAT, "wrong magic");

    RESET(); /* a wrong stored checksum */
    b.p[t0 + 24 + 40] ^= 1;
    EXPECT(FS_ERR_CHECKSUM, "corrupted tensor byte");

    RESET(); /* trailing bytes after the declared end */
    b.n += 7;
    memset(b.p + good.n, 0, 7);
    EXPECT(FS_ERR_FORMAT, "trailing bytes");

    RESET(); /* num_layers of 2^31-1 with the file's few tensors */
    {
        const size_t c0 = section_at(&good, 0) + 24;
        const size_t key_at = c0 + 4 + 4 + 4; /* kind "LSTM", entry count */
        /* entries: input_size, hidden_size, num_layers: value of the third one */
        size_t at = key_at;
        for (int e = 0; e < 2; e++) at += 4 + (size_t)b.p[at] + 4 + 4;
        at += 4 + strlen("num_layers") + 4;
        set32(b.p + at, 0x7fffffffu);
        reseal(&b, section_at(&good, 0));
        EXPECT(FS_ERR_FORMAT, "num_layers 2^31-1");
    }

    RESET(); /* an unknown kind name */
    memcpy(b.p + section_at(&good, 0) + 24 + 4, "LSTN", 4);
    reseal(&b, section_at(&good, 0));
    EXPECT(FS_ERR_UNSUPPORTED, "unknown kind");

    RESET(); /* a tensor that is not a parameter: rename weight_ih_l0 -> weight_ih_l7 */
    b.p[t0 + 24 + 4 + name_len - 1] = '7';
    reseal(&b, t0);
    EXPECT(FS_ERR_FORMAT, "tensor weight_ih_l7");

    RESET(); /* a tensor of the wrong shape: rename weight_hh_l0 -> weight_ih_l0 */
    {
        const size_t t1 = section_at(&good, 2);
        b.p[t1 + 24 + 4 + 7] = 'i';
        reseal(&b, t1);
        EXPECT(FS_ERR_FORMAT, "wrong shape");
        CHECK(strstr(fs_last_error(), "expected shape [20, 3], got [20, 5]") != NULL, "%s", fs_last_error());
    }

    RESET(); /* a duplicated tensor: rename bias_hh_l0 -> bias_ih_l0 (same shape) */
    {
        const size_t t4 = section_at(&good, 4);
        b.p[t4 + 24 + 4 + 5] = 'i';
        reseal(&b, t4);
        EXPECT(FS_ERR_FORMAT, "duplicate tensor");
        CHECK(strstr(fs_last_error(), "twice") != NULL, "%s", fs_last_error());
    }

    RESET(); /* misaligned data offset */
    {
        const size_t off_at = dims_at + 16;
        uint64_t off = 0;
        for (int k = 7; k >= 0; k--) off = off << 8 | b.p[off_at + k];
        set64(b.p + off_at, off - 4);
        reseal(&b, t0);
        EXPECT(FS_ERR_FORMAT, "misaligned data");
    }

    RESET(); /* an optional section of an unknown type is skipped; a required one is not */
    {
        size_t at = b.n;
        put32(&b, 77);
        put32(&b, 1); /* optional */
        put64(&b, 3);
        put32(&b, 0);
        put32(&b, 0);
        put(&b, "abc", 3);
        seal_section(&b, at);
        uint32_t sections = 0;
        for (int k = 3; k >= 0; k--) sections = sections << 8 | b.p[12 + k];
        seal_file(&b, sections + 1);
        EXPECT(FS_OK, "optional unknown section");
        set32(b.p + at + 4, 0);
        seal_section(&b, at);
        EXPECT(FS_ERR_UNSUPPORTED, "required unknown section");
    }

    fs_rnn *none = (fs_rnn *)&b;
    CHECK(fs_model_load(NULL, 10, &none) == FS_ERR_NULL_ARG && none == NULL, "NULL data");
    fs_model_desc desc;
    CHECK(fs_model_inspect(good.p, good.n, NULL) == FS_ERR_NULL_ARG, "NULL desc");
    CHECK(fs_model_inspect(good.p, good.n, &desc) == FS_OK, "inspect");
    CHECK(fs_model_load_file("/nonexistent/dir/model.fsq", &none) == FS_ERR_IO, "missing file");
    CHECK(strstr(fs_last_error(), "/nonexistent/dir/model.fsq") != NULL, "path in the message: %s", fs_last_error());
    CHECK(strcmp(fs_status_str(FS_ERR_CHECKSUM), "unknown status") != 0, "status string");

    mutate_all("LSTM 3x5 L2 bidir", good.p, good.n);
    free(b.p);
    free(good.p);
#undef RESET
#undef EXPECT
}

static void check_file(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        CHECK(0, "%s: cannot open", path);
        return;
    }
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    unsigned char *bytes = malloc(n > 0 ? (size_t)n : 1);
    size_t got = fread(bytes, 1, (size_t)n, fp);
    fclose(fp);
    CHECK(got == (size_t)n, "%s: short read", path);
    fs_model_desc desc;
    fs_status st = fs_model_inspect(bytes, got, &desc);
    CHECK(st == FS_OK, "%s: %s", path, fs_last_error());
    if (st == FS_OK && desc.model_type == FS_MODEL_TREE) {
        fs_tree *t = NULL;
        st = fs_tree_load_file(path, &t);
        fs_tree_free(t);
    } else {
        fs_rnn *m = NULL;
        st = fs_model_load_file(path, &m);
        fs_rnn_free(m);
    }
    CHECK(st == FS_OK, "%s: %s", path, fs_last_error());
    mutate_all(path, bytes, got);
    free(bytes);
}

/* Writes n bytes to a fresh temporary file; returns its path (static storage). */
static const char *temp_file(const unsigned char *bytes, size_t n) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/fastseq_test_%ld.fsq", (long)(uintptr_t)&path % 100000);
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL && fwrite(bytes, 1, n, fp) == n, "cannot write %s", path);
    if (fp) fclose(fp);
    return path;
}

/* Reading a file never goes past what its header states. */
static void check_read_cap(void) {
    fs_rnn *m = NULL;
    void *data = NULL;
    size_t size = 0;
    FILE *zero = fopen("/dev/zero", "rb");
    if (zero) { /* an endless file: refused at its first bytes */
        fclose(zero);
        CHECK(fs_model_load_file("/dev/zero", &m) == FS_ERR_FORMAT && m == NULL, "/dev/zero: %s", fs_last_error());
        CHECK(strstr(fs_last_error(), "wrong magic") != NULL, "/dev/zero: %s", fs_last_error());
    }
    fs_rnn *src = random_model(FS_CELL_GRU, 3, 4, 1, 0, 1);
    buf good = write_model(src, 0);
    const char *path = temp_file(good.p, good.n);
    CHECK(fs_model_read_file(path, &data, &size) == FS_OK && size == good.n && memcmp(data, good.p, size) == 0,
          "read_file: %s", fs_last_error());
    fs_model_data_free(data);
    set64(good.p + 16, (uint64_t)1 << 40); /* a valid header claiming 1 TiB */
    set32(good.p + 28, crc32(0, good.p, 28));
    path = temp_file(good.p, good.n);
    data = NULL;
    CHECK(fs_model_read_file(path, &data, &size) == FS_ERR_FORMAT && data == NULL, "huge: %s", fs_last_error());
    /* a 32-bit build refuses the size before it looks at the file's length */
    CHECK(strstr(fs_last_error(), (uint64_t)SIZE_MAX < ((uint64_t)1 << 40)
                                      ? "the header says 1099511627776 bytes: more than this machine can address"
                                      : "truncated: the header says 1099511627776 bytes") != NULL,
          "huge: %s", fs_last_error());
    CHECK(fs_model_load_file(path, &m) == FS_ERR_FORMAT && m == NULL, "huge load: %s", fs_last_error());
    remove(path);
    fs_model_data_free(NULL);
    free(good.p);
    fs_rnn_free(src);
}

/* A model over caller-owned const weights computes what the model they came from
 * computes, copies nothing and refuses to change them. */
static void check_static_weights(fs_cell cell, int I, int H, int L, int bidir) {
    fs_rnn *src = random_model(cell, I, H, L, bidir, 1), *m = NULL;
    fs_rnn_config cfg;
    fs_rnn_get_config(src, &cfg);
    const void *w = NULL;
    size_t wbytes = 0, need = 0, header = 0, total = 0;
    CHECK(fs_rnn_weights(src, &w, &wbytes) == FS_OK && w != NULL, "weights: %s", fs_last_error());
    CHECK(fs_rnn_weights_size(&cfg, &need, &header) == FS_OK && need == wbytes, "weights_size");
    CHECK(fs_rnn_memory_size(&cfg, &total) == FS_OK && total == header + need, "memory = header + weights");
    void *copy = aligned_alloc(64, (wbytes + 63) / 64 * 64), *head = aligned_alloc(64, (header + 63) / 64 * 64);
    memcpy(copy, w, wbytes);
    CHECK(fs_rnn_init_static_weights(&cfg, copy, wbytes - 4, head, header, &m) == FS_ERR_SHAPE && m == NULL,
          "short weights");
    CHECK(fs_rnn_init_static_weights(&cfg, copy, wbytes, head, header - 1, &m) == FS_ERR_SHAPE, "short header");
    CHECK(fs_rnn_init_static_weights(&cfg, copy, wbytes, head, header, &m) == FS_OK && m == head,
          "init_static_weights: %s", fs_last_error());
    const void *w2 = NULL;
    size_t w2bytes = 0;
    CHECK(fs_rnn_weights(m, &w2, &w2bytes) == FS_OK && w2 == copy && w2bytes == wbytes, "weights used in place");
    const int T = 4, B = 2, D = bidir ? 2 : 1;
    float x[4 * 2 * 8], y1[4 * 2 * 2 * 16], y2[4 * 2 * 2 * 16];
    for (int i = 0; i < T * B * I; i++) x[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    fs_seq_args a;
    memset(&a, 0, sizeof a);
    a.seq_len = T, a.batch = B, a.x = x, a.x_count = (size_t)(T * B * I);
    a.y_count = (size_t)(T * B * D * H);
    a.y = y1;
    CHECK(fs_rnn_forward(src, &a) == FS_OK, "forward src: %s", fs_last_error());
    a.y = y2;
    CHECK(fs_rnn_forward(m, &a) == FS_OK, "forward static: %s", fs_last_error());
    CHECK(memcmp(y1, y2, a.y_count * sizeof(float)) == 0, "static weights compute differently");
    size_t n_params = 0;
    fs_rnn_param_count(src, &n_params);
    float *params = malloc(n_params * sizeof(float));
    CHECK(fs_rnn_get_params(m, params, n_params) == FS_OK, "get_params from const weights");
    CHECK(fs_rnn_set_params(m, params, n_params) == FS_ERR_UNSUPPORTED, "set_params on const weights");
    CHECK(fs_rnn_set_param(m, 0, 0, FS_PARAM_BIAS_IH, params, (size_t)(cell == FS_CELL_LSTM ? 4 : 3) * H) ==
              FS_ERR_UNSUPPORTED, "set_param on const weights: %s", fs_last_error());
    free(params);
    fs_rnn_free(m); /* a no-op */
    free(copy);
    free(head);
    fs_rnn_free(src);
}

int main(int argc, char **argv) {
    check_round_trip(FS_CELL_LSTM, 3, 5, 2, 1, 1);
    check_round_trip(FS_CELL_GRU, 4, 9, 1, 0, 1);
    check_round_trip(FS_CELL_RNN_TANH, 2, 3, 3, 1, 0);
    check_round_trip(FS_CELL_RNN_RELU, 6, 17, 1, 0, 1);
    check_crafted();
    check_read_cap();
    check_static_weights(FS_CELL_LSTM, 8, 16, 2, 1);
    check_static_weights(FS_CELL_GRU, 5, 9, 1, 0);
    for (int i = 1; i < argc; i++) check_file(argv[i]);
    printf("test_model_file: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures != 0;
}
