/* variant.c - the model families as data (variant.h) and what is derived from them: lookup by id
 * and by config.json name, family defaults, where a model takes the robot state (pi0.h). No model
 * code here (that is variant_<name>.c), so config parsing links without it. */
#include <string.h>

#include "model/variant.h"

/* Indexed by pi0_variant. */
static const pi0_variant_desc families[] = {
    [PI0_VARIANT_PI0] = {
        .id = PI0_VARIANT_PI0,
        .name = "pi0",
        .marker = NULL, /* the fallback: a checkpoint without another family's marker is π0 */
        .max_token_len = 48,
        .discrete_state_input = 0,
        .quantile_norm = 0,
        .n_state_tokens = 1,
        .expert_norm = PI0_EXPERT_NORM_RMS,
        .time_cond = PI0_TIME_IN_ACTION_TOKENS,
    },
    [PI0_VARIANT_PI05] = {
        .id = PI0_VARIANT_PI05,
        .name = "pi05",
        .marker = "paligemma_with_expert.gemma_expert.model.layers.0.input_layernorm.dense.weight",
        .max_token_len = 200,
        .discrete_state_input = 1,
        .quantile_norm = 1,
        .n_state_tokens = 0,
        .expert_norm = PI0_EXPERT_NORM_ADAPTIVE,
        .time_cond = PI0_TIME_VIA_NORMS,
    },
};

int pi0_variant_count(void) { return (int)(sizeof families / sizeof families[0]); }

const pi0_variant_desc *pi0_variant_get(int id) { return id >= 0 && id < pi0_variant_count() ? &families[id] : NULL; }

const pi0_variant_desc *pi0_variant_named(const char *name) {
    for (int i = 0; name && i < pi0_variant_count(); i++)
        if (strcmp(families[i].name, name) == 0) return &families[i];
    return NULL;
}

void pi0_variant_set(pi0_config *c, int id) {
    const pi0_variant_desc *from = pi0_variant_get(c->variant), *to = pi0_variant_get(id);
    if (!to) return;
    if (from && c->max_token_len == from->max_token_len) c->max_token_len = to->max_token_len;
    c->variant = id;
}

/* A family with a state token feeds the state to the expert and never writes it into the prompt. */
pi0_state_input pi0_config_state_input(const pi0_config *c) {
    const pi0_variant_desc *v = c ? pi0_variant_get(c->variant) : NULL;
    if (!v) return PI0_STATE_UNUSED;
    if (v->n_state_tokens > 0) return PI0_STATE_TOKEN;
    return c->discrete_state_input > 0 ? PI0_STATE_IN_PROMPT : PI0_STATE_UNUSED;
}
