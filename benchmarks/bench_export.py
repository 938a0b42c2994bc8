#!/usr/bin/env python3
"""bench_export: time `spladex export ciff|jsonl` and its peak memory on a synthetic shard set.

The shards are generated directly with h5py (tests/py/shardgen.py's layout), not encoded: N docs
with about T distinct terms each (uniform in [T/2, 3T/2)), term ids drawn from a Zipf-like
distribution over a 30522-term vocabulary (word-like strings, a fifth of them ## pieces), weights
from a gamma distribution like SPLADE's. Each export runs as a child process; its peak RSS comes
from os.wait4's rusage (ru_maxrss).

    python3 benchmarks/bench_export.py --docs 1000000 [--terms 120] [--memory 2G 512M]
        [--device cpu cuda] [--workdir /tmp/spladex-bench-export] [--keep] [--bin build/spladex]

Prints one markdown table row per run (format, --memory, the device that transposed, passes,
seconds, docs/s, peak RSS, output size) for benchmarks/RESULTS.md. With several --device values
each CIFF export runs once per device and the outputs must be identical (sha256): the script
exits 1 if they are not. JSONL has no transpose and runs on the CPU only.

CPU against GPU on a moderate corpus (generation with one template shard is the fast part):

    python3 benchmarks/bench_export.py --docs 500000 --templates 1 --formats ciff \
        --device cpu cuda --memory 2G 256M --bin build-gpu/spladex
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

# numpy / h5py are imported only by the generating child process (--generate): a child's
# ru_maxrss includes its parent's memory at fork time, so the timing parent stays small.
np = h5py = sp = shardgen = None

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
VOCAB = 30522


def import_generator():
    global np, h5py, sp, shardgen
    import h5py
    import numpy as np
    import scipy.sparse as sp
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "py"))
    import shardgen


def make_vocab(rng):
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab, seen = [], set()
    while len(vocab) < VOCAB:
        t = "".join(rng.choice(letters, size=int(rng.integers(2, 10))))
        if rng.random() < 0.2:
            t = "##" + t
        if t not in seen:
            seen.add(t)
            vocab.append(t)
    return vocab


def make_shard_rows(rng, n, terms, cdf, oversample):
    """CSR arrays (indptr, indices, data) for n docs, vectorized: counts * oversample Zipf draws
    per doc, duplicates dropped (sort + compare: np.unique is slow on 10^7 keys)."""
    counts = rng.integers(terms // 2, terms + terms // 2, size=n)
    draws = np.maximum(1, np.rint(counts * oversample)).astype(np.int64)
    rows = np.repeat(np.arange(n, dtype=np.int64), draws)
    key = rows * VOCAB + np.searchsorted(cdf, rng.random(rows.size))
    key.sort()
    keep = np.empty(key.size, dtype=bool)
    keep[:1] = True
    np.not_equal(key[1:], key[:-1], out=keep[1:])
    key = key[keep]
    rows, ids = key // VOCAB, (key % VOCAB).astype(np.int32)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    data = rng.gamma(1.2, 0.6, size=ids.size).astype(np.float32)
    return indptr, ids, data


def doc_ids(a, n):
    return ["msmarco-%d" % d for d in range(a, a + n)]


def generate(out, n_docs, terms, shard_size, templates, seed=0):
    """Writes the shard set. The first `templates` shards get their own random rows; later
    shards copy one of them (rows repeat) with their own first_doc and doc ids, which keeps
    generation of an MS MARCO-sized set within minutes. Returns the total nnz."""
    rng = np.random.default_rng(seed)
    vocab = make_vocab(rng)
    p = 1.0 / np.arange(1, VOCAB + 1) ** 1.05
    cdf = np.cumsum(p[rng.permutation(VOCAB)])  # Zipf weights on shuffled ids
    cdf /= cdf[-1]
    # Calibrate the draws per doc so that about `terms` distinct terms remain.
    _, pilot, _ = make_shard_rows(rng, 2000, terms, cdf, 1.0)
    oversample = terms * 2000 / pilot.size
    os.makedirs(out, exist_ok=True)
    nnz, made = 0, []
    for s in range(-(-n_docs // shard_size)):
        a = s * shard_size
        n = min(shard_size, n_docs - a)
        path = os.path.join(out, "shard-%05d.h5" % s)
        if s < templates or n != shard_size:
            indptr, ids, data = make_shard_rows(rng, n, terms, cdf, oversample)
            m = sp.csr_matrix((data, ids, indptr), shape=(n, VOCAB))
            shardgen.write_shard(path, a, doc_ids(a, n), m, vocab)
            if n == shard_size:
                made.append((path, ids.size))
            nnz += ids.size
        else:
            source, size = made[s % len(made)]
            shutil.copyfile(source, path)
            with h5py.File(path, "r+") as f:
                f.attrs["first_doc"] = np.int64(a)
                f["doc_ids"][:] = np.array(doc_ids(a, n), dtype=object)
            nnz += size
        print("shard %d written" % s, file=sys.stderr, flush=True)
    shardgen.write_job(out, shard_size, n_docs)
    with open(os.path.join(out, "bench-info.json"), "w") as f:
        json.dump({"docs": n_docs, "nnz": int(nnz)}, f)
    return nnz


def run_export(binary, fmt, shards, output, memory, device):
    cmd = [binary, "export", fmt, "--input", shards, "--output", output, "--memory", memory]
    if fmt == "ciff":
        cmd += ["--device", device]
    t0 = time.time()
    with open(output + ".log", "w") as log:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(p.pid, 0)
    seconds = time.time() - t0
    text = open(output + ".log").read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("export failed: %s\n%s" % (" ".join(cmd), text))
    passes = re.search(r"(\d+) pass\(es\)", text)
    where = re.search(r"transposed on (.+?), \d+ bytes", text)
    return (seconds, usage.ru_maxrss * 1024, int(passes.group(1)) + 1 if passes else 1,
            where.group(1) if where else "cpu")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=100000)
    ap.add_argument("--terms", type=int, default=120)
    ap.add_argument("--shard-size", type=int, default=100000)
    ap.add_argument("--templates", type=int, default=8,
                    help="distinct random shards; later shards repeat their rows")
    ap.add_argument("--memory", nargs="+", default=["2G"])
    ap.add_argument("--formats", nargs="+", default=["ciff", "jsonl"])
    ap.add_argument("--device", nargs="+", default=["cpu"],
                    help="ciff --device values to time (auto, cpu, cuda, cuda:N); several must "
                         "give identical bytes")
    ap.add_argument("--workdir", default="/tmp/spladex-bench-export")
    ap.add_argument("--bin", default=os.environ.get("SPLADEX_BIN",
                                                    os.path.join(ROOT, "build", "spladex")))
    ap.add_argument("--keep", action="store_true", help="keep the shards and outputs")
    ap.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    shards = os.path.join(args.workdir, "shards-%d-%d" % (args.docs, args.terms))
    if args.generate:
        import_generator()
        t0 = time.time()
        nnz = generate(shards, args.docs, args.terms, args.shard_size, args.templates)
        print("generated %d docs, %d nnz in %.0f s" % (args.docs, nnz, time.time() - t0),
              file=sys.stderr)
        return
    if not os.path.exists(os.path.join(shards, "bench-info.json")):
        subprocess.run([sys.executable, __file__, "--generate"] + sys.argv[1:], check=True)
    size = sum(os.path.getsize(os.path.join(shards, f)) for f in os.listdir(shards))
    nnz = json.load(open(os.path.join(shards, "bench-info.json")))["nnz"]
    print("shards: %d docs, %d nnz (%.1f terms/doc), %.2f GB on disk" %
          (args.docs, nnz, nnz / args.docs, size / 1e9), file=sys.stderr)
    print("| format | --memory | transposed on | passes over the shards | seconds | docs/s | "
          "peak RSS | output |")
    print("|---|---|---|---|---|---|---|---|")
    differ = []
    for fmt in args.formats:
        for memory in (args.memory if fmt == "ciff" else args.memory[:1]):
            digests = {}
            for device in (args.device if fmt == "ciff" else ["cpu"]):
                out = os.path.join(args.workdir, "out.%s" % fmt)
                seconds, rss, passes, where = run_export(args.bin, fmt, shards, out, memory,
                                                         device)
                print("| %s | %s | %s | %d | %.1f | %.0f | %.2f GB | %.2f GB |" %
                      (fmt, memory if fmt == "ciff" else "-", where, passes, seconds,
                       args.docs / seconds, rss / 2**30, os.path.getsize(out) / 1e9), flush=True)
                if len(args.device) > 1 and fmt == "ciff":
                    digests[device] = sha256(out)
                os.remove(out)
            if len(set(digests.values())) > 1:
                differ.append("ciff --memory %s: %s" % (memory, digests))
    if len(args.device) > 1 and "ciff" in args.formats:
        print("ciff bytes identical across --device %s: %s" %
              (" ".join(args.device), "no" if differ else "yes"), file=sys.stderr)
    if not args.keep:
        shutil.rmtree(args.workdir)
    if differ:
        raise SystemExit("bench_export: the devices wrote different bytes: %s" % "; ".join(differ))


if __name__ == "__main__":
    main()
