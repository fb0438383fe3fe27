#!/usr/bin/python3
"""test_lerobot.py BUILD - LeRobot checkpoints, exactly as LeRobot lays them out, run with no extra flag.

Writes tiny checkpoints in a temporary directory from tests/data/pi0_tiny and pi05_tiny (same
weights, saved the way LeRobot's save_pretrained does: every tensor prefixed "model.", F32), each
with a LeRobot config.json (the PI0Config / PI05Config field set; the tiny model's dimensions are
added as explicit fields because no real variant is that small) and the processor sidecars
(policy_preprocessor.json / policy_postprocessor.json with their step lists and
policy_*_step_<k>_*normalizer_processor.safetensors holding flat F32 "<feature>.<stat>" tensors for
every dataset feature, as LeRobot writes them). Layouts: a π0 fine-tune (MEAN_STD), a π0.5 fine-tune
(QUANTILES), a π0.5 fine-tune with MEAN_STD and relative actions, and a base checkpoint (empty
"features", no state file).

Each is run (a) at robot level with `pi0 run --model DIR --image <cam>=PNG ... --prompt T --state V`
and no other flag but --seed/--out, and through pi0_policy with float images (build/tests/test_lerobot
policy ...), and (b) at model level (`pi0 run --inputs`) on inputs computed here by an independent
numpy/Pillow/sentencepiece re-implementation of LeRobot v0.6.1's processors (normalize_processor.py,
processor_pi0.py, processor_pi05.py, modeling_pi0.py _preprocess_images, resize_with_pad_torch = ATen's
bilinear kernel), same seed. LeRobot's post-processing applied here to (b) must match (a) within 1e-5
relative (float32 rounding in the un-normalization; any input difference moves the tiny model far more).
Then: constant features (one warning naming the feature) and bad sidecar files (each a named error).
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import sentencepiece as spm
from PIL import Image

passed = failed = 0
HERE = os.path.dirname(os.path.abspath(__file__))
TOK = os.path.join(HERE, "data", "policy", "tiny.model")
F32 = np.float32


def check(ok, msg):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + msg)
    passed += bool(ok)
    failed += not ok


# ---- safetensors ---------------------------------------------------------------------------------

def st_read(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        dt = {"F32": "<f4", "I32": "<i4", "I64": "<i8"}[v["dtype"]]
        out[k] = np.frombuffer(raw[8 + n + b:8 + n + e], dt).reshape(v["shape"])
    return out


def st_write(path, tensors):
    hdr, blobs, off = {}, [], 0
    for k, a in tensors.items():
        a = np.ascontiguousarray(a)
        dt = {np.dtype("<f4"): "F32", np.dtype("<i4"): "I32", np.dtype("<i8"): "I64"}[a.dtype]
        hdr[k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# ---- LeRobot checkpoint layout -------------------------------------------------------------------

TINY_DIMS = ["vocab_size", "vlm_width", "vlm_depth", "vlm_mlp_dim", "vlm_num_heads", "vlm_num_kv_heads", "vlm_head_dim",
             "expert_width", "expert_depth", "expert_mlp_dim", "expert_num_heads", "expert_num_kv_heads",
             "expert_head_dim", "siglip_hidden_size", "siglip_num_hidden_layers", "siglip_num_attention_heads",
             "siglip_intermediate_size", "siglip_image_size", "siglip_patch_size", "siglip_num_channels",
             "siglip_layer_norm_eps", "rms_norm_eps", "rope_base"]


def lerobot_config(kind, src_cfg, cams, state_dim, action_dim, norm_map, L, relative=False, action_names=None):
    feats_in = {f"observation.images.{c}": {"type": "VISUAL", "shape": [3, h, w]} for c, (h, w) in cams}
    if state_dim:
        feats_in["observation.state"] = {"type": "STATE", "shape": [state_dim]}
    cfg = {"type": kind, "n_obs_steps": 1, "input_features": feats_in,
           "output_features": {"action": {"type": "ACTION", "shape": [action_dim]}},
           "device": "cpu", "use_amp": False, "use_peft": False, "push_to_hub": False, "repo_id": None,
           "private": None, "tags": None, "license": None, "pretrained_path": None,
           "paligemma_variant": "gemma_2b", "action_expert_variant": "gemma_300m", "dtype": "float32",
           "chunk_size": 5, "n_action_steps": 3, "max_state_dim": 8, "max_action_dim": 8,
           "num_inference_steps": 10, "time_sampling_beta_alpha": 1.5, "time_sampling_beta_beta": 1.0,
           "time_sampling_scale": 0.999, "time_sampling_offset": 0.001, "min_period": 0.004, "max_period": 4.0,
           "use_relative_actions": relative, "relative_exclude_joints": ["gripper"],
           "action_feature_names": action_names, "rtc_config": None, "image_resolution": [56, 56],
           "empty_cameras": 0, "normalization_mapping": norm_map, "gradient_checkpointing": False,
           "compile_model": False, "compile_mode": "max-autotune", "freeze_vision_encoder": False,
           "train_expert_only": False, "optimizer_lr": 2.5e-05, "optimizer_betas": [0.9, 0.95],
           "optimizer_eps": 1e-08, "optimizer_weight_decay": 0.01, "optimizer_grad_clip_norm": 1.0,
           "scheduler_warmup_steps": 1000, "scheduler_decay_steps": 30000, "scheduler_decay_lr": 2.5e-06,
           "tokenizer_max_length": L}
    for k in TINY_DIMS:
        cfg[k] = src_cfg[k]
    return cfg


def dataset_stats(rng, cams, state_dim, action_dim):
    """Stats for every dataset feature, as LeRobot's compute_stats writes them."""
    def one(shape, lo, hi):
        x = rng.uniform(lo, hi, (200,) + shape).astype(F32)
        s = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0), "count": np.array([200], F32)}
        for q in (1, 10, 50, 90, 99):
            s[f"q{q:02d}"] = np.quantile(x, q / 100, axis=0).astype(F32)
        return {k: np.asarray(v, F32) for k, v in s.items()}
    st = {f"observation.images.{c}": {k: v.reshape(3, 1, 1) if v.size == 3 else v for k, v in one((3,), 0, 1).items()} for c, _ in cams}
    st["observation.state"] = one((state_dim,), -2, 3)
    st["action"] = one((action_dim,), -1, 4)
    st["timestamp"] = one((1,), 0, 10)
    return st


