#!/usr/bin/python3
"""train_tiny_smooth.py - train the action expert of a tiny π0 on smooth, multimodal synthetic
chunks, so real-time chunking can be judged on a policy that has learned something
(tests/test_rtc_loop.c; BENCHMARKS.md "Real-time chunking (RTC)").

What is trained. The tiny π0 of tests/data/pi0_tiny with a longer chunk (H = 16) and its VLM and
vision tower frozen (copied unchanged): the action expert (3 Gemma layers attending to the prefix
K/V of one fixed observation) and the state / action / action-time / output projections, newly
initialised, by flow matching in openpi's convention:
    x_t = t·noise + (1 − t)·a,   target u = noise − a,   t ~ Beta(1.5, 1)·0.999 + 0.001,
    inference from t = 1 (noise) to t = 0 with 10 Euler steps.
The prefix K/V are the PyTorch reference's own (tests/data/pi0_tiny/case_01.safetensors: every VLM
layer's K after RoPE and V), so no VLM runs here. Why π0 and not π0.5: π0's state enters as one
suffix token through state_proj, so one fixed prefix serves every training example; π0.5 puts the
state into the prompt, and the prefix (the frozen VLM) would change with every state.

The data. Per action dimension j a sinusoid over the chunk rows h with a fixed period P_j
(24 + 4j rows) and a random amplitude r ~ U(0.5, 1.5) and phase φ ~ U(0, 2π):
    a[h, j] = r·sin(2π·h/P_j + φ).
Each dimension's chunks form a ring in the (sin, cos) plane: a multimodal distribution with no
preferred phase, so without RTC consecutive chunks pick different phases and the arm jumps, while
a chunk guided to continue the previous one has one smooth continuation. The state is drawn
N(0, 1) independently of the chunk (the task does not depend on it; the closed loop feeds the last
executed action there and the model has learned to ignore it).

After training the script writes OUT/{config.json, model.safetensors, inputs.safetensors,
README.md} and, with --pi0, checks its torch forward against pi0c's reference path on the trained
weights: `pi0 run --backend ref --taps` gives every Euler step's x and v; the torch forward (float64)
recomputes each v from the x before the step (must agree within 1e-5).

    python3 tools/train/train_tiny_smooth.py --out tests/data/pi0_tiny_smooth --pi0 build/pi0
Needs python3-torch (`make train-deps`); the tests only read the committed checkpoint.
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before torch loads BLAS: small matrices, shared machine
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(ROOT, "tests", "data", "pi0_tiny")
CASE = os.path.join(SRC, "case_01.safetensors")
EXP = "paligemma_with_expert.gemma_expert.model."
H = 16                       # chunk rows (pi0_tiny has 5)
WE, MLP = 64, 128            # expert width and MLP width (pi0_tiny: 32, 64); heads stay the VLM's
PERIODS = [24 + 4 * j for j in range(8)]


# ---- safetensors (the format is a u64 header length, a JSON header and raw little-endian data) ----

def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        dt = {"F32": np.float32, "I32": np.int32}[v["dtype"]]
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dt).reshape(v["shape"]).copy()
    return out


def write_st(path, tensors, meta=None):
    hdr, blobs, off = {}, [], 0
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k])
        dt = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32"}[a.dtype]
        b = a.tobytes()
        hdr[k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if meta:
        hdr["__metadata__"] = meta
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# ---- the π0 suffix and action expert over a fixed prefix K/V (PI0_MODEL.md §2.4, §2.5, §4.2) ----

class Expert(torch.nn.Module):
    def __init__(self, cfg, pk, pv, n_valid, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.cfg = cfg
        We, M, A, S = cfg["expert_width"], cfg["expert_mlp_dim"], cfg["action_dim"], cfg["state_dim"]
        nh, nkv, hd = cfg["expert_num_heads"], cfg["expert_num_kv_heads"], cfg["expert_head_dim"]
        self.p = torch.nn.ParameterDict()

        def lin(name, o, i, bias=True):       # torch.nn.Linear's default init, from our generator
            bound = 1.0 / math.sqrt(i)
            self.p[name.replace(".", "__") + "__weight"] = torch.nn.Parameter((torch.rand(o, i, generator=g) * 2 - 1) * bound)
            if bias:
                self.p[name.replace(".", "__") + "__bias"] = torch.nn.Parameter((torch.rand(o, generator=g) * 2 - 1) * bound)

        def norm(name, n):                    # Gemma RMSNorm stores w and multiplies by (1 + w)
            self.p[name.replace(".", "__") + "__weight"] = torch.nn.Parameter(torch.zeros(n))

        lin("state_proj", We, S)
        lin("action_in_proj", We, A)
        lin("action_time_mlp_in", We, 2 * We)
        lin("action_time_mlp_out", We, We)
        lin("action_out_proj", A, We)
        for l in range(cfg["expert_depth"]):
            L = f"{EXP}layers.{l}."
            norm(L + "input_layernorm", We)
            lin(L + "self_attn.q_proj", nh * hd, We, False)
            lin(L + "self_attn.k_proj", nkv * hd, We, False)
            lin(L + "self_attn.v_proj", nkv * hd, We, False)
            lin(L + "self_attn.o_proj", We, nh * hd, False)
            norm(L + "post_attention_layernorm", We)
            lin(L + "mlp.gate_proj", M, We, False)
            lin(L + "mlp.up_proj", M, We, False)
            lin(L + "mlp.down_proj", We, M, False)
        norm(EXP + "norm", We)
        self.pk, self.pv, self.n_valid = pk, pv, n_valid   # per layer [P_valid, hd] (K after RoPE)

    def w(self, name):
        return self.p[name.replace(".", "__")]

    def lin(self, name, x, bias=True):
        y = x @ self.w(name + ".weight").t()
        return y + self.w(name + ".bias") if bias else y

    def rms(self, name, x):
        eps = self.cfg["rms_norm_eps"]
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * (1 + self.w(name + ".weight"))

    def named_tensors(self):
        return {k.replace("__", "."): v.detach().cpu().numpy().astype(np.float32) for k, v in self.p.items()}

    def forward(self, x, t, state):
        """Velocity [B, H, A] for noisy actions x [B, H, A] at times t [B] with state [B, S]."""
        cfg, dt = self.cfg, x.dtype
        B, Hh, _ = x.shape
        We, nh, hd = cfg["expert_width"], cfg["expert_num_heads"], cfg["expert_head_dim"]
        # time embedding in float64, then the working dtype (§4.1)
        K2 = We // 2
        frac = torch.linspace(0.0, 1.0, K2, dtype=torch.float64)
        period = cfg["time_min_period"] * (cfg["time_max_period"] / cfg["time_min_period"]) ** frac
        arg = t.to(torch.float64)[:, None] * (2 * math.pi / period)[None, :]
        temb = torch.cat([torch.sin(arg), torch.cos(arg)], -1).to(dt)
        a = self.lin("action_in_proj", x)
        u = torch.cat([a, temb[:, None, :].expand(B, Hh, We)], -1)
        m = self.lin("action_time_mlp_out", F.silu(self.lin("action_time_mlp_in", u)))
        h = torch.cat([self.lin("state_proj", state)[:, None, :], m], 1)          # [B, 1 + H, We]
        N = 1 + Hh
        pos = torch.arange(N, dtype=torch.float64) + self.n_valid
        inv = 1.0 / cfg["rope_base"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        ang = pos[:, None] * inv[None, :]
        cos = torch.cat([torch.cos(ang)] * 2, -1).to(dt)
        sin = torch.cat([torch.sin(ang)] * 2, -1).to(dt)

        def rope(z):                                               # [..., N, hd], rotate-half pairs
            rot = torch.cat([-z[..., hd // 2:], z[..., :hd // 2]], -1)
            return z * cos + rot * sin

        # suffix mask: the state token sees itself only, action tokens see the state and each other
        smask = torch.ones(N, N, dtype=torch.bool)
        smask[0, 1:] = False
        for l in range(cfg["expert_depth"]):
            L = f"{EXP}layers.{l}."
            n = self.rms(L + "input_layernorm", h)
            q = rope(self.lin(L + "self_attn.q_proj", n, False).view(B, N, nh, hd).transpose(1, 2))   # [B, nh, N, hd]
            k = rope(self.lin(L + "self_attn.k_proj", n, False))                                     # [B, N, hd]
            v = self.lin(L + "self_attn.v_proj", n, False)
            pk, pv = self.pk[l].to(dt), self.pv[l].to(dt)
            Kx = torch.cat([pk[None].expand(B, -1, -1), k], 1)                                        # [B, P + N, hd]
            Vx = torch.cat([pv[None].expand(B, -1, -1), v], 1)
            logits = torch.einsum("bnqd,bkd->bnqk", q, Kx) / math.sqrt(hd)
            P = pk.shape[0]
            mask = torch.cat([torch.ones(N, P, dtype=torch.bool), smask], 1)
            logits = logits.masked_fill(~mask, float("-inf"))
            o = torch.einsum("bnqk,bkd->bqnd", torch.softmax(logits, -1), Vx).reshape(B, N, nh * hd)
            h = h + self.lin(L + "self_attn.o_proj", o, False)
            n = self.rms(L + "post_attention_layernorm", h)
            g = F.gelu(self.lin(L + "mlp.gate_proj", n, False), approximate="tanh")
            h = h + self.lin(L + "mlp.down_proj", g * self.lin(L + "mlp.up_proj", n, False), False)
        return self.lin("action_out_proj", self.rms(EXP + "norm", h)[:, 1:])


def openpi_times(n):
    """openpi's float32 loop: t = 1, dt = -1/n, while t >= -dt/2 (the grid pi0c uses by default)."""
    t, dt, out = np.float32(1.0), np.float32(-1.0 / n), []
    while t >= -dt / 2:
        out.append(t)
        t = np.float32(t + dt)
    return out, dt


