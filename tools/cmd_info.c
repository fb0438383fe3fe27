/* cmd_info.c - `pi0 info`: a checkpoint's configuration, parameters per part, dtypes and bytes. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "tools_api.h"
#include "tools_common.h"

enum { PART_VISION, PART_PROJ, PART_EMBED, PART_VLM, PART_EXPERT, PART_HEADS, N_PARTS };
static const char *part_names[N_PARTS] = {"vision tower (SigLIP)", "projector", "token embedding", "VLM (Gemma)",
                                          "action expert", "action/state/time projections"};

static void count_part(const char *name, int nd, const int64_t *shape, void *user) {
    int64_t *parts = user, n = 1;
    for (int i = 0; i < nd; i++) n *= shape[i];
    int p = strstr(name, "vision_tower") ? PART_VISION
            : strstr(name, "multi_modal_projector") ? PART_PROJ
            : (strstr(name, "embed_tokens") || strstr(name, "lm_head")) ? PART_EMBED
            : strstr(name, "language_model") ? PART_VLM
            : strstr(name, "gemma_expert") ? PART_EXPERT : PART_HEADS;
    parts[p] += n;
}

int cmd_info(int argc, char **argv) {
    const char *model = NULL;
    const opt_spec opts[] = {
        {.name = "--model", .type = OPT_STR, .dest = &model, .meta = "DIR", .help = "checkpoint directory", .required = 1},
        {0},
    };
    const opt_group groups[] = {{NULL, opts}};
    const opt_cmd cmd = {.name = "info", .usage = "pi0 info --model DIR",
                         .about = "Show the configuration, parameters per part, dtypes and bytes of a checkpoint."};
    int r = opt_parse(&cmd, groups, 1, argc, argv, NULL);
    if (r) return r == OPT_HELP ? 0 : 2;
    tool_load_opts o = tool_load_defaults();
    o.params.backend = PI0_BACKEND_REF; /* map and check only: no packing */
    o.progress = 0;
    pi0_ctx *ctx;
    if (tool_load(model, &o, &ctx) != PI0_OK) return cli_error("%s", pi0_last_error());
    const pi0_config *c = pi0_config_of(ctx);
    int64_t n_params, n_bytes, parts[N_PARTS] = {0};
    pi0_param_count(ctx, &n_params, &n_bytes);
    pi0_weights_expected(c, count_part, parts);
    printf("checkpoint   %s\n", model);
    static const char *const state_where[] = {[PI0_STATE_UNUSED] = "state not used", [PI0_STATE_TOKEN] = "state token",
                                              [PI0_STATE_IN_PROMPT] = "state in the prompt"};
    printf("variant      %s (%s)\n", c->variant == PI0_VARIANT_PI05 ? "pi0.5, adaptive-norm expert" : "pi0",
           state_where[pi0_config_state_input(c)]);
    printf("actions      horizon %d x dim %d, %d denoising steps, prompt %d tokens\n", c->action_horizon, c->action_dim,
           c->n_steps, c->max_token_len);
    if (c->rtc_training_max_delay > 0)
        printf("rtc          trained with clean action prefixes up to %d rows (--rtc-mode training, d <= %d)\n",
               c->rtc_training_max_delay, c->rtc_training_max_delay);
    printf("images       %d slots of %dx%dx%d, patch %d -> %d tokens each\n", c->n_image_slots, c->image_size,
           c->image_size, c->n_channels, c->patch_size, (c->image_size / c->patch_size) * (c->image_size / c->patch_size));
    printf("vision       width %d, depth %d, mlp %d, heads %d\n", c->vision_width, c->vision_depth, c->vision_mlp_dim,
           c->vision_heads);
    printf("vlm          width %d, depth %d, mlp %d, vocab %d\n", c->vlm_width, c->vlm_depth, c->vlm_mlp_dim, c->vocab_size);
    printf("expert       width %d, depth %d, mlp %d\n", c->expert_width, c->expert_depth, c->expert_mlp_dim);
    printf("attention    %d heads, %d kv heads, head dim %d, rope base %g\n", c->n_heads, c->n_kv_heads, c->head_dim,
           (double)c->rope_base);
    if (pi0_lerobot_is_checkpoint(model)) {   /* what pi0 run / serve take from a LeRobot checkpoint */
        pi0_lerobot *lr;
        if (pi0_lerobot_load(model, c->action_dim, &lr) != PI0_OK) {
            printf("lerobot      (processor files unreadable: %s)\n", pi0_last_error());
        } else {
            static const char *modes[] = {"IDENTITY", "MEAN_STD", "MIN_MAX", "QUANTILES", "QUANTILE10", "MIN_MAX"};
            printf("lerobot      cameras");
            for (int i = 0; i < lr->n_cams; i++) {
                const char *k = lr->cams[i];
                printf("%s %s", i ? "," : "", strncmp(k, "observation.images.", 19) ? k : k + 19);
            }
            printf("\n             state [%d] %s, action [%d] %s, chunk %d rows (LeRobot executes n_action_steps %d)%s%s\n",
                   lr->state_dim, modes[lr->state_norm.mode], lr->action_dim, modes[lr->action_unnorm.mode], lr->chunk_size,
                   lr->n_action_steps, lr->relative ? ", relative actions" : "", lr->old_layout ? ", lerobot <= 0.3 layout" : "");
            pi0_lerobot_free(lr);
        }
    }
    printf("\nparameters per part:\n");
    for (int p = 0; p < N_PARTS; p++) printf("  %-32s %14lld\n", part_names[p], (long long)parts[p]);
    printf("  %-32s %14lld  (%.2f GB as stored)\n", "total bound", (long long)n_params, (double)n_bytes / 1e9);
    int64_t k8[3], kv[3];
    pi0_weight_kind_counts(ctx, PI0_WEIGHTS_INT8, 0, k8);
    pi0_weight_kind_counts(ctx, PI0_WEIGHTS_INT8, 1, kv);
    printf("\nwith --weights int8 (fast path): %lld parameters int8 (%.2f GB: VLM and action-expert q/k/v/o, gate/up,\n"
           "  down), %lld kept bf16 (%.2f GB: vision tower, projector, action/state projections, time MLPs, adaptive\n"
           "  norms); the token embedding is read as stored\n", (long long)k8[PI0_WEIGHTS_INT8],
           (double)k8[PI0_WEIGHTS_INT8] / 1e9, (long long)k8[PI0_WEIGHTS_BF16], 2.0 * (double)k8[PI0_WEIGHTS_BF16] / 1e9);
    printf("with --weights int8 --int8-vision: %lld parameters int8 (the SigLIP encoder's q/k/v/o, fc1, fc2 too),\n"
           "  %lld kept bf16 (%.2f GB)\n", (long long)kv[PI0_WEIGHTS_INT8], (long long)kv[PI0_WEIGHTS_BF16],
           2.0 * (double)kv[PI0_WEIGHTS_BF16] / 1e9);

    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", model);
    pi0_st_file *f;
    if (pi0_st_open(path, &f) == PI0_OK) {
        int64_t cnt[5] = {0}, bytes[5] = {0};
        for (int i = 0; i < f->n_tensors; i++) {
            cnt[f->tensors[i].dtype]++;
            bytes[f->tensors[i].dtype] += (int64_t)f->tensors[i].nbytes;
        }
        printf("\n%s: %d tensors\n", path, f->n_tensors);
        for (int d = 0; d < 5; d++)
            if (cnt[d]) printf("  %-5s %6lld tensors %12.1f MB\n", pi0_dtype_name((pi0_dtype)d), (long long)cnt[d], (double)bytes[d] / 1e6);
        pi0_st_close(f);
    }
    pi0_free(ctx);
    return 0;
}