def flat(stats):
    return {f"{k}.{s}": v for k, d in stats.items() for s, v in d.items()}


def write_processors(d, kind, features, norm_map, stats, L, relative=None, rename=None):
    eps = 1e-08
    nconf = {"eps": eps, "features": features, "norm_map": norm_map}
    pre_steps = [{"registry_name": "rename_observations_processor", "config": {"rename_map": rename or {}}},
                 {"registry_name": "to_batch_processor", "config": {}}]
    rel = {"registry_name": "relative_actions_processor",
           "config": relative or {"enabled": False, "exclude_joints": ["gripper"], "action_names": None}}
    tok = {"registry_name": "tokenizer_processor",
           "config": {"max_length": L, "task_key": "task", "padding_side": "right", "padding": "max_length",
                      "truncation": True, "tokenizer_name": "google/paligemma-3b-pt-224"}}
    dev = {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": None}}
    norm = {"registry_name": "normalizer_processor", "config": nconf}
    if kind == "pi0":   # processor_pi0.py v0.6.1 order
        pre_steps += [{"registry_name": "pi0_new_line_processor", "config": {}}, tok, dev, rel, norm]
    else:               # processor_pi05.py
        pre_steps += [rel, norm, {"registry_name": "pi05_prepare_state_tokenizer_processor_step",
                                  "config": {"max_state_dim": 8, "task_key": "task"}}, tok, dev]
    k = pre_steps.index(norm)
    unnorm = {"registry_name": "unnormalizer_processor",
              "config": {"eps": eps, "features": {"action": features["action"]} if "action" in features else {},
                         "norm_map": norm_map}}
    post_steps = [unnorm, {"registry_name": "absolute_actions_processor",
                           "config": {"enabled": bool(relative and relative["enabled"])}}, dev]
    if stats is not None:
        norm["state_file"] = f"policy_preprocessor_step_{k}_normalizer_processor.safetensors"
        unnorm["state_file"] = "policy_postprocessor_step_0_unnormalizer_processor.safetensors"
        st_write(os.path.join(d, norm["state_file"]), flat(stats))
        st_write(os.path.join(d, unnorm["state_file"]), flat(stats))
    for name, steps in (("policy_preprocessor", pre_steps), ("policy_postprocessor", post_steps)):
        with open(os.path.join(d, name + ".json"), "w") as f:
            json.dump({"name": name, "steps": steps}, f, indent=2)


def make_ckpt(root, name, src, kind, cams, state_dim, action_dim, norm_map, stats, L, relative=None, features=True,
              rename=None):
    d = os.path.join(root, name)
    os.makedirs(d)
    src_cfg = json.load(open(os.path.join(src, "config.json")))
    w = st_read(os.path.join(src, "model.safetensors"))
    st_write(os.path.join(d, "model.safetensors"), {"model." + k: v for k, v in sorted(w.items())})
    names = relative["action_names"] if relative else None
    cfg = lerobot_config(kind, src_cfg, cams, state_dim, action_dim, norm_map, L, bool(relative), names)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=4)
    feats = dict(cfg["input_features"], **cfg["output_features"]) if features else {}
    write_processors(d, kind, feats, norm_map, stats, L, relative, rename)
    os.makedirs(os.path.join(d, "tokenizer"))   # newer LeRobot saves the tokenizer inside the checkpoint
    shutil.copy(TOK, os.path.join(d, "tokenizer", "tokenizer.model"))
    return d, cfg


