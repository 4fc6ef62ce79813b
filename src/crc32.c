/* CRC-32 eight bytes at a time (slice-by-8: one table lookup per byte, the eight
 * independent of each other): ~8x the speed of the byte-at-a-time loop, which
 * made loading a large model file cost more than reading it. */
#include "crc32.h"

#include "crc32_tables.h"

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t fs__crc32_update(uint32_t crc, const unsigned char *p, size_t n) {
    const uint32_t(*t)[256] = FS_CRC32_TABLES;
    crc = ~crc;
    for (; n >= 8; p += 8, n -= 8) {
        const uint32_t lo = crc ^ le32(p), hi = le32(p + 4);
        crc = t[7][lo & 0xffu] ^ t[6][lo >> 8 & 0xffu] ^ t[5][lo >> 16 & 0xffu] ^ t[4][lo >> 24] ^
              t[3][hi & 0xffu] ^ t[2][hi >> 8 & 0xffu] ^ t[1][hi >> 16 & 0xffu] ^ t[0][hi >> 24];
    }
    for (; n; p++, n--) crc = (crc >> 8) ^ t[0][(crc ^ *p) & 0xffu];
    return ~crc;
}
