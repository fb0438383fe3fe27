/* variant.c - the table of model families (variant.h) and what is derived from it: lookup by id,
 * by config.json name, family defaults, and where a model takes the robot state (pi0.h). */
#include <string.h>

#include "model/variant.h"

/* Indexed by pi0_variant. A new family: one line here, its file variant_<name>.c. */
static const pi0_variant_desc *const families[] = {
    [PI0_VARIANT_PI0] = &pi0_variant_pi0,
    [PI0_VARIANT_PI05] = &pi0_variant_pi05,
};

int pi0_variant_count(void) { return (int)(sizeof families / sizeof families[0]); }

const pi0_variant_desc *pi0_variant_get(int id) {
    return id >= 0 && id < pi0_variant_count() ? families[id] : NULL;
}

const pi0_variant_desc *pi0_variant_named(const char *name) {
    for (int i = 0; name && i < pi0_variant_count(); i++)
        if (strcmp(families[i]->name, name) == 0) return families[i];
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