# ---- LeRobot's processors, re-typed with numpy ----------------------------------------------------

def taps(n_in, n_out):                      # ATen UpSampleKernel.cpp, align_corners=False, float
    o = np.arange(n_out)
    if n_in == n_out:
        return o, o, np.ones(n_out, F32), np.zeros(n_out, F32)
    scale = F32(n_in) / F32(n_out)
    s = np.maximum(scale * (o.astype(F32) + F32(0.5)) - F32(0.5), F32(0))
    i0 = np.minimum(np.floor(s).astype(np.int64), n_in - 1)
    l1 = np.clip(s - i0.astype(F32), F32(0), F32(1)).astype(F32)
    return i0, i0 + (i0 < n_in - 1), (F32(1) - l1).astype(F32), l1


def lr_image(img, S, st=None, mode="IDENTITY", old=False):   # normalizer (VISUAL) + _preprocess_images + resize_with_pad_torch
    x = img.astype(F32) / F32(255) if img.dtype == np.uint8 else img.astype(F32)
    x = x.transpose(2, 0, 1)
    if st is not None and mode != "IDENTITY":
        x = lr_norm(x, {k: v.reshape(3, 1, 1) for k, v in st.items() if v.size == 3}, mode, False)
    h, w = x.shape[1:]
    if old:                                 # lerobot <= 0.3 resize_with_pad: always resized, left/top padding, no clamp
        ratio = max(w / S, h / S)
        rh, rw = int(h / ratio), int(w / ratio)
        y0, y1, h0, h1 = taps(h, rh)
        x0, x1, w0, w1 = taps(w, rw)
        t0 = x[:, y0][:, :, x0] * w0 + x[:, y0][:, :, x1] * w1
        t1 = x[:, y1][:, :, x0] * w0 + x[:, y1][:, :, x1] * w1
        x = np.pad((t0 * h0[:, None] + t1 * h1[:, None]).astype(F32), ((0, 0), (S - rh, 0), (S - rw, 0)))
    elif (h, w) != (S, S):
        ratio = max(w / S, h / S)
        rh, rw = int(h / ratio), int(w / ratio)
        y0, y1, h0, h1 = taps(h, rh)
        x0, x1, w0, w1 = taps(w, rw)
        t0 = x[:, y0][:, :, x0] * w0 + x[:, y0][:, :, x1] * w1
        t1 = x[:, y1][:, :, x0] * w0 + x[:, y1][:, :, x1] * w1
        r = np.clip(t0 * h0[:, None] + t1 * h1[:, None], F32(0), F32(1))
        top, left = (S - rh) // 2, (S - rw) // 2
        x = np.zeros((3, S, S), F32)
        x[:, top:top + rh, left:left + rw] = r
    return (x * F32(2) - F32(1)).astype(F32)


def lr_norm(x, st, mode, inverse, eps=F32(1e-8)):   # normalize_processor.py _apply_transform
    x = x.astype(F32)
    if mode == "IDENTITY" or st is None:
        return x
    if mode == "MEAN_STD":
        return x * st["std"] + st["mean"] if inverse else (x - st["mean"]) / (st["std"] + eps)
    if mode == "MIN_MAX_OLD":               # lerobot <= 0.3 policies/normalize.py
        if inverse:
            return (x + F32(1)) / F32(2) * (st["max"] - st["min"]) + st["min"]
        return (x - st["min"]) / (st["max"] - st["min"] + eps) * F32(2) - F32(1)
    lo, hi = {"MIN_MAX": ("min", "max"), "QUANTILES": ("q01", "q99"), "QUANTILE10": ("q10", "q90")}[mode]
    den = st[hi] - st[lo]
    den = np.where(den == 0, eps, den).astype(F32)
    if inverse:
        return ((x + F32(1)) / F32(2) * den + st[lo]) if mode == "MIN_MAX" else ((x + F32(1)) * den / F32(2) + st[lo])
    return F32(2) * (x - st[lo]) / den - F32(1)


def lr_tokens(sp, kind, task, nstate, L):
    if kind == "pi0":                       # Pi0NewLineProcessor + HF tokenizer (BOS, right pad, truncate)
        ids = sp.encode(task if task.endswith("\n") else task + "\n", add_bos=True)
    else:                                   # Pi05PrepareStateTokenizerProcessorStep (v0.5.0+: unpadded state)
        bins = np.digitize(nstate, bins=np.linspace(-1, 1, 256 + 1)[:-1]) - 1
        clean = task.strip().replace("_", " ").replace("\n", " ")
        ids = sp.encode(f"Task: {clean}, State: {' '.join(map(str, bins))};\nAction: ", add_bos=True)
    ids = ids[:L]
    return (np.array(ids + [0] * (L - len(ids)), np.int32), np.array([1] * len(ids) + [0] * (L - len(ids)), np.int32))


