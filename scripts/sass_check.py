#!/usr/bin/env python3
"""Checks the SASS of a CUDA binary against what the design claims (tests/sh/test_sass.sh runs it
on libspladex_cuda.so; docs/RELIABILITY.md).

For every kernel of every architecture in the fatbinary it reads `cuobjdump -res-usage` (registers,
stack frame, local memory) and `cuobjdump -sass` (the instructions), then checks:
  * no spills: a kernel with a stack frame or local memory (STACK or LOCAL > 0: spilled registers,
    or an array the compiler could not keep in registers) fails, unless a `spills` line of the
    claims table exempts it;
  * the claims table (scripts/sass_claims.txt, its header says how to add a claim): a kernel name
    pattern, an architecture pattern, `present` or `absent`, an instruction pattern, a reason;
  * with --archs, that the fatbinary has SASS for each of those architectures (CMake's list).
A claim that matches no kernel of the binary fails too: a renamed kernel cannot pass unseen.
It prints one line per kernel (arch, registers, stack, local, tensor-core instructions, name) and
every failure, and exits 0 when all holds, 1 when something does not, 2 when it cannot run
(no cuobjdump: scripts/install_deps.sh installs it into .venv from PyPI's nvidia-cuda-cuobjdump
and nvidia-cuda-nvdisasm, pinned in scripts/requirements-test.txt).

Usage:
    python3 scripts/sass_check.py [--claims scripts/sass_claims.txt] [--archs "80;90a-real;90-virtual"] BINARY...
BINARY: anything cuobjdump reads (a shared library, an object file, an executable). The tool is
$SPLADEX_CUOBJDUMP if set, else cuobjdump on PATH, beside nvcc, in /usr/local/cuda/bin, or the
PyPI package's (nvidia/cu*/bin/ under this Python's site-packages or the repository's .venv); it
needs nvdisasm beside it or on PATH.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALL_HINT = ("install it with scripts/install_deps.sh (pip: nvidia-cuda-cuobjdump and "
                "nvidia-cuda-nvdisasm from scripts/requirements-test.txt, into .venv), or set "
                "SPLADEX_CUOBJDUMP to a cuobjdump (CUDA toolkit >= 13.0)")
# Tensor-core instructions: Ampere's mma.sync (HMMA, IMMA, DMMA, BMMA), Hopper's wgmma (HGMMA...).
TENSOR_CORE = re.compile(r"^(HMMA|IMMA|DMMA|BMMA|HGMMA|IGMMA|BGMMA|QGMMA)\b")


def find_cuobjdump():
    """Path of a cuobjdump, or None."""
    if os.environ.get("SPLADEX_CUOBJDUMP"):
        tool = os.environ["SPLADEX_CUOBJDUMP"]
        return tool if os.access(tool, os.X_OK) else None
    found = shutil.which("cuobjdump")
    if found:
        return found
    dirs = [os.path.dirname(p) for p in (shutil.which("nvcc"),) if p] + ["/usr/local/cuda/bin"]
    for site in sys.path + glob.glob(os.path.join(REPO, ".venv/lib/python3*/site-packages")):
        dirs += sorted(glob.glob(os.path.join(site, "nvidia/cu*/bin")), reverse=True)
    for d in dirs:
        if os.access(os.path.join(d, "cuobjdump"), os.X_OK):
            return os.path.join(d, "cuobjdump")
    return None


def cuobjdump(tool, flag, binary):
    r = subprocess.run([tool, flag, binary], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"sass_check: {tool} {flag} {binary} failed (exit {r.returncode}): "
                 f"{r.stderr.strip()}")
    return r.stdout


def parse_res_usage(text):
    """{(arch, mangled): {"REG": n, "STACK": n, "LOCAL": n, "SHARED": n}} from -res-usage."""
    out, arch, elf, func = {}, None, True, None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("Fatbin "):
            elf = s.startswith("Fatbin elf")
        elif s.startswith("arch = "):
            arch = s.split("=", 1)[1].strip()
        elif s.startswith("Function ") and s.endswith(":"):
            func = s[len("Function "):-1]
        elif func and elf and s.startswith("REG:"):
            out[(arch, func)] = {k: int(v) for k, v in re.findall(r"(\w+):(\d+)", s)}
            func = None
    return out


def parse_sass(text):
    """{(arch, mangled): [instruction, ...]} from -sass; an instruction is its text without the
    predicate and the trailing ';', e.g. "STG.E.U16 desc[UR4][R2.64], R5"."""
    out, arch, cur = {}, None, None
    ins = re.compile(r"^\s*/\*[0-9a-f]+\*/\s+(?:@!?U?P[T0-9]+\s+)?([^;]*?)\s*;")
    for line in text.splitlines():
        s = line.strip()
        m = re.match(r"(?:code for|\.target)\s+(sm_\w+)", s)
        if m:
            arch = m.group(1)
        elif s.startswith("Function : "):
            cur = out.setdefault((arch, s[len("Function : "):]), [])
        elif cur is not None:
            m = ins.match(line)
            if m:
                cur.append(" ".join(m.group(1).split()))
    return out


def demangle(names):
    """{mangled: short demangled name without the argument list}."""
    names = sorted(names)
    try:
        r = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
        plain = r.stdout.splitlines() if r.returncode == 0 else []
    except OSError:
        plain = []
    if len(plain) != len(names):
        plain = names
    short = {}
    for mangled, p in zip(names, plain):
        if p.endswith(")"):  # cut "(args)" at its matching '('
            depth, i = 0, len(p) - 1
            while i > 0:
                depth += {")": 1, "(": -1}.get(p[i], 0)
                if depth == 0:
                    break
                i -= 1
            p = p[:i]
        p = p.replace("(anonymous namespace)::", "")
        short[mangled] = p[len("void "):] if p.startswith("void ") else p  # templates show it
    return short


def read_claims(path):
    """[(line number, kernel re, arch re, verb, instruction re or None, reason)]."""
    claims = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split(None, 4)
            if len(parts) < 5 or parts[2] not in ("present", "absent", "spills"):
                sys.exit(f"sass_check: {path}:{n}: expected KERNEL ARCH present|absent|spills "
                         f"INSTRUCTION REASON, got: {line.rstrip()}")
            kernel, arch, verb, instr, reason = parts
            try:
                claims.append((n, re.compile(kernel), re.compile(arch), verb,
                               None if verb == "spills" else re.compile(instr), reason.strip()))
            except re.error as e:
                sys.exit(f"sass_check: {path}:{n}: bad pattern: {e}")
    return claims


def check(binary, tool, claims, archs):
    """Prints the summary of `binary`; returns its failures (a list of strings)."""
    usage = parse_res_usage(cuobjdump(tool, "-res-usage", binary))
    sass = parse_sass(cuobjdump(tool, "-sass", binary))
    names = demangle({f for _, f in set(usage) | set(sass)})
    kernels = sorted(set(usage) | set(sass), key=lambda k: (k[0] or "", names[k[1]]))
    failures = []
    if not kernels:
        return [f"{binary}: cuobjdump found no kernel (no SASS in it?)"]
    for a in archs:
        if not any(arch == a for arch, _ in kernels):
            failures.append(f"{binary}: no SASS for {a} (the build's architectures include it)")

    def matching(claim):
        _, kre, are, _, _, _ = claim
        return [k for k in kernels
                if are.fullmatch(k[0] or "") and (kre.search(names[k[1]]) or kre.search(k[1]))]

    exempt = {k for c in claims if c[3] == "spills" for k in matching(c)}
    print(f"{'arch':7} {'regs':>4} {'stack':>6} {'local':>6} {'tensor':>6}  kernel  ({binary})")
    for k in kernels:
        u = usage.get(k, {})
        tc = sum(1 for i in sass.get(k, []) if TENSOR_CORE.match(i))
        stack, local = u.get("STACK", 0), u.get("LOCAL", 0)
        print(f"{k[0] or '?':7} {u.get('REG', '?'):>4} {stack:>6} {local:>6} {tc:>6}  {names[k[1]]}")
        if k not in usage:
            failures.append(f"{k[0]} {names[k[1]]}: no resource usage from cuobjdump -res-usage")
        elif (stack or local) and k not in exempt:
            failures.append(f"{k[0]} {names[k[1]]}: spills / uses local memory (stack {stack} B, "
                            f"local {local} B; ptxas -warn-spills says where); no `spills` line "
                            f"in the claims table exempts it")
    for claim in claims:
        n, kre, are, verb, ire, reason = claim
        hits = matching(claim)
        if not hits:
            failures.append(f"claim line {n} ({kre.pattern} on {are.pattern}) matches no kernel "
                            f"of {binary}: renamed, not built, or a wrong pattern? ({reason})")
        if verb == "spills":
            continue
        for k in hits:
            found = [i for i in sass.get(k, []) if ire.search(i)]
            if verb == "present" and not found:
                failures.append(f"{k[0]} {names[k[1]]}: no instruction matches {ire.pattern} "
                                f"(claim line {n}: {reason})")
            elif verb == "absent" and found:
                failures.append(f"{k[0]} {names[k[1]]}: {len(found)} instruction(s) match "
                                f"{ire.pattern}, e.g. `{found[0]}` (claim line {n}: {reason})")
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary", nargs="+")
    ap.add_argument("--claims", default=os.path.join(REPO, "scripts/sass_claims.txt"))
    ap.add_argument("--archs", default="",
                    help='architectures that must have SASS, CMake style: "80;90", "90a"; '
                         '"-virtual" entries (PTX only) are left out')
    args = ap.parse_args()
    tool = find_cuobjdump()
    if not tool:
        bad = os.environ.get("SPLADEX_CUOBJDUMP")
        said = f" (SPLADEX_CUOBJDUMP={bad} is not an executable)" if bad else ""
        print(f"sass_check: no cuobjdump found{said}: {INSTALL_HINT}", file=sys.stderr)
        return 2
    archs = [f"sm_{a.split('-')[0]}" for a in re.split(r"[;, ]+", args.archs)
             if re.fullmatch(r"\d+[af]?(-real)?", a)]
    claims = read_claims(args.claims)
    print(f"sass_check: {tool}; claims {args.claims} ({len(claims)})")
    failures = []
    for binary in args.binary:
        failures += check(binary, tool, claims, archs)
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    if not failures:
        print("sass_check: no spills, every claim holds")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
