#!/usr/bin/python3
"""test_cli_options.py BUILD - every pi0 command's options (tools/opts.c: options as data).

For every command: `--help` exits 0 and lists each option with its default (or [required]); for each
option that takes a value, a value out of its printed range, garbage and a missing value each exit 2
with an error naming the option, and a value inside the range is accepted (the command goes on and
fails later, exit 1, on the nonexistent model); an unknown option exits 2 naming it and pointing to
--help. The shared options (--threads, --steps, --weights, --backend, --seed) print the same range on
every command, and --threads' maximum is the library's (pi0_load refuses one more). README's
"Commands" block is exactly the usage lines the commands print.
"""
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from tally import check, finish  # noqa: E402 (the shared pass/fail counter, tests/tally.py)

NOPE = "/nonexistent/pi0-cli-test"


# Arguments that pass the parser and then fail (exit 1) without a model: the option under test goes
# before them (tokenize's TEXT must come last).
BASE = {
    "info": ["--model", NOPE],
    "run": ["--model", NOPE, "--inputs", NOPE],
    "gen-random": ["--preset", "tiny", "--out", NOPE + "/x"],
    "tokenize": ["--tokenizer", NOPE, "hello"],
    "check": ["--model", NOPE, "--inputs", NOPE],
    "audit": ["--model", NOPE, "--inputs", NOPE],
    "bench": ["--model", NOPE],
    "serve": ["--model", NOPE, "--port", "0"],
}
LOADS = ["run", "check", "audit", "bench", "serve"]