def expected(tmp, pi0, d, cfg, kind, images, state, task, stats, seed, relative_mask=None, extra=(), old=False):
    """Model-level run on independently computed inputs, then LeRobot's post-processing."""
    S, A, L = 56, 8, cfg["tokenizer_max_length"]
    nm = cfg["normalization_mapping"]
    cams = [k.replace("observation.images.", "") for k, v in cfg["input_features"].items() if v["type"] == "VISUAL"]
    present = [c for c in cams if c in images]
    masks = [1] * len(present) + [0] * (len(cams) - len(present))
    feats = dict(cfg["input_features"], **cfg["output_features"]) if stats else {}
    imgs = [lr_image(images[c], S, stats.get(f"observation.images.{c}") if f"observation.images.{c}" in feats else None,
                     nm["VISUAL"], old) for c in present] + [np.full((3, S, S), -1, F32)] * (len(cams) - len(present))
    st_state = stats.get("observation.state") if stats and "observation.state" in feats else None
    nstate = lr_norm(np.asarray(state, F32), st_state, nm["STATE"], False)
    toks, tmask = lr_tokens(spm.SentencePieceProcessor(model_file=TOK), kind, task, nstate, L)
    case = {"images": np.stack(imgs)[None].astype(F32), "image_masks": np.array([masks], np.int32),
            "tokens": toks[None], "token_masks": tmask[None]}
    if kind == "pi0":
        case["state"] = np.pad(nstate, (0, A - len(nstate)))[None].astype(F32)   # pad_vector
    cp = os.path.join(tmp, f"case_{seed}.safetensors")
    st_write(cp, case)
    op = os.path.join(tmp, f"model_{seed}.npy")
    r = subprocess.run([pi0, "run", "--model", d, "--inputs", cp, "--seed", str(seed), "--out", op, "--quiet"] + list(extra),
                       capture_output=True, text=True)
    if r.returncode:
        return None, r.stderr
    act = np.load(op).reshape(-1, A)[:, : cfg["output_features"]["action"]["shape"][0]].astype(F32)
    amode = "MIN_MAX_OLD" if old and nm["ACTION"] == "MIN_MAX" else nm["ACTION"]
    act = lr_norm(act, stats.get("action") if stats else None, amode, True)
    if relative_mask is not None:           # AbsoluteActionsProcessorStep with the raw state
        act = act + np.where(relative_mask, np.asarray(state, F32)[: len(relative_mask)], F32(0)).astype(F32)
    return act.astype(F32), ""


def robot_cli(pi0, d, tmp, images, state, task, seed, names, extra=()):
    args = [pi0, "run", "--model", d, "--prompt", task, "--state", ",".join(repr(float(v)) for v in state),
            "--seed", str(seed), "--out", os.path.join(tmp, f"robot_{seed}.npy"), "--quiet"] + list(extra)
    for c, img in images.items():
        p = os.path.join(tmp, f"{c}_{seed}.png")
        Image.fromarray(img).save(p)
        args += ["--image", f"{names.get(c, c)}={p}"]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode:
        return None, r.stderr
    return np.load(os.path.join(tmp, f"robot_{seed}.npy")), r.stderr


def robot_api(helper, d, tmp, arrays, task, seed):
    specs = []
    for k, a in arrays.items():
        p = os.path.join(tmp, f"arr_{seed}_{len(specs)}.bin")
        np.ascontiguousarray(a).tofile(p)
        dt = {np.dtype(np.uint8): "u8", np.dtype(F32): "f32", np.dtype(np.float64): "f64"}[a.dtype]
        specs.append(f"{k}:{dt}:{'x'.join(map(str, a.shape))}:{p}")
    out = os.path.join(tmp, f"api_{seed}.raw")
    r = subprocess.run([helper, "policy", d, str(seed), task.encode().hex(), out] + specs, capture_output=True, text=True)
    if r.returncode:
        return None, r.stderr
    raw = open(out, "rb").read()
    rows, cols = np.frombuffer(raw[:8], "<i4")
    return np.frombuffer(raw[8:], "<f4").reshape(int(rows), int(cols)), r.stderr


def compare(label, got, want, err):
    if got is None or want is None:
        check(False, f"{label}: run failed: {err.strip()}")
        return
    if got.shape != want.shape:
        check(False, f"{label}: shape {got.shape}, expected {want.shape}")
        return
    rel = np.abs(got.astype(np.float64) - want) / np.maximum(1.0, np.abs(want))
    check(rel.max() <= 1e-5, f"{label}: {got.shape[0]}x{got.shape[1]} actions vs LeRobot chain: max rel diff "
                             f"{rel.max():.3g} (tol 1e-5)")


# ---- cases ---------------------------------------------------------------------------------------

