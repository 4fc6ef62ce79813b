/* Runs a model that `fastseq export-c` wrote (named "model": model.h / model.c)
 * on a fixed input and prints every output float as its bit pattern in hex, one
 * line per step, through semihosting: first a whole-sequence forward in the
 * smallest workspace (MODEL_WORKSPACE_MIN_BYTES), then, for a model that can
 * stream, the same input a step at a time. Everything lives in static buffers
 * sized by model.h's macros; nothing comes from a heap.
 *
 * The input is x[i] = (k_i mod 2001 - 1000) / 1000 with k_i the upper bits of a
 * 32-bit linear congruential sequence (Numerical Recipes' constants) starting at
 * 1: exact in float32, so the test rebuilds it in Python bit for bit. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "model.h"

#ifndef HARNESS_STEPS
#define HARNESS_STEPS MODEL_MAX_STEPS
#endif
#define X_COUNT ((size_t)HARNESS_STEPS * MODEL_BATCH * MODEL_INPUT_SIZE)
#define Y_COUNT ((size_t)HARNESS_STEPS * MODEL_BATCH * MODEL_OUTPUT_SIZE)

static unsigned char model_mem[MODEL_MEMORY_BYTES];
static unsigned char workspace_mem[MODEL_WORKSPACE_MIN_BYTES];
#if MODEL_CAN_STREAM
static unsigned char stream_mem[MODEL_STREAM_BYTES];
#endif
static float x[X_COUNT], y[Y_COUNT], h_n[MODEL_STATE_COUNT];

static void print_floats(const char *label, long index, const float *v, size_t n) {
    size_t i;
    printf("%s %ld", label, index);
    for (i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], sizeof bits);
        printf(" %08lx", (unsigned long)bits);
    }
    printf("\n");
}

static int failed(const char *what, fs_status st) {
    printf("error %s: %s (%s)\n", what, fs_status_str(st), fs_last_error());
    return 1;
}

/* Row of step t, sequence b in x or y, as model_forward lays them out. */
static size_t row(long t, long b) {
    return MODEL_BATCH_FIRST ? (size_t)b * HARNESS_STEPS + (size_t)t : (size_t)t * MODEL_BATCH + (size_t)b;
}

int main(void) {
    fs_rnn *model = NULL;
    fs_status st;
    uint32_t state = 1u;
    size_t i;
    long t, b;

    for (i = 0; i < X_COUNT; i++) {
        state = state * 1664525u + 1013904223u;
        x[i] = (float)((long)((state >> 8) % 2001u) - 1000) / 1000.0f;
    }
    printf("fastseq %s, %s model, isa %s\n", fs_version_string(), MODEL_KIND, fs_isa_name(fs_active_isa()));
    if ((st = model_init(model_mem, sizeof model_mem, &model)) != FS_OK) return failed("init", st);
    {   /* what this 32-bit library needs, against the sizes model.h took from a 64-bit host */
        fs_rnn_config cfg;
        size_t weights = 0, header = 0, stream = 0, workspace = 0;
        if ((st = fs_rnn_get_config(model, &cfg)) != FS_OK || (st = fs_rnn_weights_size(&cfg, &weights, &header)) != FS_OK ||
            (st = fs_rnn_forward_workspace_min_size(model, HARNESS_STEPS, MODEL_BATCH, &workspace)) != FS_OK)
            return failed("sizes", st);
        if (MODEL_CAN_STREAM && (st = fs_rnn_stream_memory_size(model, MODEL_BATCH, &stream)) != FS_OK)
            return failed("stream size", st);
        printf("sizes weights %lu header %lu stream %lu workspace_min %lu\n", (unsigned long)weights,
               (unsigned long)header, (unsigned long)stream, (unsigned long)workspace);
    }

    /* a workspace short of what model.h promises is refused, with the sizes in the message */
    st = model_forward(model, x, HARNESS_STEPS, y, h_n, workspace_mem, sizeof workspace_mem - 65);
    printf("short workspace: %s (%s)\n", fs_status_str(st), fs_last_error());
    st = model_forward(model, x, HARNESS_STEPS, y, h_n, workspace_mem, sizeof workspace_mem);
    if (st != FS_OK) return failed("forward", st);
    for (t = 0; t < HARNESS_STEPS; t++)
        for (b = 0; b < MODEL_BATCH; b++) print_floats("forward", t, y + row(t, b) * MODEL_OUTPUT_SIZE, MODEL_OUTPUT_SIZE);
    print_floats("h_n", 0, h_n, MODEL_STATE_COUNT);

#if MODEL_CAN_STREAM
    {
        static float x_t[MODEL_BATCH * MODEL_INPUT_SIZE], y_t[MODEL_BATCH * MODEL_FEATURES];
        fs_rnn_stream *stream = NULL;
        if ((st = model_stream_init(model, stream_mem, sizeof stream_mem, &stream)) != FS_OK)
            return failed("stream_init", st);
        for (t = 0; t < HARNESS_STEPS; t++) {
            for (b = 0; b < MODEL_BATCH; b++)
                memcpy(x_t + b * MODEL_INPUT_SIZE, x + row(t, b) * MODEL_INPUT_SIZE, sizeof(float) * MODEL_INPUT_SIZE);
            if ((st = model_step(stream, x_t, y_t)) != FS_OK) return failed("step", st);
            print_floats("step", t, y_t, MODEL_BATCH * MODEL_FEATURES);
        }
    }
#endif
    printf("done\n");
    return 0;
}
