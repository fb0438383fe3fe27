#!/usr/bin/python3
"""test_tokenizer_discovery.py BUILD - where `pi0 run` finds PaliGemma's tokenizer when --tokenizer is
not given (src/policy/paths.h): the checkpoint directory, the Hugging Face cache (a fake one with
real symlinks: snapshots/<rev>/tokenizer.model -> ../../blobs/<sha>, refs/main naming the revision,
under a temporary HF_HOME or HF_HUB_CACHE), the openpi cache (OPENPI_DATA_HOME), and the error
listing every path tried when nothing is found.

Each run uses tests/data/pi0_tiny with random z-score norm stats; the found tokenizer must give
exactly the actions of a run with --tokenizer tests/data/policy/tiny.model (same seed). Lower-priority
places hold a file that is not a SentencePiece model, so picking one of them fails the run: the
order is checked, not only that something was found.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOK = os.path.join(HERE, "data", "policy", "tiny.model")
MODEL = os.path.join(HERE, "data", "pi0_tiny")
REPO = "models--google--paligemma-3b-pt-224"
passed = failed = 0


def check(ok, msg):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + msg)
    passed += bool(ok)
    failed += not ok


def clean_env(tmp, **kw):
    """No real cache of the user's may leak in: every variable the search reads is set or removed."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "OPENPI_DATA_HOME")}
    env["HOME"] = os.path.join(tmp, "home")   # empty: ~/.cache/... does not exist
    env.update(kw)
    return env