def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    pi0, helper = os.path.join(build, "pi0"), os.path.join(build, "tests", "test_lerobot")
    src0, src05 = os.path.join(HERE, "data", "pi0_tiny"), os.path.join(HERE, "data", "pi05_tiny")
    for p in (pi0, helper, src0, src05, TOK):
        if not os.path.exists(p):
            check(False, f"missing {p}")
            return
    rng = np.random.default_rng(7)
    tmp = tempfile.mkdtemp(prefix="pi0_test_lerobot_")
    try:
        ms = {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}
        qs = {"VISUAL": "IDENTITY", "STATE": "QUANTILES", "ACTION": "QUANTILES"}
        top = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        wrist = rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)
        side = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)

        # 1. π0 fine-tune, MEAN_STD; 3 cameras declared, 2 given (side masked); 6-dim state and action.
        cams = [("top", (480, 640)), ("wrist", (56, 56)), ("side", (40, 30))]
        st = dataset_stats(rng, cams, 6, 6)
        d, cfg = make_ckpt(tmp, "pi0_ft", src0, "pi0", cams, 6, 6, ms, st, 12,
                           rename={"observation.images.cam_high": "observation.images.top"})
        state = rng.normal(size=6).astype(F32)
        imgs = {"top": top, "wrist": wrist}
        want, err = expected(tmp, pi0, d, cfg, "pi0", imgs, state, " pick_up the cube ", st, 1)
        got, e2 = robot_cli(pi0, d, tmp, imgs, state, " pick_up the cube ", 1,
                            {"top": "cam_high", "wrist": "observation.images.wrist"})
        compare("LeRobot π0 MEAN_STD fine-tune, pi0 run (top given by its rename_map source name cam_high, side "
                "camera masked)", got, want, err + e2)
        got, e2 = robot_api(helper, d, tmp, {"observation.images.top": top.astype(F32) / F32(255),
                                             "wrist": wrist, "observation.state": state}, " pick_up the cube ", 2)
        want, err = expected(tmp, pi0, d, cfg, "pi0", {"top": top.astype(F32) / F32(255), "wrist": wrist}, state,
                             " pick_up the cube ", st, 2)
        compare("LeRobot π0 MEAN_STD fine-tune, pi0_policy with a float [0,1] image", got, want, err + e2)

        r = subprocess.run([pi0, "info", "--model", d], capture_output=True, text=True)
        check("cameras top, wrist, side" in r.stdout and "state [6] MEAN_STD, action [6] MEAN_STD, chunk 5 rows" in r.stdout,
              "pi0 info shows the LeRobot description: " + " | ".join(l.strip() for l in r.stdout.splitlines() if
                                                                         "cameras" in l or "state [" in l))
        server_case(pi0, d, cfg, tmp, top, wrist, st, rng)

        # 2. π0.5 fine-tune, QUANTILES; 2 cameras; 7-dim state / action; state bins at both ends.
        cams = [("front", (224, 224)), ("wrist", (56, 56))]
        st = dataset_stats(rng, cams, 7, 7)
        d, cfg = make_ckpt(tmp, "pi05_q", src05, "pi05", cams, 7, 7, qs, st, 96)
        state = np.concatenate([rng.normal(size=5), [-50.0, 50.0]]).astype(F32)
        imgs = {"front": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8), "wrist": wrist}
        want, err = expected(tmp, pi0, d, cfg, "pi05", imgs, state, "fold the towel", st, 3)
        got, e2 = robot_cli(pi0, d, tmp, imgs, state, "fold the towel", 3, {})
        compare("LeRobot π0.5 QUANTILES fine-tune, pi0 run", got, want, err + e2)

        # 3. π0.5 fine-tune, MEAN_STD, relative actions (gripper excluded); 1 camera given as CHW floats.
        cams = [("cam", (96, 128))]
        st = dataset_stats(rng, cams, 8, 5)
        names = ["x", "y", "z", "yaw", "gripper"]
        rel = {"enabled": True, "exclude_joints": ["gripper"], "action_names": names}
        msv = dict(ms, VISUAL="MEAN_STD")    # images normalized per channel too (not LeRobot's π0 default)
        d, cfg = make_ckpt(tmp, "pi05_ms", src05, "pi05", cams, 8, 5, msv, st, 96, relative=rel)
        state = rng.normal(size=8).astype(F32)
        cam = rng.random((96, 128, 3), dtype=F32)
        want, err = expected(tmp, pi0, d, cfg, "pi05", {"cam": cam}, state, "open drawer", st, 4,
                             relative_mask=np.array([1, 1, 1, 1, 0], bool))
        got, e2 = robot_api(helper, d, tmp, {"observation.images.cam": np.ascontiguousarray(cam.transpose(2, 0, 1)),
                                             "state": state.astype(np.float64)}, "open drawer", 4)
        compare("LeRobot π0.5 MEAN_STD fine-tune (VISUAL MEAN_STD too) with relative actions, pi0_policy", got, want, err + e2)

        # 3b. The same checkpoint with real-time chunking: the previous chunk goes back in robot units
        # and must reach the model as LeRobot's inverse output path gives it (relative dims re-anchored
        # to the new raw state, MEAN_STD-normalized, zero-padded to max_action_dim).
        mask = np.array([1, 1, 1, 1, 0], bool)
        cam8 = (cam * 255).astype(np.uint8)
        prev, e1 = robot_cli(pi0, d, tmp, {"cam": cam8}, state, "open drawer", 8, {})
        state2 = rng.normal(size=8).astype(F32)
        rtc = ["--delay", "1", "--horizon", "2"]
        got, e2 = robot_cli(pi0, d, tmp, {"cam": cam8}, state2, "open drawer", 9, {},
                            ["--prev-actions", os.path.join(tmp, "robot_8.npy")] + rtc)
        if prev is not None:
            y = (prev.astype(F32) - np.where(mask, state2[:5], F32(0))).astype(F32)
            y = lr_norm(y, st["action"], "MEAN_STD", False)
            np.save(os.path.join(tmp, "prev_model.npy"), np.pad(y, ((0, 0), (0, 3)))[None].astype(F32))
        want, err = expected(tmp, pi0, d, cfg, "pi05", {"cam": cam8}, state2, "open drawer", st, 9, relative_mask=mask,
                             extra=["--prev-actions", os.path.join(tmp, "prev_model.npy")] + rtc)
        compare("LeRobot π0.5 relative actions + real-time chunking (previous chunk in robot units), pi0 run",
                got, want, err + e1 + e2)

        # 4. Base checkpoint: "features": {} and no state file -> identity; state [8] declared, 5 sent.
        cams = [("base_0_rgb", (56, 56)), ("left_wrist_0_rgb", (56, 56)), ("right_wrist_0_rgb", (56, 56))]
        d, cfg = make_ckpt(tmp, "pi0_base", src0, "pi0", cams, 8, 8, ms, None, 12, features=False)
        state = rng.normal(size=5).astype(F32)
        imgs = {"base_0_rgb": wrist, "right_wrist_0_rgb": side}
        want, err = expected(tmp, pi0, d, cfg, "pi0", imgs, state, "put fork on plate", None, 5)
        got, e2 = robot_cli(pi0, d, tmp, imgs, state, "put fork on plate", 5, {})
        compare("LeRobot π0 base (no stats: identity, 5 of 8 state dims)", got, want, err + e2)
        check(got is not None and e2.count("no statistics") == 1 and "not normalized" in e2,
              f"base checkpoint: identity normalization said once on stderr ({e2.strip()[:160]!r})")

        # 5. Constant features: std 0 in a state dim, q99 == q01 in an action dim (LeRobot: eps divisor).
        cams = [("top", (56, 56))]
        st = dataset_stats(rng, cams, 4, 4)
        st["observation.state"]["std"][2] = 0
        d, cfg = make_ckpt(tmp, "pi0_const", src0, "pi0", cams, 4, 4, ms, st, 12)
        state = st["observation.state"]["mean"].copy()
        state[[0, 1, 3]] += F32(0.25)
        want, err = expected(tmp, pi0, d, cfg, "pi0", {"top": wrist}, state, "stack", st, 6)
        got, e2 = robot_cli(pi0, d, tmp, {"top": wrist}, state, "stack", 6, {})
        compare("constant state dim (std 0), MEAN_STD", got, want, err + e2)
        check(e2.count("constant") == 1 and "'observation.state'" in e2 and "dim" in e2,
              f"constant state dim: one warning naming the feature ({e2.strip()[:200]!r})")
        st = dataset_stats(rng, cams, 4, 4)
        st["action"]["q99"][1] = st["action"]["q01"][1]
        d, cfg = make_ckpt(tmp, "pi05_const", src05, "pi05", cams, 4, 4, qs, st, 96)
        state = rng.normal(size=4).astype(F32)
        want, err = expected(tmp, pi0, d, cfg, "pi05", {"top": wrist}, state, "stack", st, 7)
        got, e2 = robot_cli(pi0, d, tmp, {"top": wrist}, state, "stack", 7, {})
        compare("constant action dim (q99 == q01), QUANTILES", got, want, err + e2)
        check(e2.count("constant") == 1 and "'action'" in e2, f"constant action dim: one warning ({e2.strip()[:200]!r})")

        # 6. lerobot <= 0.3 (the Feb-2025 lerobot/pi0 layout): old module paths, no processor files, the
        # statistics as normalize_inputs / unnormalize_outputs buffers in model.safetensors, MIN_MAX actions.
        old_layout(tmp, pi0, src0, rng, top, wrist)

        bad_sidecars(tmp, pi0, src0, rng, wrist)
        openpi_nonfinite(tmp, pi0, src0, rng, wrist)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bad_sidecars(tmp, pi0, src0, rng, img):
    cams = [("top", (56, 56))]
    ms = {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}
    n = [0]

    def case(label, mutate, *needles):
        n[0] += 1
        st = dataset_stats(rng, cams, 4, 4)
        d, _ = make_ckpt(tmp, f"bad{n[0]}", src0, "pi0", cams, 4, 4, ms, st, 12)
        mutate(d, st)
        got, err = robot_cli(pi0, d, tmp, {"top": img}, np.zeros(4, F32), "go", 100 + n[0], {})
        ok = got is None and "error:" in err and all(s in err for s in needles)
        check(ok, f"{label}: named error ({err.strip()[:220]!r})")

    pre = "policy_preprocessor_step_6_normalizer_processor.safetensors"
    post = "policy_postprocessor_step_0_unnormalizer_processor.safetensors"

    def truncate(d, st):
        p = os.path.join(d, pre)
        raw = open(p, "rb").read()
        open(p, "wb").write(raw[: len(raw) - 40])

    def wrong_shape(d, st):
        json.dump({"name": "policy_preprocessor", "steps": {"normalizer_processor": {}}},
                  open(os.path.join(d, "policy_preprocessor.json"), "w"))

    def not_json(d, st):
        open(os.path.join(d, "policy_postprocessor.json"), "w").write('{"name": "x", "steps": [')

    def restat(fname, key, value):
        def f(d, st):
            t = flat(st)
            if value is None:
                del t[key]
            else:
                t[key] = value
            st_write(os.path.join(d, fname), t)
        return f

    case("truncated state file", truncate, pre)
    case("preprocessor JSON of the wrong shape", wrong_shape, "policy_preprocessor.json", "'steps'")
    case("postprocessor JSON cut short", not_json, "policy_postprocessor.json", "byte")
    case("stat of the wrong length", restat(pre, "observation.state.mean", np.zeros(3, F32)), pre,
         "'observation.state.mean'", "3 values")
    case("stat with NaN", restat(post, "action.std", np.array([1, np.nan, 1, 1], F32)), post, "'action.std'", "NaN")
    case("negative std", restat(pre, "observation.state.std", np.array([1, 1, -1, 1], F32)), pre,
         "'observation.state.std'", "negative")
    case("missing stat the mode needs", restat(post, "action.mean", None), post, "'action.mean'", "MEAN_STD")


