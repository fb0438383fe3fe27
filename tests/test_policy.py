#!/usr/bin/python3
"""test_policy.py BUILD - the policy's whole transform chain against openpi's logic re-typed with
numpy, Pillow and the sentencepiece Python binding (Debian python3-numpy, python3-pil,
python3-sentencepiece), on the tiny checkpoints.

For each case, Python builds a robot observation and computes what openpi's server would feed the
model (robot inputs -> Normalize -> resize_with_pad -> tokenize -> pad state -> uint8 -> [-1, 1]).
`BUILD/tests/test_policy run` runs (a) pi0_policy_infer on the robot observation and (b) pi0_infer on
the Python-computed model inputs, same seed. Python then applies openpi's output transforms
(Unnormalize -> AbsoluteActions -> robot outputs) to (b) and compares with (a). If any input
transform differed (one pixel, token or state bit), the tiny model's actions would move far more than
the tolerance (1e-6 relative, for double-vs-double rounding in the output transforms).
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import sentencepiece as spm
from PIL import Image

passed = failed = 0
HERE = os.path.dirname(os.path.abspath(__file__))
TOK = os.path.join(HERE, "data", "policy", "tiny.model")
DT = {np.dtype(np.uint8): 0, np.dtype(np.float32): 1, np.dtype(np.float64): 2, np.dtype(np.int32): 3}


def check(ok, msg):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + msg)
    passed += ok
    failed += not ok


# ---- openpi transforms, re-typed ----------------------------------------------------------------

def parse_image(img):                       # policies/*_policy.py _parse_image
    img = np.asarray(img)
    if np.issubdtype(img.dtype, np.floating):
        img = (255 * img).astype(np.uint8)
    if img.shape[0] == 3:
        img = img.transpose(1, 2, 0)
    return img


def resize_with_pad(img, h, w):             # openpi_client.image_tools
    if img.shape[:2] == (h, w):
        return img
    im = Image.fromarray(img)
    cw, ch = im.size
    ratio = max(cw / w, ch / h)
    rh, rw = int(ch / ratio), int(cw / ratio)
    r = im.resize((rw, rh), resample=Image.BILINEAR)
    z = Image.new(r.mode, (w, h), 0)
    z.paste(r, (max(0, int((w - rw) / 2)), max(0, int((h - rh) / 2))))
    return np.asarray(z)


def normalize(x, s, quantile):              # shared/normalize.py
    d = x.shape[-1]
    if quantile:
        return (x - s["q01"][:d]) / (s["q99"][:d] - s["q01"][:d] + 1e-6) * 2.0 - 1.0
    return (x - s["mean"][:d]) / (s["std"][:d] + 1e-6)


def unnormalize(x, s, quantile):
    if quantile:
        q01, q99 = s["q01"], s["q99"]
        dim = q01.shape[-1]
        if dim < x.shape[-1]:
            return np.concatenate([(x[..., :dim] + 1.0) / 2.0 * (q99 - q01 + 1e-6) + q01, x[..., dim:]], axis=-1)
        return (x + 1.0) / 2.0 * (q99 - q01 + 1e-6) + q01
    mean = np.pad(s["mean"], (0, x.shape[-1] - len(s["mean"])), constant_values=0.0)
    std = np.pad(s["std"], (0, x.shape[-1] - len(s["std"])), constant_values=1.0)
    return x * (std + 1e-6) + mean


def tokenize(sp, prompt, state, max_len, discrete):   # models/tokenizer.py PaligemmaTokenizer
    clean = prompt.strip().replace("_", " ").replace("\n", " ")
    if discrete:
        bins = np.digitize(state, bins=np.linspace(-1, 1, 256 + 1)[:-1]) - 1
        text = f"Task: {clean}, State: {' '.join(map(str, bins))};\nAction: "
        toks = sp.encode(text, add_bos=True)
    else:
        toks = sp.encode(clean, add_bos=True) + sp.encode("\n")
    n = len(toks)
    if n < max_len:
        return np.array(toks + [0] * (max_len - n), np.int32), np.array([1] * n + [0] * (max_len - n), np.int32)
    return np.array(toks[:max_len], np.int32), np.ones(max_len, np.int32)


ROBOTS = {  # name: (camera keys for the 3 slots, output dims, delta mask for pi0 / pi05)
    "libero": (["observation/image", "observation/wrist_image", None], 7, {"pi0": [1] * 6 + [0], "pi05": []}),
    "droid": (["observation/exterior_image_1_left", "observation/wrist_image_left", None], 8, {"pi0": [], "pi05": []}),
    "raw": (["base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb"], None, {"pi0": [], "pi05": []}),
}


def robot_state(robot, obs):
    if robot == "libero":
        return np.asarray(obs["observation/state"], np.float64)
    if robot == "droid":
        g = np.asarray(obs["observation/gripper_position"])
        if g.ndim == 0:
            g = g[np.newaxis]
        return np.concatenate([obs["observation/joint_position"], g]).astype(np.float64)
    return np.asarray(obs["state"], np.float64)


def run_case(binary, tmp, name, ckpt, variant, robot, obs, prompt, stats, seed, S=56, A=8, L=None):
    quantile = variant == "pi05"
    discrete = variant == "pi05"
    sp = spm.SentencePieceProcessor(model_file=TOK)
    keys, n_out, deltas = ROBOTS[robot]
    # inputs
    state = robot_state(robot, obs)
    nstate = normalize(state, stats["state"], quantile) if stats else state
    imgs, masks = [], []
    for k in keys:
        if k is not None and k in obs:
            imgs.append(resize_with_pad(parse_image(obs[k]), S, S))
            masks.append(1)
        else:
            imgs.append(np.zeros((S, S, 3), np.uint8))
            masks.append(0)
    fimgs = np.stack([(im.astype(np.float32) / np.float32(255.0) * np.float32(2.0) - np.float32(1.0)).transpose(2, 0, 1)
                      for im in imgs]).astype(np.float32)
    toks, tmask = tokenize(sp, prompt, nstate, L, discrete)
    pstate = np.zeros(A, np.float32)
    pstate[: len(nstate)] = nstate
    # manifest
    d = os.path.join(tmp, f"case{seed}")   # no spaces: the manifest is whitespace-separated
    os.makedirs(d)
    lines = [f"ckpt {ckpt}", f"tokenizer {TOK}", f"robot {robot}", f"prompt {prompt.encode().hex()}", f"seed {seed}"]
    if stats:
        import json
        js = {"norm_stats": {k: {kk: (None if vv is None else list(map(float, vv))) for kk, vv in v.items()}
                             for k, v in stats.items()}}
        with open(os.path.join(d, "ns.json"), "w") as f:
            json.dump(js, f)
        lines.append(f"norm {os.path.join(d, 'ns.json')}")
    else:
        lines.append("norm -")
    for i, (k, v) in enumerate(obs.items()):
        v = np.ascontiguousarray(v)
        p = os.path.join(d, f"a{i}.bin")
        v.tofile(p)
        shape = list(v.shape) + [0] * (4 - v.ndim)
        lines.append(f"array {k} {DT[v.dtype]} {v.ndim} {' '.join(map(str, shape))} {p}")
    for fn, arr in [("img.f32", fimgs), ("tok.i32", toks), ("tmask.i32", tmask), ("state.f32", pstate)]:
        arr.tofile(os.path.join(d, fn))
    sdim = A if variant == "pi0" else 0
    lines.append(f"model 3 {masks[0]} {masks[1]} {masks[2]} {d}/img.f32 {L} {d}/tok.i32 {d}/tmask.i32 {sdim} {d}/state.f32")
    with open(os.path.join(d, "manifest"), "w") as f:
        f.write("\n".join(lines) + "\n")
    r = subprocess.run([binary, "run", os.path.join(d, "manifest"), d], capture_output=True, text=True)
    if r.returncode != 0:
        check(False, f"{name}: helper failed: {r.stderr.strip()}")
        return

    def load(fn):
        raw = open(os.path.join(d, fn), "rb").read()
        h, w = np.frombuffer(raw[:8], "<i4")
        return np.frombuffer(raw[8:], "<f4").reshape(int(h), int(w))

    got, model = load("policy.raw"), load("model.raw")
    # outputs: Unnormalize (actions and the echoed float32 state) -> AbsoluteActions -> robot outputs
    act = model.astype(np.float32)
    if stats:
        act = unnormalize(act, stats["actions"], quantile)
        echo = unnormalize(pstate, stats["state"], quantile)
    else:
        act = act.astype(np.float64)
        echo = pstate.astype(np.float64)
    mask = np.asarray(deltas[variant], bool)
    if mask.size:
        act = act.copy()
        act[:, : mask.size] += np.where(mask, echo[: mask.size], 0)
    want = (act[:, :n_out] if n_out else act).astype(np.float32)
    if got.shape != want.shape:
        check(False, f"{name}: shape {got.shape}, expected {want.shape}")
        return
    err = np.abs(got.astype(np.float64) - want) / np.maximum(1.0, np.abs(want))
    check(err.max() <= 1e-6, f"{name}: policy {got.shape} vs openpi transforms around pi0_infer: max rel diff "
                             f"{err.max():.3g} (tol 1e-6); tokens {int(tmask.sum())}/{L}, masks {masks}")


def stats_for(rng, n, quantiles=True):
    mean = rng.normal(size=n)
    std = rng.uniform(0.1, 2.0, n)
    q01 = mean - 2 * std
    q99 = mean + 2 * std
    return {"mean": mean, "std": std, "q01": q01 if quantiles else None, "q99": q99 if quantiles else None}


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    binary = os.path.join(build, "tests", "test_policy")
    td = os.environ.get("PI0_TESTDATA", os.path.join(HERE, "data"))
    pi0, pi05 = os.path.join(td, "pi0_tiny"), os.path.join(td, "pi05_tiny")
    for p in (binary, pi0, pi05):
        if not os.path.exists(p):
            check(False, f"missing {p}")
            return
    rng = np.random.default_rng(42)
    tmp = tempfile.mkdtemp(prefix="pi0_test_policy_")
    try:
        ns8 = {"state": stats_for(rng, 8), "actions": stats_for(rng, 7)}
        img640 = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        wrist = rng.integers(0, 256, (3, 97, 13), dtype=np.uint8)          # CHW, odd size
        libero = {"observation/image": img640, "observation/wrist_image": wrist,
                  "observation/state": rng.normal(size=8)}
        run_case(binary, tmp, "pi0 libero (z-score, delta 0-5, 7 dims)", pi0, "pi0", "libero", libero,
                 "  fold_the\ntowel ", ns8, 7, L=12)
        run_case(binary, tmp, "pi0 libero, prompt truncated to 12 tokens", pi0, "pi0", "libero", libero,
                 "pick up the red cube and place it in the drawer", ns8, 8, L=12)
        droid = {"observation/exterior_image_1_left": rng.random((224, 224, 3), dtype=np.float32),
                 "observation/wrist_image_left": rng.integers(0, 256, (56, 56, 3), dtype=np.uint8),
                 "observation/joint_position": rng.normal(size=7).astype(np.float32),
                 "observation/gripper_position": np.array(0.3, np.float64)}
        run_case(binary, tmp, "pi0 droid (float image, 0-d gripper, 8 dims)", pi0, "pi0", "droid", droid,
                 "open the drawer", {"state": stats_for(rng, 8), "actions": stats_for(rng, 8)}, 9, L=12)
        raw = {"base_0_rgb": rng.integers(0, 256, (56, 56, 3), dtype=np.uint8),
               "right_wrist_0_rgb": rng.integers(0, 256, (3, 40, 60), dtype=np.uint8),
               "state": rng.normal(size=5).astype(np.float32)}
        run_case(binary, tmp, "pi0 raw (no norm stats, left camera empty, 5-dim state)", pi0, "pi0", "raw", raw,
                 "put fork on plate", None, 10, L=12)
        # π0.5: quantile normalization, discretized state in the prompt, no state token, no delta.
        ns05 = {"state": stats_for(rng, 8), "actions": stats_for(rng, 8)}
        lib05 = dict(libero)
        lib05["observation/state"] = np.concatenate([rng.normal(size=6) * 3, [-50.0, 50.0]])  # bins -1 and 255
        run_case(binary, tmp, "pi05 libero (quantile, discrete state prompt)", pi05, "pi05", "libero", lib05,
                 "close the drawer", ns05, 11, L=96)
        run_case(binary, tmp, "pi05 droid (quantile, discrete state prompt)", pi05, "pi05", "droid", droid,
                 "fold towel", ns05, 12, L=96)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
