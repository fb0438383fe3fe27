/* fuzz_lerobot.c - libFuzzer harness for a LeRobot checkpoint's description (pi0_lerobot_load): the
 * input is split at its first NUL byte into config.json and policy_preprocessor.json, written to a
 * private temporary directory (no postprocessor; a state_file it names does not exist or is not a
 * plain name, which must be a clean error). What loads must satisfy the limits the policy relies on. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/lerobot.h"

static char dir[64];

static void require(int ok) {
    if (!ok) abort();
}

static void quiet(pi0_log_level level, const char *msg, void *user) {
    (void)level, (void)msg, (void)user;
}

static void put(const char *name, const uint8_t *p, size_t n) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    require(f != NULL);
    if (n) require(fwrite(p, 1, n, f) == n);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) {
        strcpy(dir, "/tmp/pi0_fuzz_lerobot_XXXXXX");
        require(mkdtemp(dir) != NULL);
        pi0_log_set(quiet, NULL);
    }
    const uint8_t *z = memchr(data, 0, size);
    size_t n1 = z ? (size_t)(z - data) : size;
    put("config.json", data, n1);
    put("policy_preprocessor.json", z ? z + 1 : data, z ? size - n1 - 1 : 0);
    pi0_lerobot *lr;
    if (pi0_lerobot_load(dir, 8, &lr) != PI0_OK) return 0;
    require(lr->n_cams >= 1 && lr->n_cams <= PI0_LR_MAX_CAMS);
    require(lr->action_dim >= 1 && lr->action_dim <= 8);
    require(lr->state_norm.mode == PI0_LR_IDENTITY || (lr->state_norm.n >= 1 && lr->state_norm.a && lr->state_norm.b));
    float x[PI0_LR_MAX_DIMS] = {0};
    if (lr->state_norm.n) pi0_lr_apply(&lr->state_norm, 0, "state", x, lr->state_norm.n);
    pi0_lerobot_free(lr);
    return 0;
}
