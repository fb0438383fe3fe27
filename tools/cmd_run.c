/* cmd_run.c - `pi0 run`: sample one action chunk.
 *
 * Two ways in:
 *   --inputs CASE.safetensors   model-level inputs (images, image_masks, tokens, token_masks, state,
 *                               optional noise and num_steps: the test data's tensor names);
 *                               writes normalized model actions [1, H, A].
 *   --image NAME=PATH ... --prompt TEXT --state V,...   what a robot produces: images of any size,
 *                               words and the raw state, through the robot preset, tokenizer and
 *                               norm stats (pi0_policy.h); writes robot-unit actions [H, dims].
 * The chunk is printed as a table and written to --out as .safetensors, .json or .npy. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "tools_api.h"
#include "pi0.h"
#include "pi0_policy.h"
#include "rtc_cli.h"
#include "tools_common.h"

#define MAX_IMAGES 8

typedef struct {
    const char *model, *inputs, *prompt, *state, *robot, *tokenizer, *norm_stats, *asset_id, *out;
    const char *images[MAX_IMAGES];
    int n_images;
    unsigned long long seed;
    int steps, quiet, discrete_state; /* discrete_state: -1 auto */
    tool_load_opts load;
    rtc_cli rtc;
} run_opts;

/* --image NAME=PATH, repeatable: dest is the run_opts. */
static const char *add_image(const char *arg, void *dest) {
    run_opts *o = dest;
    if (o->n_images == MAX_IMAGES) return "too many images (at most 8)";
    if (!strchr(arg, '=') || arg[0] == '=') return "expected NAME=PATH";
    o->images[o->n_images++] = arg;
    return NULL;
}

static int parse(int argc, char **argv, run_opts *o) {
    memset(o, 0, sizeof *o);
    o->load = tool_load_defaults();
    o->discrete_state = -1;
    rtc_cli_init(&o->rtc);
    opt_load_block lb;
    rtc_opt_block rb;
    const opt_spec opts[] = {
        {.name = "--model", .type = OPT_STR, .dest = &o->model, .meta = "DIR", .required = 1,
         .help = "checkpoint directory (config.json + model.safetensors)"},
        {.name = "--inputs", .type = OPT_STR, .dest = &o->inputs, .meta = "FILE",
         .help = "model-level inputs (tensors images, image_masks, tokens, token_masks, state,\n"
                 "optional noise, num_steps); output = normalized model actions"},
        {.name = "--image", .type = OPT_CUSTOM, .dest = o, .parse = add_image, .repeat = 1, .meta = "NAME=PATH",
         .help = "a camera image (PNG/JPEG, any size); NAME as the robot preset names it\n"
                 "(raw: base_0_rgb, left_wrist_0_rgb, right_wrist_0_rgb; libero: observation/image,\n"
                 "observation/wrist_image; droid: observation/exterior_image_1_left,\n"
                 "observation/wrist_image_left; aloha: cam_high, cam_left_wrist, cam_right_wrist;\n"
                 "a LeRobot checkpoint, no --robot: its cameras, <cam> or observation.images.<cam>)"},
        {.name = "--prompt", .type = OPT_STR, .dest = &o->prompt, .meta = "TEXT", .help = "the instruction"},
        {.name = "--state", .type = OPT_STR, .dest = &o->state, .meta = "V,...", .help = "raw robot state (robot units)"},
        {.name = "--robot", .type = OPT_STR, .dest = &o->robot, .meta = "NAME", .def = "raw",
         .help = "raw | libero | droid | aloha | aloha_sim"},
        {.name = "--tokenizer", .type = OPT_STR, .dest = &o->tokenizer, .meta = "FILE",
         .def = "searched in DIR, the Hugging Face cache (google/paligemma-3b-pt-224), the openpi cache; see README",
         .help = "SentencePiece model"},
        {.name = "--norm-stats", .type = OPT_STR, .dest = &o->norm_stats, .meta = "FILE",
         .def = "DIR/norm_stats.json or DIR/assets/.../norm_stats.json", .help = "openpi norm_stats.json"},
        {.name = "--asset-id", .type = OPT_STR, .dest = &o->asset_id, .meta = "ID",
         .help = "use DIR/assets/ID/norm_stats.json (e.g. physical-intelligence/libero)"},
        {.name = "--discrete-state-input", .type = OPT_BOOL, .dest = &o->discrete_state,
         .def = "config.json, else the robot's openpi training config (libero false), else true",
         .help = "π0.5: state in the prompt"},
        {.name = "--out", .type = OPT_STR, .dest = &o->out, .meta = "FILE", .help = "write the actions: .safetensors, .json or .npy"},
        OPT_SEED(&o->seed, "noise seed when the inputs have no noise"),
        OPT_STEPS(&o->steps),
        {.name = "--quiet", .type = OPT_FLAG, .dest = &o->quiet, .help = "print only the summary line, not the action table"},
        {0},
    };
    const opt_group groups[] = {
        {NULL, opts},
        {"Loading", opt_load_options(&lb, &o->load, 0)},
        {"Real-time chunking (the previous chunk guides this one; README \"Real-time chunking\")", rtc_cli_options(&rb, &o->rtc)},
    };
    const opt_cmd cmd = {
        .name = "run",
        .usage = "pi0 run --model DIR --inputs CASE.safetensors [--out FILE] [--seed N] [--steps N]\n"
                 "        [--backend fast|ref] [--weights bf16|f32|int8 [--int8-vision]] [--threads N] [--strict]\n"
                 "pi0 run --model DIR --image NAME=PATH... --prompt TEXT [--state V1,V2,...] [--robot NAME]\n"
                 "        [--tokenizer FILE] [--norm-stats FILE] [--asset-id ID] [--discrete-state-input true|false]\n"
                 "        [--out FILE] [--seed N]\n"
                 "pi0 run ... --prev-actions FILE --delay D --horizon S [--rtc-mode identity|fd|training]\n"
                 "        [--rtc-schedule linear|exp|ones|zeros] [--rtc-beta B] [--rtc-fd-step E] [--taps FILE]",
        .about = "Sample one action chunk and print it."};
    int r = opt_parse(&cmd, groups, 3, argc, argv, NULL);
    if (!r) r = opt_load_check(&cmd, &o->load);
    if (r) return r == OPT_HELP ? 0 : 2;
    if (!o->inputs && !o->n_images) return opt_usage_error(&cmd, "give --inputs FILE or --image NAME=PATH");
    if (o->inputs && o->n_images) return opt_usage_error(&cmd, "--inputs and --image are exclusive");
    return -1;
}

