#!/usr/bin/python3
"""test_openpi_layout.py BUILD - an openpi-converted π0.5 LIBERO checkpoint, laid out as openpi's
examples/convert_jax_model_to_pytorch.py leaves it, runs with

    pi0 run --model DIR --robot libero --image observation/image=A.png --image observation/wrist_image=B.png \
            --prompt TEXT --state V,...            (+ --out to read the result)

and nothing else, and matches openpi's server-side transforms re-typed in numpy/Pillow/sentencepiece
(the functions of tests/test_policy.py) around a model-level `pi0 run --inputs` on the same noise.

The layout, written into a temporary directory:
  DIR/config.json        the converter's five fields (action_dim, action_horizon, paligemma_variant,
                         action_expert_variant, precision "bfloat16"; no pi05 / discrete_state_input
                         field: π0.5 is recognized from the tensors). The converter's variant names
                         denote full-size networks, so the tiny dimensions are added as explicit fields.
  DIR/model.safetensors  tests/data/pi05_tiny's tensors (openpi PI0Pytorch names), all BF16 as the
                         converter's default precision writes them
  DIR/assets/physical-intelligence/libero/norm_stats.json   (openpi's asset_id = the LIBERO repo id)
  $OPENPI_DATA_HOME/big_vision/paligemma_tokenizer.model    the test tokenizer where openpi caches
                         PaliGemma's (the converted directory has no tokenizer)

openpi's pi05_libero trains with discrete_state_input=False (training/config.py), so the robot
preset's default puts no state in the prompt; the other cases check config.json's explicit field, the
--discrete-state-input flag, several asset directories (an error naming them) and --asset-id.
Tolerance 1e-5 relative: both sides run the same model on the same inputs; what remains is the
float64 un-normalization rounded to float32 (~1e-7). A wrong token, pixel or statistic moves the tiny
model's actions by far more.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import sentencepiece as spm
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_policy as ref  # noqa: E402  (openpi's transforms re-typed: resize_with_pad, normalize, tokenize...)

passed = failed = 0
TOK = os.path.join(HERE, "data", "policy", "tiny.model")
SRC = os.path.join(HERE, "data", "pi05_tiny")
TOL = 1e-5


def check(ok, msg):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + msg)
    passed += bool(ok)
    failed += not ok


# ---- safetensors in numpy -----------------------------------------------------------------------

def st_read(path):
    raw = open(path, "rb").read()
    n = int(np.frombuffer(raw[:8], "<u8")[0])
    head = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (k, v["dtype"])
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(raw[base + a:base + b], "<f4").reshape(v["shape"])
    return out


def st_write(path, tensors):
    """tensors: name -> (safetensors dtype, numpy array of the stored bytes' dtype)."""
    head, blobs, off = {}, [], 0
    for k, (dt, a) in tensors.items():
        b = np.ascontiguousarray(a).tobytes()
        head[k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(head).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(np.uint64(len(h)).tobytes())
        f.write(h)
        for b in blobs:
            f.write(b)


def to_bf16(a):
    """float32 -> bfloat16 bits, round to nearest even (torch's .to(torch.bfloat16)); no NaN here."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def from_bf16(h):
    return (h.astype(np.uint32) << 16).view(np.float32)


# ---- the layout ---------------------------------------------------------------------------------

def quantile_stats(rng, n):
    mean = rng.normal(size=n)
    std = rng.uniform(0.1, 2.0, n)
    return {"mean": mean, "std": std, "q01": mean - 2 * std, "q99": mean + 2 * std}


def write_norm_stats(path, stats):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    js = {"norm_stats": {k: {kk: [float(x) for x in vv] for kk, vv in v.items()} for k, v in stats.items()}}
    with open(path, "w") as f:
        json.dump(js, f, indent=2)


def make_checkpoint(d, extra_config=None):
    """The converted directory; returns the BF16-rounded float32 weights (unused by the checks, which
    run the same file on both sides, but kept to assert the conversion is exact)."""
    os.makedirs(d)
    src_cfg = json.load(open(os.path.join(SRC, "config.json")))
    cfg = {"action_dim": src_cfg["action_dim"], "action_horizon": src_cfg["action_horizon"],
           "paligemma_variant": "tiny", "action_expert_variant": "tiny", "precision": "bfloat16"}
    for k in ("vocab_size", "vlm_width", "vlm_depth", "vlm_mlp_dim", "vlm_num_heads", "vlm_num_kv_heads", "vlm_head_dim",
              "expert_width", "expert_depth", "expert_mlp_dim", "expert_num_heads", "expert_num_kv_heads",
              "expert_head_dim", "siglip_hidden_size", "siglip_num_hidden_layers", "siglip_num_attention_heads",
              "siglip_intermediate_size", "siglip_image_size", "siglip_patch_size"):
        cfg[k] = src_cfg[k]
    cfg.update(extra_config or {})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    w = st_read(os.path.join(SRC, "model.safetensors"))
    st_write(os.path.join(d, "model.safetensors"), {k: ("BF16", to_bf16(v)) for k, v in w.items()})
    return cfg


def run(pi0, args, env):
    return subprocess.run([pi0, "run", *args], capture_output=True, text=True, env=env)


class Case:
    """One robot observation written as the files `pi0 run` reads."""

    def __init__(self, tmp, rng):
        self.img = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)    # resized with padding to 56x56
        self.wrist = rng.integers(0, 256, (97, 13, 3), dtype=np.uint8)    # odd size
        self.state = np.concatenate([rng.normal(size=6) * 3, [-50.0, 50.0]])  # discretized bins -1 and 255
        self.prompt = "  put the_red cube in\nthe drawer "
        self.a, self.b = os.path.join(tmp, "img.png"), os.path.join(tmp, "wrist.png")
        Image.fromarray(self.img).save(self.a)
        Image.fromarray(self.wrist).save(self.b)

    def args(self, model, out):
        return ["--model", model, "--robot", "libero", "--image", f"observation/image={self.a}",
                "--image", f"observation/wrist_image={self.b}", "--prompt", self.prompt,
                "--state", ",".join(repr(float(x)) for x in self.state), "--out", out, "--quiet"]


def reference(pi0, tmp, model, case, stats, discrete, env, tag):
    """openpi's transforms in numpy around a model-level run on the same noise (seed 0)."""
    cfg_l = 200                    # π0.5's max_token_len (pi0_config.py), the converter does not write it
    S, A = 56, 8
    sp = spm.SentencePieceProcessor(model_file=TOK)
    nstate = ref.normalize(case.state, stats["state"], True)
    imgs = [ref.resize_with_pad(ref.parse_image(case.img), S, S), ref.resize_with_pad(ref.parse_image(case.wrist), S, S),
            np.zeros((S, S, 3), np.uint8)]
    masks = np.array([[1, 1, 0]], np.int32)
    f = np.stack([(im.astype(np.float32) / np.float32(255.0) * np.float32(2.0) - np.float32(1.0)).transpose(2, 0, 1)
                  for im in imgs])[None].astype(np.float32)
    toks, tmask = ref.tokenize(sp, case.prompt, nstate, cfg_l, discrete)
    inputs = os.path.join(tmp, f"inputs_{tag}.safetensors")
    st_write(inputs, {"images": ("F32", f), "image_masks": ("I32", masks), "tokens": ("I32", toks[None]),
                      "token_masks": ("I32", tmask[None])})
    out = os.path.join(tmp, f"model_{tag}.npy")
    r = run(pi0, ["--model", model, "--inputs", inputs, "--out", out, "--quiet"], env)
    if r.returncode != 0:
        return None, r.stderr.strip()
    act = np.load(out).reshape(-1, A)                       # [H, A] normalized model units, float32
    want = ref.unnormalize(act, stats["actions"], True)     # LIBERO π0.5: no delta actions
    return want[:, :7].astype(np.float32), int(tmask.sum())


def compare(name, got_path, want, ntok):
    got = np.load(got_path)
    if got.shape != want.shape:
        check(False, f"{name}: shape {got.shape}, expected {want.shape}")
        return got
    err = np.abs(got.astype(np.float64) - want) / np.maximum(1.0, np.abs(want))
    check(err.max() <= TOL, f"{name}: pi0 run vs openpi transforms around the model: max rel diff {err.max():.3g} "
                            f"(tol {TOL:g}), {ntok} prompt tokens")
    return got


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    pi0 = os.path.join(build, "pi0")
    for p in (pi0, SRC, TOK):
        if not os.path.exists(p):
            check(False, f"missing {p}")
            return
    rng = np.random.default_rng(7)
    tmp = tempfile.mkdtemp(prefix="pi0_test_openpi_")
    try:
        openpi_home = os.path.join(tmp, "openpi_cache")
        os.makedirs(os.path.join(openpi_home, "big_vision"))
        shutil.copy(TOK, os.path.join(openpi_home, "big_vision", "paligemma_tokenizer.model"))
        env = dict(os.environ, OPENPI_DATA_HOME=openpi_home, HF_HUB_CACHE=os.path.join(tmp, "no_hf_cache"))
        case = Case(tmp, rng)

        model = os.path.join(tmp, "pi05_libero_pytorch")
        make_checkpoint(model)
        w32 = st_read(os.path.join(SRC, "model.safetensors"))
        raw = open(os.path.join(model, "model.safetensors"), "rb").read()
        hl = int(np.frombuffer(raw[:8], "<u8")[0])
        head = json.loads(raw[8:8 + hl])
        dtypes = {v["dtype"] for k, v in head.items() if k != "__metadata__"}
        check(dtypes == {"BF16"} and len(head) == len(w32), f"converted file: {len(head)} tensors, dtypes {sorted(dtypes)}")
        k0 = "action_out_proj.weight"
        a, b = head[k0]["data_offsets"]
        w16 = from_bf16(np.frombuffer(raw[8 + hl + a:8 + hl + b], "<u2"))
        rel = np.abs(w16 - w32[k0].ravel()) / np.maximum(np.abs(w32[k0].ravel()), 1e-30)
        check(0 < rel.max() <= 2.0 ** -8, f"BF16 rounding of {k0}: max rel {rel.max():.3g} (in (0, 2^-8]: 7 stored mantissa bits)")

        libero = {"state": quantile_stats(rng, 8), "actions": quantile_stats(rng, 7)}
        write_norm_stats(os.path.join(model, "assets", "physical-intelligence", "libero", "norm_stats.json"), libero)

        # 1. The download as is: no flag but --robot libero. discrete_state_input: libero's default (False).
        out = os.path.join(tmp, "run_default.npy")
        r = run(pi0, case.args(model, out), env)
        check(r.returncode == 0, f"pi0 run on the openpi layout, no extra flag (rc {r.returncode}; {r.stderr.strip()[-300:]})")
        want_nostate, ntok = reference(pi0, tmp, model, case, libero, False, env, "nostate")
        if r.returncode == 0 and want_nostate is not None:
            compare("pi05 libero, state not in the prompt (openpi pi05_libero)", out, want_nostate, ntok)
        want_state, ntok_s = reference(pi0, tmp, model, case, libero, True, env, "state")
        if want_nostate is not None and want_state is not None:
            d = np.abs(want_state - want_nostate).max()
            check(d > 1e-3, f"the state prompt changes the actions (max |d| {d:.3g}), so the check above can fail")

        # 2. --discrete-state-input true puts the discretized state in the prompt.
        out = os.path.join(tmp, "run_flag_true.npy")
        r = run(pi0, case.args(model, out) + ["--discrete-state-input", "true"], env)
        check(r.returncode == 0, f"--discrete-state-input true (rc {r.returncode}; {r.stderr.strip()[-200:]})")
        if r.returncode == 0 and want_state is not None:
            compare("--discrete-state-input true: state in the prompt", out, want_state, ntok_s)
        r = run(pi0, case.args(model, out) + ["--discrete-state-input", "maybe"], env)
        check(r.returncode == 2 and "true or false" in r.stderr, f"--discrete-state-input maybe: usage error ({r.stderr.strip()})")

        # 3. config.json's explicit field wins over the robot default, both ways.
        m_true = os.path.join(tmp, "explicit_true")
        make_checkpoint(m_true, {"discrete_state_input": True})
        shutil.copytree(os.path.join(model, "assets"), os.path.join(m_true, "assets"))
        out = os.path.join(tmp, "run_cfg_true.npy")
        r = run(pi0, case.args(m_true, out), env)
        if r.returncode == 0 and want_state is not None:
            compare("config.json discrete_state_input true + libero: state in the prompt", out, want_state, ntok_s)
        else:
            check(False, f"config.json true: rc {r.returncode}: {r.stderr.strip()}")
        m_false = os.path.join(tmp, "explicit_false")
        make_checkpoint(m_false, {"discrete_state_input": False})
        shutil.copytree(os.path.join(model, "assets"), os.path.join(m_false, "assets"))
        # raw preset (default True) with π0.5 recognized from the tensors: the explicit false must hold.
        out = os.path.join(tmp, "run_cfg_false.npy")
        args = case.args(m_false, out)
        args[args.index("libero")] = "raw"
        args = [a.replace("observation/image=", "base_0_rgb=").replace("observation/wrist_image=", "left_wrist_0_rgb=")
                for a in args]
        r = run(pi0, args, env)
        if r.returncode == 0 and want_nostate is not None:
            got = np.load(out)
            # raw returns all 8 model dims; the first 7 are LIBERO's (same camera slots, same prompt, no
            # delta actions); the 8th has no statistics and stays in model units.
            if got.shape == (5, 8):
                err = np.abs(got[:, :7].astype(np.float64) - want_nostate) / np.maximum(1.0, np.abs(want_nostate))
                check(err.max() <= TOL, f"config.json discrete_state_input false, π0.5 from the tensors, raw preset: "
                                        f"no state in the prompt (max rel diff {err.max():.3g}, tol {TOL:g})")
            else:
                check(False, f"raw preset output shape {got.shape}")
        else:
            check(False, f"config.json false: rc {r.returncode}: {r.stderr.strip()}")

        # 4. Several asset directories: an error naming them and --asset-id; --asset-id picks one.
        trossen = {"state": quantile_stats(rng, 8), "actions": quantile_stats(rng, 7)}
        write_norm_stats(os.path.join(model, "assets", "trossen", "norm_stats.json"), trossen)
        out = os.path.join(tmp, "run_two.npy")
        r = run(pi0, case.args(model, out), env)
        check(r.returncode != 0 and "physical-intelligence/libero" in r.stderr and "trossen" in r.stderr
              and "--asset-id" in r.stderr, f"two asset directories: error names both and --asset-id ({r.stderr.strip()})")
        r = run(pi0, case.args(model, out) + ["--asset-id", "trossen"], env)
        want_t, ntok_t = reference(pi0, tmp, model, case, trossen, False, env, "trossen")
        if r.returncode == 0 and want_t is not None:
            compare("--asset-id trossen uses assets/trossen/norm_stats.json", out, want_t, ntok_t)
        else:
            check(False, f"--asset-id trossen: rc {r.returncode}: {r.stderr.strip()}")
        r = run(pi0, case.args(model, out) + ["--asset-id", "physical-intelligence/libero"], env)
        if r.returncode == 0 and want_nostate is not None:
            compare("--asset-id physical-intelligence/libero (two levels)", out, want_nostate, ntok)
        else:
            check(False, f"--asset-id physical-intelligence/libero: rc {r.returncode}: {r.stderr.strip()}")
        r = run(pi0, case.args(model, out) + ["--asset-id", "droid"], env)
        check(r.returncode != 0 and "assets/droid/norm_stats.json" in r.stderr and "trossen" in r.stderr,
              f"--asset-id droid (absent): error names the path and the ids that exist ({r.stderr.strip()})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