def old_path(k):                            # pre-2025 LeRobot module paths (see tests/test_ckpt_formats.c)
    for new, old in (("paligemma_with_expert.paligemma.model.language_model.", "paligemma_with_expert.paligemma.language_model.model."),
                     ("paligemma_with_expert.paligemma.model.vision_tower.", "paligemma_with_expert.paligemma.vision_tower."),
                     ("paligemma_with_expert.paligemma.model.multi_modal_projector.",
                      "paligemma_with_expert.paligemma.multi_modal_projector.")):
        if k.startswith(new):
            return "model." + old + k[len(new):]
    return "model." + k


def old_layout(tmp, pi0, src0, rng, top, wrist):
    cams = [("top", (480, 640)), ("wrist", (56, 56))]
    st = dataset_stats(rng, cams, 6, 6)
    d = os.path.join(tmp, "pi0_old")
    os.makedirs(os.path.join(d, "tokenizer"))
    shutil.copy(TOK, os.path.join(d, "tokenizer", "tokenizer.model"))
    src_cfg = json.load(open(os.path.join(src0, "config.json")))
    w = {old_path(k): v for k, v in st_read(os.path.join(src0, "model.safetensors")).items()}
    for mod, feat, stats in (("normalize_inputs", "observation_state", ("mean", "std")),
                             ("normalize_targets", "action", ("min", "max")),
                             ("unnormalize_outputs", "action", ("min", "max"))):
        for s_ in stats:
            w[f"{mod}.buffer_{feat}.{s_}"] = st["observation.state" if feat == "observation_state" else "action"][s_]
    st_write(os.path.join(d, "model.safetensors"), dict(sorted(w.items())))
    nm = {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MIN_MAX"}
    cfg = {"type": "pi0", "n_obs_steps": 1, "normalization_mapping": nm,
           "input_features": {"observation.images.top": {"type": "VISUAL", "shape": [3, 480, 640]},
                              "observation.images.wrist": {"type": "VISUAL", "shape": [3, 56, 56]},
                              "observation.state": {"type": "STATE", "shape": [6]}},
           "output_features": {"action": {"type": "ACTION", "shape": [6]}},
           "chunk_size": 5, "n_action_steps": 5, "max_state_dim": 8, "max_action_dim": 8,
           "resize_imgs_with_padding": [56, 56], "empty_cameras": 0, "adapt_to_pi_aloha": False,
           "use_delta_joint_actions_aloha": False, "tokenizer_max_length": 12, "proj_width": 1024, "num_steps": 10,
           "use_cache": True, "attention_implementation": "eager", "freeze_vision_encoder": True,
           "train_expert_only": False, "train_state_proj": True, "optimizer_lr": 2.5e-05}
    for k in TINY_DIMS:
        cfg[k] = src_cfg[k]
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=4)
    state = rng.normal(size=6).astype(F32)
    imgs = {"top": top, "wrist": wrist}
    want, err = expected(tmp, pi0, d, cfg, "pi0", imgs, state, "pick up", st, 31, old=True)
    got, e2 = robot_cli(pi0, d, tmp, imgs, state, "pick up", 31, {})
    compare("lerobot <= 0.3 layout (stats in the weights, MIN_MAX actions, left/top padding)", got, want, err + e2)