def sample(model, noise, state, n_steps):
    times, dt = openpi_times(n_steps)
    x = noise
    for t in times:
        x = x + float(dt) * model(x, torch.full((x.shape[0],), float(t), dtype=x.dtype), state)
    return x


def chunks(gen, B, A, dtype=torch.float32):
    h = torch.arange(H, dtype=torch.float64)
    per = torch.tensor(PERIODS[:A], dtype=torch.float64)
    r = 0.5 + torch.rand(B, 1, A, generator=gen, dtype=torch.float64)
    phi = 2 * math.pi * torch.rand(B, 1, A, generator=gen, dtype=torch.float64)
    return (r * torch.sin(2 * math.pi * h[None, :, None] / per[None, None, :] + phi)).to(dtype)


def ring_fit(a):
    """Per chunk and dim, least squares onto (sin, cos) of the dim's period: (RMS residual, radius)."""
    h = np.arange(H, dtype=np.float64)
    res, rad = [], []
    for j in range(a.shape[2]):
        Bm = np.stack([np.sin(2 * np.pi * h / PERIODS[j]), np.cos(2 * np.pi * h / PERIODS[j])], 1)
        coef, *_ = np.linalg.lstsq(Bm, a[:, :, j].T, rcond=None)        # [2, B]
        res.append(np.sqrt(((Bm @ coef - a[:, :, j].T) ** 2).mean(0)))
        rad.append(np.hypot(coef[0], coef[1]))
    return np.concatenate(res), np.concatenate(rad)


