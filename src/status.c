/* Status strings, per-thread error detail, checked size arithmetic, aligned allocation. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

#if defined(FASTSEQ_BARE_METAL)
static char last_error[256]; /* one thread, and RAM is scarce */
#else
static _Thread_local char last_error[512];
#endif

const char *fs_status_str(fs_status status) {
    switch (status) {
    case FS_OK: return "ok";
    case FS_ERR_NULL_ARG: return "a required pointer is NULL";
    case FS_ERR_INVALID_ARG: return "invalid argument";
    case FS_ERR_SHAPE: return "buffer size does not match the shapes";
    case FS_ERR_NOMEM: return "out of memory";
    case FS_ERR_UNSUPPORTED: return "unsupported";
    case FS_ERR_FORMAT: return "malformed model file";
    case FS_ERR_CHECKSUM: return "model file checksum mismatch (corrupted)";
    case FS_ERR_VERSION: return "unsupported model file version";
    case FS_ERR_IO: return "file input/output error";
    }
    return "unknown status";
}

const char *fs_last_error(void) { return last_error; }

void fs__clear_error(void) { last_error[0] = '\0'; }

#if defined(FASTSEQ_BARE_METAL)
/* newlib's printf, nano or full as toolchains ship it, has no C99 'z' modifier (it
 * prints "zu"): formats are copied with each %zu turned into the conversion of the
 * type size_t has here. The messages use %zu bare, never with flags or a width. */
#if SIZE_MAX == UINT_MAX
#define FS_SIZE_CONV "u"
#else
#define FS_SIZE_CONV "lu"
#endif
static const char *size_format(const char *fmt, char *out, size_t cap) {
    size_t j = 0;
    for (const char *f = fmt; *f != '\0'; f++) {
        if (j + sizeof FS_SIZE_CONV + 1 >= cap) return fmt; /* too long to copy: as given */
        if (f[0] == '%' && f[1] == 'z' && f[2] == 'u') {
            out[j++] = '%';
            memcpy(out + j, FS_SIZE_CONV, sizeof FS_SIZE_CONV - 1);
            j += sizeof FS_SIZE_CONV - 1;
            f += 2;
        } else if (f[0] == '%' && f[1] == '%') {
            out[j++] = *f++;
            out[j++] = *f;
        } else {
            out[j++] = *f;
        }
    }
    out[j] = '\0';
    return out;
}
#endif

int fs__vformat(char *buf, size_t bytes, const char *fmt, va_list ap) {
#if defined(FASTSEQ_BARE_METAL)
    char converted[256];
    fmt = size_format(fmt, converted, sizeof converted);
#endif
    return vsnprintf(buf, bytes, fmt, ap);
}

fs_status fs__fail(fs_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fs__vformat(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

fs_status fs__check_buffer(const char *name, const void *buffer, size_t bytes, size_t need) {
    if (!buffer) return fs__fail(FS_ERR_NULL_ARG, "%s must not be NULL", name);
    if ((uintptr_t)buffer % FS_ALIGN != 0)
        return fs__fail(FS_ERR_INVALID_ARG, "%s: expected %d-byte alignment", name, FS_ALIGN);
    if (bytes < need)
        return fs__fail(FS_ERR_SHAPE, "%s: expected at least %zu bytes, got %zu", name, need, bytes);
    return FS_OK;
}

int fs__mul(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

int fs__add(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}

size_t fs__align_up(size_t bytes) { return (bytes + (FS_ALIGN - 1)) & ~(size_t)(FS_ALIGN - 1); }

#if defined(FASTSEQ_BARE_METAL)
/* No heap: the *_init_static functions place everything in caller memory. */
void *fs__alloc(size_t bytes) {
    (void)bytes;
    return NULL;
}

void fs__free(void *p) { (void)p; }
#else
void *fs__alloc(size_t bytes) {
    if (bytes == 0) bytes = FS_ALIGN;
    if (bytes > SIZE_MAX - FS_ALIGN) return NULL;
    return aligned_alloc(FS_ALIGN, fs__align_up(bytes));
}

void fs__free(void *p) { free(p); }
#endif