/* The library returns only finite actions (PI0_ERR_NONFINITE otherwise); checked again here so that
 * --out never writes `nan` or `inf`, which JSON parsers reject. */
static int check_finite(const float *a, int rows, int cols) {
    for (int i = 0; i < rows * cols; i++)
        if (!isfinite(a[i]))
            return cli_error("actions[%d, %d] = %g is not finite; nothing written", i / cols, i % cols, (double)a[i]);
    return 0;
}

static void print_table(const float *a, int rows, int cols) {
    printf("step ");
    for (int j = 0; j < cols; j++) printf("%9s%d", "a", j);
    printf("\n");
    for (int i = 0; i < rows; i++) {
        printf("%4d ", i);
        for (int j = 0; j < cols; j++) printf(" %9.5f", a[(size_t)i * cols + j]);
        printf("\n");
    }
}

/* Model-level run from a case file. */
static int run_inputs(run_opts *o, pi0_ctx *ctx, double load_s) {
    const pi0_config *c = pi0_config_of(ctx);
    case_file cf;
    if (tool_case_read(o->inputs, c, &cf) != PI0_OK) return cli_error("%s", pi0_last_error());
    pi0_state *st;
    if (pi0_state_new(ctx, &st) != PI0_OK) { tool_case_free(&cf); return cli_error("%s", pi0_last_error()); }
    size_t n = (size_t)c->action_horizon * c->action_dim;
    float *act = malloc(n * sizeof *act);
    pi0_run_params rp = pi0_run_params_default();
    rp.seed = o->seed;
    rp.n_steps = o->steps ? o->steps : cf.n_steps;
    rtc_taps *taps = NULL;
    if (rtc_cli_prepare(&o->rtc, c->action_dim, &rp.rtc)) {
        free(act);
        pi0_state_free(st);
        tool_case_free(&cf);
        return 1;
    }
    if (o->rtc.taps_path && (taps = rtc_taps_new())) {
        rp.tap = rtc_taps_cb;
        rp.tap_user = taps;
    }
    double t0 = tool_now();
    pi0_status s = act ? pi0_infer(st, &cf.obs, &rp, cf.noise, act, n) : PI0_ERR_NOMEM;
    double dt = tool_now() - t0;
    int rc = 0;
    if (s == PI0_OK && taps && rtc_taps_save(taps, o->rtc.taps_path)) rc = 1;
    rtc_taps_free(taps);
    if (s != PI0_OK) rc = cli_error("%s", s == PI0_ERR_NOMEM && !act ? "out of memory" : pi0_last_error());
    else if ((rc = check_finite(act, c->action_horizon, c->action_dim)) == 0) {
        if (!o->quiet) print_table(act, c->action_horizon, c->action_dim);
        printf("actions [1, %d, %d] (normalized model units): load %.3f s, infer %.3f s, %d steps, backend %s\n",
               c->action_horizon, c->action_dim, load_s, dt, rp.n_steps ? rp.n_steps : c->n_steps,
               o->load.params.backend == PI0_BACKEND_REF ? "ref" : "fast");
        if (o->out && tool_write_actions(o->out, act, c->action_horizon, c->action_dim, 1) != 0) rc = 1;
    }
    free(act);
    pi0_state_free(st);
    tool_case_free(&cf);
    return rc;
}

