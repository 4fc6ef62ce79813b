/* CRC-32 (IEEE 802.3, reflected, as zlib.crc32): the .fsq file's checksums. */
#ifndef FS_CRC32_H
#define FS_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* The CRC-32 of p[0, n) continued from crc (0 to start): crc32(a + b) ==
 * fs__crc32_update(fs__crc32_update(0, a), b). Any alignment, any host byte order. */
uint32_t fs__crc32_update(uint32_t crc, const unsigned char *p, size_t n);

#endif