def check_against_pi0c(model, pi0, out, case, A):
    """pi0 run --backend ref --taps on the trained checkpoint. Returns the largest |v_torch - v_pi0c|
    over the Euler steps (torch recomputes each step's v in float64 from pi0c's x before that step)
    and the largest |actions| difference of a torch float64 run from the same noise (its own x)."""
    with tempfile.TemporaryDirectory() as tmp:
        taps, act = os.path.join(tmp, "taps.safetensors"), os.path.join(tmp, "a.npy")
        p = subprocess.run([pi0, "run", "--model", out, "--inputs", os.path.join(out, "inputs.safetensors"),
                            "--backend", "ref", "--taps", taps, "--out", act, "--quiet"], capture_output=True, text=True)
        if p.returncode:
            sys.exit(f"pi0 run failed: {p.stdout}{p.stderr}")
        tp = read_st(taps)
        actions = np.load(act).reshape(H, A)
    m64 = model.double()
    times, _ = openpi_times(10)
    noise = torch.from_numpy(case["noise"].astype(np.float64))
    st = torch.from_numpy(case["state"].astype(np.float64))
    x, worst = noise, 0.0
    with torch.no_grad():
        for k, t in enumerate(times):
            v = m64(x, torch.tensor([float(t)], dtype=torch.float64), st)[0].numpy()
            worst = max(worst, np.abs(v - tp[f"denoise.s{k:02d}.v"].reshape(H, A)).max())
            x = torch.from_numpy(tp[f"denoise.s{k:02d}.x"].reshape(1, H, A).astype(np.float64))
        own = sample(m64, noise, st, 10)[0].numpy()
    model.float()
    return float(worst), float(np.abs(own - actions).max())