def fake_hf_cache(hub, snapshots, ref=None, junk_snapshots=()):
    """hub/models--google--paligemma-3b-pt-224 as huggingface_hub lays it out: file contents in
    blobs/<sha>, snapshots/<rev>/tokenizer.model a relative symlink to it, refs/main the revision."""
    repo = os.path.join(hub, REPO)
    os.makedirs(os.path.join(repo, "blobs"), exist_ok=True)
    for rev, content in list(snapshots.items()) + [(r, b"not a sentencepiece model") for r in junk_snapshots]:
        blob = f"{abs(hash((rev, len(content)))):040x}"[:40]
        with open(os.path.join(repo, "blobs", blob), "wb") as f:
            f.write(content)
        sd = os.path.join(repo, "snapshots", rev)
        os.makedirs(sd, exist_ok=True)
        os.symlink(os.path.join("..", "..", "blobs", blob), os.path.join(sd, "tokenizer.model"))
        with open(os.path.join(sd, "config.json"), "w") as f:   # a snapshot holds more than the tokenizer
            f.write("{}")
    if ref is not None:
        os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
        with open(os.path.join(repo, "refs", "main"), "w") as f:
            f.write(ref)                                       # huggingface_hub writes no newline
    return repo


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    pi0 = os.path.join(build, "pi0")
    for p in (pi0, MODEL, TOK):
        if not os.path.exists(p):
            check(False, f"missing {p}")
            return
    good = open(TOK, "rb").read()
    junk = b"\x00not a tokenizer\xff" * 8
    tmp = tempfile.mkdtemp(prefix="pi0_test_tokdisc_")
    try:
        os.makedirs(os.path.join(tmp, "home"))
        ns = os.path.join(tmp, "norm_stats.json")
        rng = np.random.default_rng(3)
        st = {"mean": list(rng.normal(size=8)), "std": list(rng.uniform(0.5, 2, 8)), "q01": None, "q99": None}
        json.dump({"norm_stats": {"state": st, "actions": st}}, open(ns, "w"))

        def run(model, env, extra=()):
            out = os.path.join(tmp, "out.npy")
            if os.path.exists(out):
                os.remove(out)
            r = subprocess.run([pi0, "run", "--model", model, "--image", f"base_0_rgb={HERE}/data/images/rgb.png",
                                "--prompt", "open drawer", "--state", "0.1,0.2,-0.3", "--norm-stats", ns,
                                "--out", out, "--quiet", *extra], capture_output=True, text=True, env=env)
            return r, (np.load(out) if r.returncode == 0 else None)

        r, want = run(MODEL, clean_env(tmp), ["--tokenizer", TOK])
        check(r.returncode == 0, f"reference run with --tokenizer ({r.stderr.strip()[-200:]})")
        if want is None:
            return

        def same(name, res):
            r, got = res
            ok = r.returncode == 0 and got is not None and np.array_equal(got, want)
            check(ok, f"{name}: actions identical to --tokenizer's" if ok else f"{name}: rc {r.returncode}: {r.stderr.strip()}")

        # A checkpoint directory without a tokenizer (symlinks to pi0_tiny's files).
        def ckpt(name):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            for f in ("config.json", "model.safetensors"):
                os.symlink(os.path.join(MODEL, f), os.path.join(d, f))
            return d

        bare = ckpt("bare")

        # 1. Nothing anywhere: the error lists every path tried and how to get the file.
        env = clean_env(tmp, OPENPI_DATA_HOME=os.path.join(tmp, "no_openpi"))
        r, _ = run(bare, env)
        e = r.stderr
        hub_default = os.path.join(tmp, "home", ".cache", "huggingface", "hub", REPO, "snapshots")
        check(r.returncode != 0 and f"{bare}/{{tokenizer.model, tokenizer/tokenizer.model, paligemma_tokenizer.model" in e
              and hub_default in e and os.path.join(tmp, "no_openpi", "big_vision", "paligemma_tokenizer.model") in e
              and "google/paligemma-3b-pt-224" in e and "gated" in e and "--tokenizer" in e,
              f"nothing found: error lists the checkpoint, ~/.cache/huggingface/hub and OPENPI_DATA_HOME paths ({e.strip()})")
        r, _ = run(bare, clean_env(tmp))
        check(r.returncode != 0 and os.path.join(tmp, "home", ".cache", "openpi", "big_vision") in r.stderr,
              f"no OPENPI_DATA_HOME: ~/.cache/openpi is tried ({r.stderr.strip()[-160:]})")

        # 2. Inside the checkpoint, in order; the caches hold junk so a wrong pick fails.
        hub_junk = os.path.join(tmp, "hub_junk")
        fake_hf_cache(hub_junk, {"a" * 40: junk}, ref="a" * 40)
        env_junk = clean_env(tmp, HF_HUB_CACHE=hub_junk, OPENPI_DATA_HOME=os.path.join(tmp, "no_openpi"))
        for i, rel in enumerate(["tokenizer.model", "tokenizer/tokenizer.model", "paligemma_tokenizer.model"]):
            d = ckpt(f"in_ckpt{i}")
            os.makedirs(os.path.dirname(os.path.join(d, rel)), exist_ok=True)
            shutil.copy(TOK, os.path.join(d, rel))
            same(f"checkpoint DIR/{rel} (before the caches)", run(d, env_junk))
        d = ckpt("in_ckpt_order")
        shutil.copy(TOK, os.path.join(d, "tokenizer.model"))
        open(os.path.join(d, "paligemma_tokenizer.model"), "wb").write(junk)
        same("DIR/tokenizer.model before DIR/paligemma_tokenizer.model", run(d, env_junk))

        # 3. Hugging Face cache under HF_HOME: refs/main picks the revision among several snapshots.
        hf_home = os.path.join(tmp, "hf_home")
        rev_main, rev_old = "c" * 40, "b" * 40
        repo = fake_hf_cache(os.path.join(hf_home, "hub"), {rev_main: good}, ref=rev_main, junk_snapshots=[rev_old, "0" * 40])
        link = os.path.join(repo, "snapshots", rev_main, "tokenizer.model")
        check(os.path.islink(link) and os.readlink(link).startswith("../../blobs/"), "fake cache: snapshot file is a symlink into blobs/")
        openpi_junk = os.path.join(tmp, "openpi_junk")
        os.makedirs(os.path.join(openpi_junk, "big_vision"))
        open(os.path.join(openpi_junk, "big_vision", "paligemma_tokenizer.model"), "wb").write(junk)
        same("HF_HOME/hub: refs/main's snapshot (others hold junk; openpi cache holds junk)",
             run(bare, clean_env(tmp, HF_HOME=hf_home, OPENPI_DATA_HOME=openpi_junk)))
        # HF_HUB_CACHE wins over HF_HOME (whose cache holds junk).
        hf_home_junk = os.path.join(tmp, "hf_home_junk")
        fake_hf_cache(os.path.join(hf_home_junk, "hub"), {rev_main: junk}, ref=rev_main)
        same("HF_HUB_CACHE before HF_HOME", run(bare, clean_env(tmp, HF_HUB_CACHE=os.path.join(hf_home, "hub"),
                                                                 HF_HOME=hf_home_junk)))
        r, _ = run(bare, clean_env(tmp, HF_HOME=hf_home_junk))
        check(r.returncode != 0 and os.path.join(hf_home_junk, "hub", REPO, "snapshots", rev_main, "tokenizer.model") in r.stderr,
              "HF_HOME alone: its (junk) snapshot is the one read (the error names it)")
        # The default ~/.cache/huggingface/hub, and XDG_CACHE_HOME/huggingface/hub.
        home2 = os.path.join(tmp, "home2")
        fake_hf_cache(os.path.join(home2, ".cache", "huggingface", "hub"), {rev_main: good}, ref=rev_main)
        same("~/.cache/huggingface/hub", run(bare, dict(clean_env(tmp, OPENPI_DATA_HOME=openpi_junk), HOME=home2)))
        xdg = os.path.join(tmp, "xdg")
        fake_hf_cache(os.path.join(xdg, "huggingface", "hub"), {rev_main: good}, ref=rev_main)
        same("XDG_CACHE_HOME/huggingface/hub", run(bare, clean_env(tmp, XDG_CACHE_HOME=xdg, OPENPI_DATA_HOME=openpi_junk)))
        # No refs/main: any snapshot that has the file.
        hub_noref = os.path.join(tmp, "hub_noref")
        fake_hf_cache(hub_noref, {"d" * 40: good})
        os.makedirs(os.path.join(hub_noref, REPO, "snapshots", "1" * 40))   # a snapshot without the file
        same("no refs/main: the snapshot that has tokenizer.model", run(bare, clean_env(tmp, HF_HUB_CACHE=hub_noref)))
        # refs/main naming a snapshot without the file: the other snapshots are searched.
        hub_stale = os.path.join(tmp, "hub_stale")
        fake_hf_cache(hub_stale, {"e" * 40: good}, ref="f" * 40)
        same("refs/main names a missing snapshot: fall back to one that has the file",
             run(bare, clean_env(tmp, HF_HUB_CACHE=hub_stale)))

        # 4. openpi's cache.
        openpi = os.path.join(tmp, "openpi")
        os.makedirs(os.path.join(openpi, "big_vision"))
        shutil.copy(TOK, os.path.join(openpi, "big_vision", "paligemma_tokenizer.model"))
        same("OPENPI_DATA_HOME/big_vision/paligemma_tokenizer.model",
             run(bare, clean_env(tmp, OPENPI_DATA_HOME=openpi, HF_HUB_CACHE=os.path.join(tmp, "none"))))
        home3 = os.path.join(tmp, "home3")
        os.makedirs(os.path.join(home3, ".cache"))
        shutil.copytree(openpi, os.path.join(home3, ".cache", "openpi"))
        same("~/.cache/openpi/big_vision/paligemma_tokenizer.model", run(bare, dict(clean_env(tmp), HOME=home3)))

        # 5. --tokenizer wins over everything (the checkpoint holds junk).
        d = ckpt("junk_ckpt")
        open(os.path.join(d, "tokenizer.model"), "wb").write(junk)
        same("--tokenizer before the checkpoint's own file", run(d, env_junk, ["--tokenizer", TOK]))
        r, _ = run(d, env_junk)
        check(r.returncode != 0 and os.path.join(d, "tokenizer.model") in r.stderr,
              f"a bad tokenizer.model found in the checkpoint: error names it ({r.stderr.strip()[-200:]})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
