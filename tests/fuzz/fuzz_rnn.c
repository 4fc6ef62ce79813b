/* Fuzz target: fs_rnn_create on a configuration decoded from the bytes (sizes mostly
 * small, sometimes -1, 0, INT32_MAX or raw), weights from the bytes, then forward,
 * training forward + backward and streaming on fuzzed shapes, counts and lengths
 * (fuzz_common.h). Errors are fine; crashes, leaks and out-of-bounds accesses not.
 * Seeds: corpus/rnn/. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_bytes b = {data, size};
    fs_rnn_config cfg;
    memset(&cfg, 0, sizeof cfg);
    uint8_t cell = fz_u8(&b);
    cfg.cell = (fs_cell)(cell < 0xF0 ? cell % 7 : (int32_t)cell - 0xF8); /* a few invalid kinds */
    cfg.input_size = fz_size(&b);
    cfg.hidden_size = fz_size(&b);
    cfg.num_layers = fz_size(&b);
    uint8_t v = fz_u8(&b);
    cfg.bidirectional = v & 1;
    cfg.bias = (v >> 1) & 1;
    cfg.peephole = (v >> 2) & 1;
    cfg.coupled = (v >> 3) & 1;
    cfg.reset_before = (v >> 4) & 1;
    if (v & 0x80) cfg.bidirectional = (int32_t)fz_u32(&b); /* not a 0/1 flag */
    cfg.proj_size = fz_u8(&b) < 200 ? 0 : fz_size(&b);
    cfg.update_act = fz_u8(&b) % 8;
    cfg.gate_act = fz_u8(&b) % 8;
    cfg.w_rank = fz_u8(&b) < 180 ? 0 : fz_size(&b);
    cfg.u_rank = fz_u8(&b) < 180 ? 0 : fz_size(&b);

    size_t bytes = 0;
    fs_status sized = fs_rnn_memory_size(&cfg, &bytes); /* larger models: only sized, not built */
    if (sized != FS_OK || bytes > FZ_MAX_BYTES) return 0;
    fs_rnn *m = NULL;
    if (fs_rnn_create(&cfg, &m) != FS_OK) abort(); /* sized fine, so creating must work */

    size_t np = 0;
    if (fs_rnn_param_count(m, &np) == FS_OK && np <= FZ_MAX_FLOATS) {
        size_t cp = fz_count(&b, np);
        float *w = fz_floats(&b, cp);
        if (w) fs_rnn_set_params(m, w, cp);
        free(w);
    }
    fz_run_model(m, &b);
    fs_rnn_free(m);
    return 0;
}