def run(pi0, args):
    r = subprocess.run([pi0] + args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def parse_help(text):
    """{name: (meta or None, body)} from the option lines ('  --name META   help ... [default: x]')."""
    opts, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"^  (--[a-z0-9-]+)( (\S+))?(\s{2,}|$)(.*)$", line)
        if m:
            cur = m.group(1)
            opts[cur] = [m.group(3), m.group(5)]
        elif cur and line.startswith("    "):
            opts[cur][1] += " " + line.strip()
        else:
            cur = None
    return opts


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    pi0 = os.path.join(ROOT, build, "pi0")
    helps, usages = {}, []
    for cmd, base in BASE.items():
        rc, out, err = run(pi0, [cmd, "--help"])
        check(rc == 0 and out.startswith("usage: pi0 " + cmd), f"{cmd} --help: exit {rc}")
        for line in out.splitlines():
            if line.startswith("usage: ") or (usages and line.startswith("       ") and prev_usage):
                usages.append(line[7:])
                prev_usage = True
            else:
                prev_usage = False
        opts = parse_help(out)
        opts.pop("--help", None)
        helps[cmd] = opts
        check(len(opts) > 0, f"{cmd}: {len(opts)} options listed")
        for name, (meta, body) in opts.items():
            if meta is None:  # a flag: no value, no default
                continue
            check("[default: " in body or "[required]" in body, f"{cmd} {name}: default shown ({body[-60:]!r})")
            rng = re.search(r"\((-?[0-9.]+)\.\.(-?[0-9.]+)\)", body)
            choice = "|" in meta
            bad_values = []
            if rng:
                lo, hi = rng.group(1), rng.group(2)
                is_int = "." not in lo + hi
                over = str(int(hi) + 1) if is_int else str(float(hi) + 0.5)
                bad_values += [over, "abc", "12x"]
                if float(lo) > -1e9:
                    bad_values.append(str(int(lo) - 1) if is_int else str(float(lo) - 0.5))
                ok_value = hi
            elif re.search(r"\(> 0\)", body):
                bad_values += ["0", "-1", "abc", "nan"]
                ok_value = "1.5"
            elif choice:
                bad_values += ["abc"]
                ok_value = meta.split("|")[-1]
            elif meta == "true|false":
                bad_values += ["maybe"]
                ok_value = "false"
            else:
                ok_value = None
            for v in bad_values:
                rc, out, err = run(pi0, [cmd, name, v] + base)
                check(rc == 2 and name in err and err.startswith("error: "),
                      f"{cmd} {name} {v}: exit {rc}, {err.strip().splitlines()[0] if err.strip() else ''!r}")
            if ok_value is not None and cmd not in ("tokenize",) and name not in ("--port",):
                rc, out, err = run(pi0, [cmd, name, ok_value] + base)
                check(rc == 1, f"{cmd} {name} {ok_value} accepted (exit {rc}: {err.strip()[:100]!r})")
            # missing value: the option last (tokenize: before nothing, so its TEXT is missing too)
            opts_only = base[:-1] if cmd == "tokenize" else base
            if name in opts_only:  # required ones are in base: give them once, the option last
                i = opts_only.index(name)
                opts_only = opts_only[:i] + opts_only[i + 2:]
            args = [cmd] + opts_only + [name]
            rc, out, err = run(pi0, args)
            check(rc == 2 and f"{name} needs a value" in err, f"{cmd} {name} (no value): exit {rc}, {err.strip()[:80]!r}")
        rc, out, err = run(pi0, [cmd, "--no-such-option"] + base)
        check(rc == 2 and "'--no-such-option'" in err and f"pi0 {cmd} --help" in err,
              f"{cmd} --no-such-option: exit {rc}, {err.strip()!r}")
        req = [n for n, (m, b) in opts.items() if "[required]" in b]
        for n in req:
            i = base.index(n)
            rc, out, err = run(pi0, [cmd] + base[:i] + base[i + 2:])
            check(rc == 2 and f"{n} is required" in err, f"{cmd} without {n}: exit {rc}, {err.strip()[:80]!r}")

    # shared blocks: the same options with the same range and (for --threads, --weights, --backend) default
    for cmd in LOADS:
        for n in ("--threads", "--weights", "--steps"):
            check(n in helps[cmd], f"{cmd} has {n}")
        if cmd != "check":
            check("--backend" in helps[cmd] and "--strict" in helps[cmd], f"{cmd} has --backend and --strict")
    # --int8-vision (a flag on every loading command) needs --weights int8: a usage error otherwise
    for cmd in LOADS:
        check("--int8-vision" in helps[cmd], f"{cmd} has --int8-vision")
        for w in ([], ["--weights", "bf16"], ["--weights", "f32"]):
            rc, out, err = run(pi0, [cmd, "--int8-vision"] + w + BASE[cmd])
            check(rc == 2 and err.startswith("error: --int8-vision needs --weights int8") and f"pi0 {cmd} --help" in err,
                  f"{cmd} --int8-vision {' '.join(w)}: exit {rc}, {err.strip()[:90]!r}")
        rc, out, err = run(pi0, [cmd, "--int8-vision", "--weights", "int8"] + BASE[cmd])
        check(rc == 1, f"{cmd} --int8-vision --weights int8 accepted (exit {rc}: {err.strip()[:80]!r})")
    for n in ("--threads", "--steps", "--weights", "--backend", "--seed"):
        seen = {}
        for cmd, opts in helps.items():
            if n in opts:
                body = opts[n][1]
                rng = re.search(r"\(([^()]*\.\.[^()]*)\)", body)
                key = (opts[n][0], rng.group(1) if rng else None)
                if n != "--steps" and n != "--seed":
                    key += (re.search(r"\[default: ([^\]]*)\]", body).group(1),)
                seen.setdefault(key, []).append(cmd)
        check(len(seen) == 1, f"{n}: one range/default on {sum(len(v) for v in seen.values())} commands: {seen}")
    # --seed is a full 64-bit unsigned value (pi0 serve logs seeds above 2^63 that pi0 run must take)
    for cmd, opts in helps.items():
        if "--seed" in opts:
            rc, _, err = run(pi0, [cmd, "--seed", str(2**64 - 1)] + BASE[cmd])
            check(rc == 1, f"{cmd} --seed 2^64-1 accepted (exit {rc}: {err.strip()[:80]!r})")
            for v in (str(2**64), "-1"):
                rc, _, err = run(pi0, [cmd, "--seed", v] + BASE[cmd])
                check(rc == 2 and "--seed" in err, f"{cmd} --seed {v}: exit {rc}")
    # --threads' maximum is the one pi0_load checks: the library refuses max + 1 (called via python
    # ctypes on the shared library would need the struct layout; pi0 run at max parses, load fails on
    # the model, and the range printed equals the message pi0_load gives for max + 1 in test_loader_bad)
    m = re.search(r"\(0\.\.(\d+)\)", helps["run"]["--threads"][1])
    check(m and m.group(1) == "1024", f"--threads range 0..{m.group(1) if m else '?'} = PI0_MAX_THREADS (1024)")

    # README "Commands" block = the usage lines
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    block = re.search(r"## Commands\n\n```\n(.*?)```", readme, re.S)
    got = block.group(1).rstrip("\n").splitlines() if block else []
    check(got == usages, "README Commands block matches the usage lines of --help"
          + ("" if got == usages else ":\n" + "\n".join(l for l in usages if l not in got)[:2000]))


main()
finish()