/* Robot-level run: image files, prompt and raw state through pi0_policy. */
static int run_robot(run_opts *o, pi0_ctx *ctx, double load_s) {
    pi0_policy_params pp = pi0_policy_params_default();
    if (o->robot) pp.robot = o->robot;
    pp.tokenizer_path = o->tokenizer;
    pp.norm_stats_path = o->norm_stats;
    pp.asset_id = o->asset_id;
    pp.discrete_state_input = o->discrete_state;
    pi0_policy *pol;
    if (pi0_policy_new(ctx, o->model, &pp, &pol) != PI0_OK) return cli_error("%s", pi0_last_error());
    pi0_array arr[MAX_IMAGES + 2];
    pi0_image img[MAX_IMAGES];
    char keys[MAX_IMAGES][256];
    double state[256];
    int n = 0, n_state = 0, rc = 0;
    memset(img, 0, sizeof img);
    const char *robot = o->robot ? o->robot : "raw";
    int aloha = !strncmp(robot, "aloha", 5);
    for (int i = 0; i < o->n_images && rc == 0; i++) {
        const char *eq = strchr(o->images[i], '=');
        size_t kl = (size_t)(eq - o->images[i]);
        /* ALOHA's images arrive as a nested map: accept cam_high for images/cam_high. */
        snprintf(keys[i], sizeof keys[i], "%s%.*s", aloha && !memchr(o->images[i], '/', kl) ? "images/" : "", (int)kl,
                 o->images[i]);
        if (pi0_image_load(eq + 1, &img[i]) != PI0_OK) { rc = cli_error("%s", pi0_last_error()); break; }
        arr[n++] = (pi0_array){keys[i], PI0_ARR_U8, 3, {img[i].h, img[i].w, 3, 0}, img[i].data};
    }
    if (rc == 0 && o->state && tool_parse_floats(o->state, state, 256, &n_state) != 0)
        rc = cli_error("--state: '%s' is not a comma-separated list of numbers", o->state);
    if (rc == 0 && n_state > 0) {
        if (!strcmp(robot, "droid")) {
            if (n_state != 8) rc = cli_error("--state: the droid preset needs 8 values (7 joints + gripper), got %d", n_state);
            arr[n++] = (pi0_array){"observation/joint_position", PI0_ARR_F64, 1, {7, 0, 0, 0}, state};
            arr[n++] = (pi0_array){"observation/gripper_position", PI0_ARR_F64, 1, {1, 0, 0, 0}, state + 7};
        } else {
            arr[n++] = (pi0_array){!strcmp(robot, "libero") ? "observation/state" : "state", PI0_ARR_F64, 1,
                                   {n_state, 0, 0, 0}, state};
        }
    }
    if (rc == 0) {
        pi0_robot_obs obs = {n, arr, o->prompt};
        pi0_run_params rp = pi0_run_params_default();
        rp.seed = o->seed;
        rp.n_steps = o->steps;
        pi0_actions act;
        rtc_taps *taps = o->rtc.taps_path ? rtc_taps_new() : NULL;
        if (taps) {
            rp.tap = rtc_taps_cb;
            rp.tap_user = taps;
        }
        if (rtc_cli_prepare(&o->rtc, 0, &rp.rtc)) rc = 1;
        else if (pi0_policy_infer(pol, &obs, &rp, &act) != PI0_OK) rc = cli_error("%s", pi0_last_error());
        else if ((rc = check_finite(act.data, act.rows, act.cols)) == 0) {
            if (!o->quiet) print_table(act.data, act.rows, act.cols);
            printf("actions [%d, %d] (robot units, preset %s): load %.3f s, model %.3f s, total %.3f s\n", act.rows,
                   act.cols, robot, load_s, act.infer_ms / 1e3, act.total_ms / 1e3);
            if (o->out && tool_write_actions(o->out, act.data, act.rows, act.cols, 0) != 0) rc = 1;
            if (taps && rtc_taps_save(taps, o->rtc.taps_path)) rc = 1;
        }
        rtc_taps_free(taps);
    }
    for (int i = 0; i < o->n_images; i++) pi0_image_free(&img[i]);
    pi0_policy_free(pol);
    return rc;
}

int cmd_run(int argc, char **argv) {
    run_opts o;
    int r = parse(argc, argv, &o);
    if (r >= 0) return r;
    pi0_ctx *ctx;
    double t0 = tool_now();
    if (tool_load(o.model, &o.load, &ctx) != PI0_OK) return cli_error("%s", pi0_last_error());
    double load_s = tool_now() - t0;
    int rc = o.inputs ? run_inputs(&o, ctx, load_s) : run_robot(&o, ctx, load_s);
    rtc_cli_free(&o.rtc);
    pi0_free(ctx);
    return rc;
}