def load_trained(model, path):
    """Put a written checkpoint's expert and projections back into the torch module (--check)."""
    w = read_st(os.path.join(path, "model.safetensors"))
    with torch.no_grad():
        for k, p in model.p.items():
            p.copy_(torch.from_numpy(w[k.replace("__", ".")]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--pi0", help="the pi0 binary, to check the trained weights against pi0c's reference path")
    ap.add_argument("--check", action="store_true",
                    help="no training: check OUT's committed weights against pi0c (needs --pi0), update train_stats.json")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    cfg = json.load(open(os.path.join(SRC, "config.json")))
    cfg.update(action_horizon=H, expert_width=WE, expert_mlp_dim=MLP)
    cfg.pop("weights_seed", None)
    A, S = cfg["action_dim"], cfg["state_dim"]
    src = read_st(os.path.join(SRC, "model.safetensors"))
    case = read_st(CASE)
    pad = case["prefix_pad_mask"][0].astype(bool)
    pk = [torch.from_numpy(case[f"prefix_k_l{l}"][0, 0][pad].astype(np.float64)) for l in range(cfg["vlm_depth"])]
    pv = [torch.from_numpy(case[f"prefix_v_l{l}"][0, 0][pad].astype(np.float64)) for l in range(cfg["vlm_depth"])]
    model = Expert(cfg, pk, pv, int(pad.sum()), args.seed)
    if args.check:
        if not args.pi0:
            sys.exit("--check needs --pi0")
        load_trained(model, args.out)
        report(model, args, read_st(os.path.join(args.out, "inputs.safetensors")), A, None)
        return

    gen = torch.Generator().manual_seed(args.seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / 200) * 0.5 * (1 + math.cos(math.pi * min(i, args.steps) / args.steps)))
    beta = torch.distributions.Beta(torch.tensor(1.5), torch.tensor(1.0))
    t0, hist = time.time(), []
    for i in range(args.steps):
        a = chunks(gen, args.batch, A)
        noise = torch.randn(args.batch, H, A, generator=gen)
        t = beta.sample((args.batch,)) * 0.999 + 0.001
        state = torch.randn(args.batch, S, generator=gen)
        xt = t[:, None, None] * noise + (1 - t[:, None, None]) * a
        loss = F.mse_loss(model(xt, t, state), noise - a)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        hist.append(loss.item())
        if (i + 1) % 100 == 0:
            print(f"step {i + 1:5d}  loss {np.mean(hist[-100:]):.4f}  {time.time() - t0:.0f} s", flush=True)
    train_s = time.time() - t0
    final_loss = float(np.mean(hist[-250:]))

    # held-out flow-matching loss and samples
    with torch.no_grad():
        g2 = torch.Generator().manual_seed(12345)
        a = chunks(g2, 4096, A)
        noise = torch.randn(4096, H, A, generator=g2)
        t = beta.sample((4096,)) * 0.999 + 0.001
        xt = t[:, None, None] * noise + (1 - t[:, None, None]) * a
        held = F.mse_loss(model(xt, t, torch.randn(4096, S, generator=g2)), noise - a).item()
        smp = sample(model, torch.randn(1024, H, A, generator=g2), torch.randn(1024, S, generator=g2), 10).numpy()
    res, rad = ring_fit(smp.astype(np.float64))
    res_data, _ = ring_fit(chunks(g2, 1024, A).numpy().astype(np.float64))
    stats = {"held_out_loss": held, "final_train_loss": final_loss, "sample_ring_residual_rms": float(res.mean()),
             "sample_radius_p5_p50_p95": [float(np.percentile(rad, q)) for q in (5, 50, 95)],
             "data_ring_residual_rms": float(res_data.mean()), "train_seconds": train_s}
    print(json.dumps(stats, indent=1))

    os.makedirs(args.out, exist_ok=True)
    tensors = {k: v for k, v in src.items() if not (k.startswith(EXP) or k.startswith(("state_proj", "action_")))}
    tensors.update(model.named_tensors())
    write_st(os.path.join(args.out, "model.safetensors"), tensors)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(dict(sorted(cfg.items())), f, indent=2)
        f.write("\n")
    # the observation the expert was trained on (case_01's images and tokens), a state, fixed noise,
    # and case_01's prefix K/V so the expert can be re-run without the VLM
    g3 = np.random.default_rng(args.seed)
    inputs = {k: case[k] for k in ("images", "image_masks", "tokens", "token_masks", "prefix_pad_mask")}
    inputs.update({k: case[k] for k in case if k.startswith(("prefix_k_l", "prefix_v_l"))})
    inputs["state"] = g3.normal(0, 1, (1, S)).astype(np.float32)
    inputs["noise"] = g3.normal(0, 1, (1, H, A)).astype(np.float32)
    inputs["num_steps"] = np.array([10], np.int32)
    write_st(os.path.join(args.out, "inputs.safetensors"), inputs)

    stats.update(seed=args.seed, steps=args.steps, batch=args.batch, lr=args.lr, torch=torch.__version__)
    report(model, args, inputs, A, stats)


def report(model, args, inputs, A, stats):
    """The check against pi0c (with --pi0), then OUT/train_stats.json (kept from the training with --check)."""
    path = os.path.join(args.out, "train_stats.json")
    if stats is None:
        stats = json.load(open(path))
    if args.pi0:
        worst, final = check_against_pi0c(model, args.pi0, args.out, inputs, A)
        stats["pi0c_ref_velocity_max_abs_err"] = worst
        stats["pi0c_ref_vs_torch_actions_max_abs_err"] = final
        print(f"torch forward (float64) vs pi0c reference path: velocity max |d| {worst:.2e} per step, "
              f"actions of a whole torch run {final:.2e}")
    with open(path, "w") as f:
        json.dump(stats, f, indent=1)
        f.write("\n")
    if args.pi0 and worst > 1e-5:
        sys.exit("torch forward and pi0c disagree by more than 1e-5: the training does not match what pi0c runs")


if __name__ == "__main__":
    main()
