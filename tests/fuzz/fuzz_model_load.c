/* Fuzz target: the .fsq loader (fs_model_inspect, fs_model_load) on arbitrary bytes,
 * then whatever a loaded model supports (fuzz_common.h). Seeds: corpus/model_load/.
 *
 * Each input is loaded twice: as it is (the checksums catch almost every mutation),
 * and with its file size and CRC-32s recomputed (docs/fsq-format.md), so mutations
 * also reach the field checks behind the checksums.
 *
 *   CC=clang cmake -DFASTSEQ_FUZZ=ON -DFASTSEQ_SANITIZE=ON ...; fuzz_model_load CORPUS_DIR
 * Without libFuzzer, fuzz_replay_model_load replays files through the same function. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static uint64_t get_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Make the header's file_size and every CRC-32 consistent with the bytes. */
static void fix_checksums(uint8_t *p, size_t size) {
    if (size < 32) return;
    put_le(p + 16, size, 8);
    put_le(p + 28, crc32_update(0, p, 28), 4);
    size_t at = 32;
    while (size - at >= 24) {
        uint64_t length = get_le(p + at + 8, 8);
        if (length > size - at - 24) length = size - at - 24;
        uint32_t crc = crc32_update(0, p + at, 20);
        put_le(p + at + 20, crc32_update(crc, p + at + 24, (size_t)length), 4);
        at += 24 + (size_t)length;
    }
}

static void load_and_run(const uint8_t *p, size_t size) {
    fs_model_desc desc;
    fs_status inspected = fs_model_inspect(p, size, &desc);
    fs_rnn *m = NULL;
    fs_status loaded = fs_model_load(p, size, &m);
    if ((inspected == FS_OK) != (loaded == FS_OK) && loaded != FS_ERR_NOMEM) abort(); /* must agree */
    if (loaded == FS_OK) {
        fz_bytes b = {p + size / 2, size - size / 2}; /* the file's own tail drives the inputs */
        fz_run_model(m, &b);
    }
    fs_rnn_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* heap blocks of exactly `size` bytes, so ASan sees any read past the end */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    load_and_run(copy, size);
    fix_checksums(copy, size);
    load_and_run(copy, size);
    free(copy);
    return 0;
}