def server_case(pi0, d, cfg, tmp, top, wrist, st, rng):
    """pi0 serve on a LeRobot checkpoint, no --robot: LeRobot key names over openpi's protocol."""
    import asyncio
    import select
    import time
    import websockets
    sys.path.insert(0, HERE)
    from openpi_msgpack import packb, unpackb
    proc = subprocess.Popen([pi0, "serve", "--model", d, "--host", "127.0.0.1", "--port", "0", "--seed", "21",
                             "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line, deadline = b"", time.monotonic() + 60
        while time.monotonic() < deadline and not line.endswith(b"\n") and proc.poll() is None:
            if select.select([proc.stdout], [], [], 0.2)[0]:
                line += os.read(proc.stdout.fileno(), 1)
        text = line.decode(errors="replace").strip()
        if not text.startswith("listening on 127.0.0.1:"):
            check(False, f"pi0 serve on a LeRobot checkpoint: no listening line ({text!r})")
            return
        port = int(text.rsplit(":", 1)[1])
        state = rng.normal(size=6).astype(F32)
        obs = {"observation.images.top": top, "wrist": wrist, "observation.state": state, "prompt": "stack the cups"}

        async def talk():
            async with websockets.connect(f"ws://127.0.0.1:{port}/", compression=None, max_size=None) as ws:
                await asyncio.wait_for(ws.recv(), 60)
                await ws.send(packb(obs))
                return unpackb(await asyncio.wait_for(ws.recv(), 120))

        reply = asyncio.run(talk())
        got = np.asarray(reply.get("actions")) if isinstance(reply, dict) else None
        want, err = expected(tmp, pi0, d, cfg, "pi0", {"top": top, "wrist": wrist}, state, "stack the cups", st, 21)
        compare("pi0 serve, LeRobot key names (observation.images.top, wrist, observation.state)", got, want, err)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def openpi_nonfinite(tmp, pi0, src0, rng, img):
    """openpi norm_stats.json as Python's json.dump writes it (NaN tokens): accepted, refused by name
    only where a NaN would reach the model or the robot."""
    p = os.path.join(tmp, "img.png")
    Image.fromarray(img).save(p)

    def run(state_mean, action_std, label, *needles):
        ns = {"norm_stats": {"state": {"mean": state_mean, "std": [1.0] * 8, "q01": None, "q99": None},
                             "actions": {"mean": [0.0] * 8, "std": action_std, "q01": None, "q99": None}}}
        f = os.path.join(tmp, "ns.json")
        with open(f, "w") as fh:
            json.dump(ns, fh)                 # writes NaN, as openpi's pydantic/json path does
        out = os.path.join(tmp, "ns_out.npy")
        r = subprocess.run([pi0, "run", "--model", src0, "--robot", "libero", "--tokenizer", TOK, "--norm-stats", f,
                            "--image", f"observation/image={p}", "--image", f"observation/wrist_image={p}",
                            "--prompt", "go", "--state", ",".join(["0.5"] * 8), "--out", out, "--quiet"],
                           capture_output=True, text=True)
        if not needles:
            ok = r.returncode == 0 and np.isfinite(np.load(out)).all()
            check(ok and "NaN" in open(f).read(), f"{label}: runs, finite actions ({r.stderr.strip()[:160]!r})")
        else:
            check(r.returncode != 0 and all(n in r.stderr for n in needles), f"{label}: named error ({r.stderr.strip()[:200]!r})")

    nan = float("nan")
    run([0.0] * 8, [1.0] * 7 + [nan], "NaN in actions dim 7, which the libero preset does not return")
    run([0.0] * 8, [1.0, 1.0, nan] + [1.0] * 5, "NaN in a returned action dim", "ns.json", "'norm_stats.actions.std[2]'", "NaN")
    run([0.0, 0.0, 0.0, nan] + [0.0] * 4, [1.0] * 8, "NaN in a state dim the robot sends", "ns.json",
        "'norm_stats.state.mean[3]'", "NaN")


if __name__ == "__main__":
    main()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
