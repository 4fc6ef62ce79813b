/* Replays fuzz inputs through a target's LLVMFuzzerTestOneInput without libFuzzer
 * (any compiler; ctest runs it over the seed corpus). Arguments: files or
 * directories (their regular files, one level). Exit status 0 when every input
 * ran; a crash is the failure this exists to catch. */
#define _FILE_OFFSET_BITS 64 /* 32-bit targets: readdir / stat fail with EOVERFLOW on 64-bit inodes */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return fprintf(stderr, "replay: cannot open %s\n", path), 1;
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *bigger = realloc(buf, cap *= 2);
            if (!bigger) free(buf);
            buf = bigger;
        }
    }
    fclose(f);
    if (!buf) return fprintf(stderr, "replay: out of memory on %s\n", path), 1;
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    int failures = 0, inputs = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: no such file or directory: %s\n", argv[i]);
            failures++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            failures += replay_file(argv[i]), inputs++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d) {
            fprintf(stderr, "replay: cannot open directory %s: %s\n", argv[i], strerror(errno));
            failures++;
            continue;
        }
        struct dirent *e;
        errno = 0;
        while ((e = readdir(d)) != NULL) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) failures += replay_file(path), inputs++;
            errno = 0;
        }
        if (errno != 0) {
            fprintf(stderr, "replay: reading directory %s: %s\n", argv[i], strerror(errno));
            failures++;
        }
        closedir(d);
    }
    printf("replay: %d inputs, %d unreadable\n", inputs, failures);
    return failures != 0 || inputs == 0;
}
