/* The .fsq checksum (src/crc32.c, slice-by-8) against the CRC-32 definition
 * computed bit by bit here: the standard check value, every length up to 300
 * at every start offset mod 8 (each tail of the 8-byte loop), and continuation
 * across every split point (crc(a + b) from crc(a)). */
#include <stdio.h>

#include "check.h"
#include "../../src/crc32.h"

static uint32_t crc_bitwise(uint32_t crc, const unsigned char *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++) crc = (crc >> 1) ^ (crc & 1u ? 0xEDB88320u : 0u);
    }
    return ~crc;
}

int main(void) {
    CHECK(fs__crc32_update(0, (const unsigned char *)"123456789", 9) == 0xCBF43926u, "check value");
    CHECK(fs__crc32_update(0, NULL, 0) == 0u, "empty");
    unsigned char buf[320];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(urand(1.0f) * 127.0f + 128.0f);
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n + off <= 300; n++) {
            const uint32_t want = crc_bitwise(0, buf + off, n);
            CHECK(fs__crc32_update(0, buf + off, n) == want, "offset %zu length %zu", off, n);
            if (n % 7 == 0)
                for (size_t cut = 0; cut <= n; cut++)
                    CHECK(fs__crc32_update(fs__crc32_update(0, buf + off, cut), buf + off + cut, n - cut) == want,
                          "offset %zu length %zu split at %zu", off, n, cut);
        }
    printf("test_crc32: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures != 0;
}
