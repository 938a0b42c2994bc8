#!/usr/bin/env python3
"""Peak RSS of `spladex expand` on 100k vs 1M synthetic passages: a bounded-memory demonstration.

What runs is the whole job -- reader, WordPiece tokenizer threads, batcher, CPU encoder, HDF5
shard writer -- on a micro random BERT (scripts/make_random_model.py weights, hidden 8, 1 layer,
vocab = the first 3000 bert-base-uncased tokens, which hold the ~1000 most common English words)
so that 1M passages finish in minutes on a CPU; the model's cost is not what is measured.
Passages are 8-60 words drawn from those common words (deterministic); --max-length 32,
--shard-size 100000, --top-k 64 (a random model's rows are dense-ish; 64 terms per doc is
SPLADE-like and keeps the HDF5 writes realistic), other options at their defaults. Peak RSS comes from the kernel (ru_maxrss of the child, as GNU time -v).
Expected growth from 100k to 1M: only the duplicate-id hash set (8 bytes per slot, slots = next
power of two >= 1.25 N: 2 MiB -> 16 MiB); everything else is bounded by the options.

usage: benchmarks/expand_rss.py [--bin build/spladex] [--out benchmarks/out/rss] [--sizes 100000,1000000]
Prints one Markdown table row per size.
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import make_random_model as mrm  # noqa: E402

VOCAB_LINES = 3000


def make_model(d):
    if os.path.exists(os.path.join(d, "model.safetensors")):
        return
    os.makedirs(d, exist_ok=True)
    full = open(mrm.DEFAULT_VOCAB, encoding="utf-8").read().split("\n")[:VOCAB_LINES]
    vocab = os.path.join(d, "vocab-src.txt")
    with open(vocab, "w", encoding="utf-8") as f:
        f.write("\n".join(full) + "\n")
    mrm.PRESETS["micro-bert"] = dict(mrm.PRESETS["tiny-bert"], vocab_size=VOCAB_LINES, hidden_size=8,
                                     num_hidden_layers=1, num_attention_heads=1, intermediate_size=16)
    mrm.make_model("micro-bert", d, 0, vocab)


def make_corpus(path, n):
    if os.path.exists(path):
        return
    words = [w for w in open(mrm.DEFAULT_VOCAB, encoding="utf-8").read().split("\n")[1996:VOCAB_LINES]
             if w.isalpha()]
    rng = random.Random(n)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for i in range(n):
            f.write("%d\t%s\n" % (i, " ".join(rng.choice(words) for _ in range(rng.randint(8, 60)))))
    os.replace(path + ".tmp", path)


def run(binary, model, corpus, out):
    shutil.rmtree(out, ignore_errors=True)
    t = time.time()
    p = subprocess.Popen([binary, "expand", "--model", model, "--input", corpus, "--output", out,
                          "--max-length", "32", "--shard-size", "100000", "--top-k", "64", "--quiet"])
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit("expand failed on %s" % corpus)
    return time.time() - t, usage.ru_maxrss / 1024.0  # KiB -> MiB


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("SPLADEX_BIN", os.path.join(ROOT, "build", "spladex")))
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "out", "rss"))
    ap.add_argument("--sizes", default="100000,1000000")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    model = os.path.join(a.out, "micro-bert")
    make_model(model)
    print("| passages | input MiB | shards | wall s | docs/s | peak RSS MiB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in (int(x) for x in a.sizes.split(",")):
        corpus = os.path.join(a.out, "corpus-%d.tsv" % n)
        make_corpus(corpus, n)
        out = os.path.join(a.out, "shards-%d" % n)
        wall, rss = run(a.bin, model, corpus, out)
        shards = len([x for x in os.listdir(out) if x.endswith(".h5")])
        print("| %d | %.0f | %d | %.0f | %.0f | %.1f |" % (n, os.path.getsize(corpus) / 2**20, shards,
                                                         wall, n / wall, rss), flush=True)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
