#!/usr/bin/python3
"""test_rtc.py BUILD - real-time chunking, identity-Jacobian mode, against a numpy re-implementation
of LeRobot's RTCProcessor (src/lerobot/policies/rtc/modeling_rtc.py: get_prefix_weights with
start = d, end = H - s; denoise_step's x1 = x - t·v, err = (Y - x1)·W, guidance weight
min(beta, nan_to_num(c · inv_r2)), v - weight·err) and openpi's float32 Euler loop.

`pi0 run --taps` writes, per step, x (after the step), the model's velocity v_model and the velocity
used (v). Python recomputes each step from the engine's x before it and v_model, in float64, and
compares x after the step and the final actions (tolerance 1e-5 absolute: float32 vs float64 of a
handful of multiply-adds on values of order 1-10). Both tiny models, ref and fast paths, all four
schedules; then the CLI's misuse errors.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

passed = failed = 0
HERE = os.path.dirname(os.path.abspath(__file__))


def check(ok, msg):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + msg)
    passed += bool(ok)
    failed += not ok


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        dt = {"F32": np.float32, "I32": np.int32, "F64": np.float64}[v["dtype"]]
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dt).reshape(v["shape"])
    return out


# ---- LeRobot's RTCProcessor, re-typed in numpy -----------------------------------------------

def prefix_weights(schedule, start, end, total):            # get_prefix_weights
    start = min(start, end)
    if schedule == "zeros":
        w = np.zeros(total)
        w[:start] = 1.0
        return w
    if schedule == "ones":
        w = np.ones(total)
        w[end:] = 0.0
        return w
    steps = total - max(total - end, 0) - start             # _linweights
    lin = np.linspace(1, 0, steps + 2)[1:-1] if end > start and steps > 0 else np.zeros(0)
    if schedule == "exp":
        lin = lin * np.expm1(lin) / (np.e - 1)
    w = np.concatenate([lin, np.zeros(max(total - end, 0))])
    return np.concatenate([np.ones(min(start, total)), w])


def guidance_weight(time, beta):
    tau = np.float64(1.0 - time)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_r2 = ((1 - tau) ** 2 + tau ** 2) / (1 - tau) ** 2
        c = np.nan_to_num((1 - tau) / tau, posinf=beta)
        g = np.nan_to_num(c * inv_r2, posinf=beta)
    return min(g, beta)


def guided_velocity(x, v, y, w, time, beta):                # denoise_step with an identity Jacobian
    x1 = x - time * v
    err = (y - x1) * w[:, None]
    return v - guidance_weight(time, beta) * err


def openpi_times(n):                                         # float32 t, dt; t += dt while t >= -dt/2
    t, dt, out = np.float32(1.0), np.float32(-1.0 / n), []
    while t >= -dt / 2:
        out.append(t)
        t = np.float32(t + dt)
    return out, dt


def run(binary, *args):
    p = subprocess.run([binary, "run", *args], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def robot_level(pi0, tmp):
    """Robot units: the previous chunk is converted back to model units (numpy: openpi's input
    transforms for actions, DeltaActions with the new state then Normalize, as LeRobot's
    reanchor_relative_rtc_prefix does) -- libero preset, π0: delta dims 0-5, 7 output columns."""
    from PIL import Image
    ckpt = os.path.join(HERE, "data", "pi0_tiny")
    rng = np.random.default_rng(3)
    img = os.path.join(tmp, "cam.png")
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(img)
    stats = {"state": {"mean": rng.normal(0, 1, 8).tolist(), "std": rng.uniform(0.5, 2, 8).tolist()},
             "actions": {"mean": rng.normal(0, 1, 7).tolist(), "std": rng.uniform(0.5, 2, 7).tolist()}}
    ns = os.path.join(tmp, "norm_stats.json")
    with open(ns, "w") as f:
        json.dump({"norm_stats": stats}, f)
    base = ["--model", ckpt, "--robot", "libero", "--image", f"observation/image={img}",
            "--image", f"observation/wrist_image={img}", "--prompt", "pick",
            "--tokenizer", os.path.join(HERE, "data", "policy", "tiny.model"), "--norm-stats", ns, "--quiet"]
    s1 = rng.normal(0, 1, 8)
    s2 = s1 + rng.normal(0, 0.5, 8)
    c1, t1 = os.path.join(tmp, "robot_c1.npy"), os.path.join(tmp, "robot_t1.safetensors")
    rc, log = run(pi0, *base, "--state", ",".join(map(repr, s1)), "--out", c1, "--taps", t1)
    if rc != 0:
        check(False, f"robot-level run: {log.strip()}")
        return
    prev = np.load(c1)
    H = prev.shape[0]
    model_x = read_safetensors(t1)[f"denoise.s09.x"]
    mean, std = np.array(stats["actions"]["mean"]), np.array(stats["actions"]["std"])
    for name, state in (("same state (round trip)", s1), ("new state (re-anchored)", s2)):
        tp = os.path.join(tmp, "robot_t2.safetensors")
        rc, log = run(pi0, *base, "--state", ",".join(map(repr, state)), "--prev-actions", c1, "--delay", "1",
                      "--horizon", "1", "--taps", tp)
        if rc != 0:
            check(False, f"robot-level RTC run, {name}: {log.strip()}")
            continue
        y = read_safetensors(tp)["rtc.y"]
        tail = prev[1:].astype(np.float64)
        rel = tail.copy()
        rel[:, :6] -= state[:6]                              # DeltaActions(mask = 6 x True + False)
        want = np.zeros((H, 8))
        want[: H - 1, :7] = (rel - mean) / (std + 1e-6)       # Normalize (z-score), padded to the model's 8
        err = np.abs(y - want).max()
        check(err <= 1e-5 * max(1.0, np.abs(want).max()), f"robot level, {name}: Y in model units vs numpy, max |d| {err:.2e}")
        if state is s1:
            back = np.abs(y[: H - 1, :7] - model_x[1:, :7]).max()
            check(back <= 1e-5 * max(1.0, np.abs(model_x).max()),
                  f"robot level, round trip: Y = the model's own actions rows 1.., max |d| {back:.2e}")
    rc, log = run(pi0, *base, "--state", ",".join(map(repr, s1)), "--prev-actions", os.path.join(tmp, "pi0_tiny_prev.npy"),
                  "--delay", "1", "--horizon", "1")
    check(rc != 0 and "robot 'libero' returns 7 action columns" in log,
          f"robot level, 8-column previous chunk for a 7-column robot: {log.strip()[:140]}")


def lerobot_level(pi0, tmp):
    """A LeRobot π0.5 checkpoint with relative actions (tests/test_lerobot.py writes it): the tail is
    made relative to the new raw state on the relative dims and normalized with the action stats,
    float32, as LeRobot's reanchor_relative_rtc_prefix (to_relative_actions + normalizer)."""
    sys.path.insert(0, HERE)
    import test_lerobot as tl
    from PIL import Image
    rng = np.random.default_rng(5)
    cams = [("cam", (96, 128))]
    st = tl.dataset_stats(rng, cams, 8, 5)
    names = ["x", "y", "z", "yaw", "gripper"]
    rel = {"enabled": True, "exclude_joints": ["gripper"], "action_names": names}
    ms = {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}
    d, _ = tl.make_ckpt(tmp, "lr_pi05_rel", os.path.join(HERE, "data", "pi05_tiny"), "pi05", cams, 8, 5, ms, st, 96,
                        relative=rel)
    img = os.path.join(tmp, "lr_cam.png")
    Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(img)
    base = ["--model", d, "--image", f"observation.images.cam={img}", "--prompt", "open drawer", "--quiet"]
    s1 = rng.normal(size=8).astype(np.float32)
    s2 = (s1 + rng.normal(0, 0.5, 8)).astype(np.float32)
    c1, t1 = os.path.join(tmp, "lr_c1.npy"), os.path.join(tmp, "lr_t1.safetensors")
    rc, log = run(pi0, *base, "--state", ",".join(map(repr, map(float, s1))), "--out", c1, "--taps", t1)
    if rc != 0:
        check(False, f"LeRobot robot-level run: {log.strip()}")
        return
    prev = np.load(c1)
    H = prev.shape[0]
    model_x = read_safetensors(t1)["denoise.s09.x"]
    mask = np.array([1, 1, 1, 1, 0], bool)
    for name, state in (("same state (round trip)", s1), ("new state (re-anchored)", s2)):
        tp = os.path.join(tmp, "lr_t2.safetensors")
        rc, log = run(pi0, *base, "--state", ",".join(map(repr, map(float, state))), "--prev-actions", c1, "--delay", "1",
                      "--horizon", "2", "--taps", tp)
        if rc != 0:
            check(False, f"LeRobot RTC run, {name}: {log.strip()}")
            continue
        y = read_safetensors(tp)["rtc.y"]
        tail = prev[2:].astype(np.float32)
        relt = np.where(mask, tail - state[:5], tail).astype(np.float32)
        want = np.zeros((H, 8), np.float32)
        want[: H - 2, :5] = tl.lr_norm(relt, st["action"], "MEAN_STD", False)
        err = np.abs(y - want).max()
        check(err <= 1e-5 * max(1.0, np.abs(want).max()), f"LeRobot relative actions, {name}: Y vs numpy, max |d| {err:.2e}")
        if state is s1:
            back = np.abs(y[: H - 2, :5] - model_x[2:, :5]).max()
            check(back <= 1e-5 * max(1.0, np.abs(model_x).max()),
                  f"LeRobot, round trip: Y = the model's own actions rows 2.., max |d| {back:.2e}")


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    pi0 = os.path.join(build, "pi0")
    tmp = tempfile.mkdtemp(prefix="pi0_rtc_")
    models = [("pi0_tiny", "case_01"), ("pi05_tiny", "case_00")]
    for name, case in models:
        ckpt = os.path.join(HERE, "data", name)
        cpath = os.path.join(ckpt, case + ".safetensors")
        cin = read_safetensors(cpath)
        noise = cin["noise"][0].astype(np.float64)
        H, A = noise.shape
        nsteps = int(cin["num_steps"][0]) if "num_steps" in cin else 10
        # a previous chunk (model units): a smooth trajectory, written as .npy like `pi0 run --out`
        rng = np.random.default_rng(7)
        prev = (0.8 * np.sin(0.5 * np.arange(H)[:, None] + rng.uniform(0, 3, A)[None, :])).astype(np.float32)
        ppath = os.path.join(tmp, name + "_prev.npy")
        np.save(ppath, prev)
        for backend in ("ref", "fast"):
            for schedule, d, s, beta in (("linear", 1, 2, 10.0), ("exp", 2, 2, 5.0), ("ones", 1, 1, 10.0),
                                         ("zeros", 2, 3, 10.0)):
                tap = os.path.join(tmp, f"{name}_{backend}_{schedule}.safetensors")
                out = os.path.join(tmp, f"{name}_{backend}_{schedule}_act.npy")
                rc, log = run(pi0, "--model", ckpt, "--inputs", cpath, "--backend", backend, "--quiet",
                              "--prev-actions", ppath, "--delay", str(d), "--horizon", str(s), "--rtc-schedule",
                              schedule, "--rtc-beta", str(beta), "--taps", tap, "--out", out)
                label = f"{name} {backend} {schedule} d={d} s={s} beta={beta}"
                if rc != 0:
                    check(False, f"{label}: pi0 run failed: {log.strip()}")
                    continue
                taps = read_safetensors(tap)
                w = prefix_weights(schedule, d, H - s, H)
                y = np.zeros((H, A))
                y[: H - s] = prev[s:]
                check(np.allclose(taps["rtc.w"], w, atol=1e-7, rtol=0) and np.array_equal(taps["rtc.y"], y),
                      f"{label}: W and padded Y as LeRobot builds them")
                times, dt = openpi_times(nsteps)
                worst_x = worst_v = 0.0
                x = noise
                for k, t in enumerate(times):
                    vm = taps[f"denoise.s{k:02d}.v_model"].astype(np.float64)
                    vg = guided_velocity(x, vm, y, w, float(t), beta)
                    x_next = x + float(dt) * vg
                    worst_v = max(worst_v, np.abs(vg - taps[f"denoise.s{k:02d}.v"]).max())
                    worst_x = max(worst_x, np.abs(x_next - taps[f"denoise.s{k:02d}.x"]).max())
                    x = taps[f"denoise.s{k:02d}.x"].astype(np.float64)    # the engine's x for the next step
                act = np.load(out)
                check(worst_v <= 1e-5 and worst_x <= 1e-5 and np.array_equal(act, taps[f"denoise.s{len(times) - 1:02d}.x"]),
                      f"{label}: guided v and x per step vs numpy LeRobot formula: max |d| v {worst_v:.2e}, "
                      f"x {worst_x:.2e} <= 1e-5; actions = last x")
    robot_level(pi0, tmp)
    lerobot_level(pi0, tmp)
    # misuse through the CLI: each is an error naming the problem, exit code 1
    ckpt = os.path.join(HERE, "data", "pi0_tiny")
    cpath = os.path.join(ckpt, "case_01.safetensors")
    ppath = os.path.join(tmp, "pi0_tiny_prev.npy")
    np.save(os.path.join(tmp, "narrow.npy"), np.zeros((5, 7), np.float32))
    for args, want in (
        (["--prev-actions", ppath, "--delay", "3", "--horizon", "2"], "delay d = 3 > execution horizon s = 2"),
        (["--prev-actions", ppath, "--delay", "2", "--horizon", "4"], "execution horizon s = 4 > H - d = 5 - 2 = 3"),
        (["--prev-actions", os.path.join(tmp, "narrow.npy"), "--delay", "1", "--horizon", "1"], "7 action columns, expected 8"),
        (["--prev-actions", ppath, "--delay", "1"], "needs --prev-actions, --delay and --horizon together"),
        (["--prev-actions", ppath, "--delay", "1", "--horizon", "1", "--rtc-mode", "training"], "exists for π0.5 checkpoints only"),
        (["--prev-actions", ppath, "--delay", "1", "--horizon", "1", "--rtc-schedule", "cosine"], "expected linear, exp"),
    ):
        rc, log = run(pi0, "--model", ckpt, "--inputs", cpath, "--quiet", *args)
        check(rc != 0 and want in log, f"pi0 run {' '.join(args[2:])}: exit {rc}, '{want}' in: {log.strip()[:160]}")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
