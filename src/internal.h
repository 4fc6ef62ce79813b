/* Internal declarations shared by the library's translation units. Not installed. */
#ifndef FS_INTERNAL_H
#define FS_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include "fastseq.h"

#if defined(__GNUC__)
#define FS_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define FS_PRINTF(f, a)
#endif

/* Records a detailed message for fs_last_error() and returns status. */
fs_status fs__fail(fs_status status, const char *fmt, ...) FS_PRINTF(2, 3);
/* vsnprintf for fastseq's messages (%zu works on a bare-metal newlib too). */
int fs__vformat(char *buf, size_t bytes, const char *fmt, va_list ap);
/* Called on entry by every public function that can fail. */
void fs__clear_error(void);

/* A caller-provided buffer: FS_ERR_NULL_ARG if NULL, FS_ERR_INVALID_ARG unless
 * FS_ALIGN-aligned, FS_ERR_SHAPE if shorter than `need` bytes; `name` goes in the message. */
fs_status fs__check_buffer(const char *name, const void *buffer, size_t bytes, size_t need);

/* An enum value within 0..last, whatever type the compiler gives the enum (a
 * signed int on hosts; arm-none-eabi packs it into an unsigned byte, where a
 * test for < 0 is always false). */
#define FS_ENUM_IN(v, last) ((unsigned long)(v) <= (unsigned long)(last))

/* Overflow-checked size arithmetic: return 0 on overflow, leaving *out unset. */
int fs__mul(size_t a, size_t b, size_t *out);
int fs__add(size_t a, size_t b, size_t *out);

/* The environment (FASTSEQ_ISA, FASTSEQ_NUM_THREADS). A bare-metal build
 * (FASTSEQ_BARE_METAL) has none: NULL, inline, so the warnings about a bad
 * value (stdio) are not even linked. */
#if defined(FASTSEQ_BARE_METAL)
#define fs__getenv(name) ((void)(name), (const char *)NULL)
#else
#include <stdlib.h>
#define fs__getenv(name) ((const char *)getenv(name))
#endif

/* 64-byte aligned heap memory (cache line, and the widest vector). A bare-metal
 * build has no allocator: fs__alloc returns NULL (callers report FS_ERR_NOMEM). */
void *fs__alloc(size_t bytes);
void fs__free(void *p);
#define FS_ALIGN 64
size_t fs__align_up(size_t bytes);

#endif /* FS_INTERNAL_H */
