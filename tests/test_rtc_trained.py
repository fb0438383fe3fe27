#!/usr/bin/python3
"""test_rtc_trained.py BUILD - training-time RTC (--rtc-mode training) on the tiny π0.5, against a
float64 numpy re-implementation of the action expert with a per-token time, written from LeRobot:
  policies/common/flow_matching.py euler_integrate: x[:d] = Y before every step and after its Euler
    update, the time tensor (B, H) with 0 on the first d rows;
  policies/common/vla_utils.py create_sinusoidal_pos_embedding of a (B, H) time: one embedding per row;
  policies/pi05/modeling_pi05.py embed_suffix: time_mlp_in, silu, time_mlp_out, silu -> adarms_cond
    (B, H, We); _prepare_trained_rtc_prefix: Y[:d] zero-padded to the model's action width;
  policies/pi_gemma.py PiGemmaRMSNorm with a per-token cond: dense(cond) -> (scale, shift, gate) per
    row, normed·(1 + scale) + shift, gated residuals x + y·gate.
The prefix keys/values, pad mask and positions come from the case file (written by a PyTorch
reference, not by pi0c). The numpy path is first checked without RTC against the case's actions.

Checked: numpy vs engine (ref backend and fast backend with f32 weights: 1e-5 absolute, float32
engine vs float64 numpy over 10 Euler steps on values of order 1; fast with bf16 weights: PCC >=
0.999 on the generated rows); the first d rows equal Y exactly;
d = 0 is bit-identical to no RTC; through `pi0 run --robot libero` (robot units) the first d actions
are the previous reply's rows s..s+d-1; the config field's validation and the misuse errors.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tally import check, finish  # noqa: E402
from test_rtc import read_safetensors, openpi_times  # noqa: E402

PFX = "paligemma_with_expert.gemma_expert.model."


def silu(x):
    return x / (1.0 + np.exp(-x))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def rms(x, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)


def time_embedding(t, dim, min_p, max_p):                   # t: (H,) -> (H, dim)
    frac = np.linspace(0.0, 1.0, dim // 2)
    period = min_p * (max_p / min_p) ** frac
    arg = np.asarray(t, np.float64)[:, None] * (2.0 * np.pi / period)[None, :]
    return np.concatenate([np.sin(arg), np.cos(arg)], axis=-1)


def rope(x, pos, base):                                     # x: (n, heads, hd), HF Gemma rotate_half
    hd = x.shape[-1]
    inv = 1.0 / base ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = pos[:, None].astype(np.float64) * inv[None, :]
    cos, sin = np.cos(np.concatenate([ang, ang], -1))[:, None, :], np.sin(np.concatenate([ang, ang], -1))[:, None, :]
    rot = np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], -1)
    return x * cos + rot * sin


class Expert:
    def __init__(self, ckpt, case):
        self.w = {k: v.astype(np.float64) for k, v in read_safetensors(os.path.join(ckpt, "model.safetensors")).items()}
        self.cfg = json.load(open(os.path.join(ckpt, "config.json")))
        self.case = case
        self.depth = self.cfg["expert_depth"]
        self.hd = self.cfg["expert_head_dim"]
        self.eps = self.cfg["rms_norm_eps"]
        pad = case["prefix_pad_mask"][0].astype(bool)
        self.pad = pad
        self.pos0 = int(pad.sum())

    def lin(self, name, x, bias=True):
        y = x @ self.w[name + ".weight"].T
        return y + self.w[name + ".bias"] if bias else y

    def velocity(self, x, t_rows):
        """v(x) for the action rows x (H, A) with per-row times t_rows (H,)."""
        H = x.shape[0]
        We = self.cfg["expert_width"]
        emb = time_embedding(t_rows, We, self.cfg["time_min_period"], self.cfg["time_max_period"])
        cond = silu(self.lin("time_mlp_out", silu(self.lin("time_mlp_in", emb))))     # (H, We) per row
        h = self.lin("action_in_proj", x)
        pos = self.pos0 + np.arange(H)
        for l in range(self.depth):
            L = PFX + f"layers.{l}."
            sc, sh, g = np.split(self.lin(L + "input_layernorm.dense", cond), 3, axis=-1)
            a = rms(h, self.eps) * (1 + sc) + sh
            q = rope(self.lin(L + "self_attn.q_proj", a, False).reshape(H, -1, self.hd), pos, self.cfg["rope_base"])
            k = rope(self.lin(L + "self_attn.k_proj", a, False).reshape(H, -1, self.hd), pos, self.cfg["rope_base"])
            v = self.lin(L + "self_attn.v_proj", a, False).reshape(H, -1, self.hd)
            pk = self.case[f"prefix_k_l{l}"][0].transpose(1, 0, 2).astype(np.float64)[self.pad]  # (P, kv, hd)
            pv = self.case[f"prefix_v_l{l}"][0].transpose(1, 0, 2).astype(np.float64)[self.pad]
            K = np.concatenate([pk, k], 0)[:, 0, :]                  # one KV head, shared by all heads
            V = np.concatenate([pv, v], 0)[:, 0, :]
            s = np.einsum("qhd,kd->hqk", q, K) / np.sqrt(self.hd)  # suffix rows see every valid key
            p = np.exp(s - s.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            o = np.einsum("hqk,kd->qhd", p, V).reshape(H, -1)
            h = h + self.lin(L + "self_attn.o_proj", o, False) * g
            sc, sh, g = np.split(self.lin(L + "post_attention_layernorm.dense", cond), 3, axis=-1)
            a = rms(h, self.eps) * (1 + sc) + sh
            m = gelu_tanh(self.lin(L + "mlp.gate_proj", a, False)) * self.lin(L + "mlp.up_proj", a, False)
            h = h + self.lin(L + "mlp.down_proj", m, False) * g
        sc, sh, _ = np.split(self.lin(PFX + "norm.dense", cond), 3, axis=-1)
        return self.lin("action_out_proj", rms(h, self.eps) * (1 + sc) + sh)

    def sample(self, noise, n_steps, y=None, d=0):
        times, dt = openpi_times(n_steps)
        x = noise.astype(np.float64)
        H = x.shape[0]
        for t in times:
            rows = np.full(H, float(t))
            if d:
                x[:d] = y[:d]
                rows[:d] = 0.0
            x = x + float(dt) * self.velocity(x, rows)
            if d:
                x[:d] = y[:d]
        return x


def run(pi0, *args):
    p = subprocess.run([pi0, "run", *args], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def robot_level(pi0, ck, tmp):
    """pi0 run --robot libero (robot units): the previous reply goes back to model units, is clamped,
    and comes out again, so with the same state the first d actions are the previous rows s..s+d-1
    (to float32 round-trip accuracy) and the rest differs."""
    from PIL import Image
    rng = np.random.default_rng(3)
    img = os.path.join(tmp, "cam.png")
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(img)
    stats = {"state": {"mean": rng.normal(0, 1, 8).tolist(), "std": rng.uniform(0.5, 2, 8).tolist(),
                       "q01": [-2.0] * 8, "q99": [2.0] * 8},
             "actions": {"mean": rng.normal(0, 1, 7).tolist(), "std": rng.uniform(0.5, 2, 7).tolist(),
                         "q01": (-rng.uniform(1, 3, 7)).tolist(), "q99": rng.uniform(1, 3, 7).tolist()}}
    ns = os.path.join(tmp, "norm_stats.json")
    with open(ns, "w") as f:
        json.dump({"norm_stats": stats}, f)
    base = ["--model", ck, "--robot", "libero", "--image", f"observation/image={img}", "--image",
            f"observation/wrist_image={img}", "--prompt", "pick", "--tokenizer",
            os.path.join(HERE, "data", "policy", "tiny.model"), "--norm-stats", ns, "--quiet",
            "--state", ",".join(map(repr, rng.normal(0, 1, 8)))]
    c1, c2 = os.path.join(tmp, "robot_c1.npy"), os.path.join(tmp, "robot_c2.npy")
    rc1, log1 = run(pi0, *base, "--out", c1)
    rc2, log2 = run(pi0, *base, "--out", c2, "--prev-actions", c1, "--delay", "2", "--horizon", "2", "--rtc-mode", "training")
    if rc1 or rc2:
        check(False, f"robot-level training-time RTC runs: {(log1 + log2).strip()[:200]}")
        return
    a, b = np.load(c1), np.load(c2)
    err = np.abs(b[:2] - a[2:4]).max()
    check(err <= 1e-5 * max(1.0, np.abs(a).max()) and np.abs(b[2:] - a[4:]).max() > 1e-3,
          f"robot level (libero, robot units): the first d = 2 actions = the previous reply's rows 2..3, max |d| {err:.2e}")


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    pi0 = os.path.join(build, "pi0")
    tmp = tempfile.mkdtemp(prefix="pi0_rtc_trained_")
    src = os.path.join(HERE, "data", "pi05_tiny")
    cpath = os.path.join(src, "case_00.safetensors")
    case = read_safetensors(cpath)
    noise = case["noise"][0].astype(np.float64)
    H, A = noise.shape
    n_steps = int(case["num_steps"][0])
    # a checkpoint "trained for RTC": the tiny π0.5 with LeRobot's field added to its config
    ck = os.path.join(tmp, "pi05_tiny_rtc")
    os.makedirs(ck)
    os.symlink(os.path.join(src, "model.safetensors"), os.path.join(ck, "model.safetensors"))
    cfg = json.load(open(os.path.join(src, "config.json")))
    max_delay = 2
    with open(os.path.join(ck, "config.json"), "w") as f:
        json.dump(dict(cfg, rtc_training_max_delay=max_delay), f)

    p = subprocess.run([pi0, "info", "--model", ck], capture_output=True, text=True)
    check(p.returncode == 0 and "trained with clean action prefixes up to 2 rows" in p.stdout,
          f"pi0 info shows the trained delay: {p.stdout.strip().splitlines()[3:4]}")

    ex = Expert(src, case)
    plain = ex.sample(noise, n_steps)
    err = np.abs(plain - case["actions"][0]).max()
    check(err <= 1e-5, f"numpy expert, no RTC, vs the case's PyTorch actions: max |d| {err:.2e} <= 1e-5")

    rng = np.random.default_rng(11)
    prev = rng.uniform(-1.5, 1.5, (H, A)).astype(np.float32)   # model units, as `pi0 run --out` writes
    ppath = os.path.join(tmp, "prev.npy")
    np.save(ppath, prev)
    s = 2
    y = np.zeros((H, A))
    y[: H - s] = prev[s:]
    base = ["--model", ck, "--inputs", cpath, "--quiet"]
    none = os.path.join(tmp, "none.npy")
    rc, log = run(pi0, *base, "--backend", "ref", "--out", none)
    check(rc == 0, f"no-RTC run: {log.strip()[:160]}")
    paths = {"ref": ["--backend", "ref"], "fast": ["--backend", "fast", "--weights", "f32"],
             "fast-bf16": ["--backend", "fast", "--weights", "bf16"]}
    for backend, bargs in paths.items():
        for d in (1, 2):
            out = os.path.join(tmp, f"{backend}_{d}.npy")
            rc, log = run(pi0, *base, *bargs, "--prev-actions", ppath, "--delay", str(d), "--horizon", str(s),
                          "--rtc-mode", "training", "--out", out)
            if rc != 0:
                check(False, f"{backend} d={d}: pi0 run failed: {log.strip()}")
                continue
            act = np.load(out).reshape(H, A)
            want = ex.sample(noise, n_steps, y, d)
            err = np.abs(act - want).max()
            moved = np.abs(want - plain).max()
            if backend == "fast-bf16":                       # bf16 weights: the project's PCC bar
                pcc = np.corrcoef(act[d:].ravel(), want[d:].ravel())[0, 1]
                check(pcc >= 0.999, f"{backend} d={d}: rows d.. vs numpy per-token-time expert, PCC {pcc:.6f} >= 0.999")
            else:
                check(err <= 1e-5 and moved > 1e-2,
                      f"{backend} d={d}: actions vs numpy per-token-time expert, max |d| {err:.2e} <= 1e-5 "
                      f"(the prefix moved the result by {moved:.3f})")
            check(np.array_equal(act[:d], prev[s:s + d]), f"{backend} d={d}: the first d rows equal Y exactly")
        out0 = os.path.join(tmp, f"{backend}_0.npy")
        ref0 = os.path.join(tmp, f"{backend}_none.npy")
        rc0, _ = run(pi0, *base, *bargs, "--prev-actions", ppath, "--delay", "0", "--horizon", str(s),
                     "--rtc-mode", "training", "--out", out0)
        rc1, _ = run(pi0, *base, *bargs, "--out", ref0)
        check(rc0 == 0 and rc1 == 0 and np.array_equal(np.load(out0), np.load(ref0)),
              f"{backend} d=0: bit-identical to no RTC")

    robot_level(pi0, ck, tmp)

    # misuse and checkpoints not trained for it
    for model, args, want in (
        (ck, ["--delay", "3", "--horizon", "3"], "delay d = 3 > the checkpoint's rtc_training_max_delay = 2"),
        (src, ["--delay", "1", "--horizon", "2"], "config.json has no rtc_training_max_delay > 0"),
        (os.path.join(HERE, "data", "pi0_tiny"), ["--delay", "1", "--horizon", "2"], "exists for π0.5 checkpoints only"),
    ):
        inp = cpath if "pi05" in model else os.path.join(model, "case_01.safetensors")
        rc, log = run(pi0, "--model", model, "--inputs", inp, "--quiet", "--prev-actions", ppath, "--rtc-mode", "training",
                      *args)
        check(rc != 0 and want in log, f"training mode {os.path.basename(model)} {' '.join(args)}: '{want}' in: "
                                       f"{log.strip()[:200]}")
    for value, want in ((5, "'rtc_training_max_delay': 5 must be < the action horizon (chunk_size) 5"),
                        (-1, "'rtc_training_max_delay': -1 out of range [0, 4095]"),
                        (1.5, "'rtc_training_max_delay': 1.5 is not an integer"),
                        ("2", "'rtc_training_max_delay': expected an integer, got a string")):
        with open(os.path.join(ck, "config.json"), "w") as f:
            json.dump(dict(cfg, rtc_training_max_delay=value), f)
        rc, log = run(pi0, *base, "--out", os.path.join(tmp, "x.npy"))
        check(rc != 0 and want in log, f"config.json rtc_training_max_delay = {value!r}: '{want}' in: {log.strip()[:200]}")
    shutil.rmtree(tmp, ignore_errors=True)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
