#!/usr/bin/env python3
"""spladex CPU encoder vs HF transformers (torch fp32) on the efficient-splade document config.

Model: DistilBertForMaskedLM with the exact config of naver/efficient-splade-VI-BT-large-doc
(6 layers, 768, 12 heads, 3072, vocab 30522) and random weights (scripts/make_random_model.py,
seed 0): the speed of a forward pass does not depend on the values of the weights.
Passages: N real English passages (Python stdlib docstrings, as in gen_encoder_fixtures.py) with
a lognormal MS MARCO-like length spread (55 words mean, sigma 0.4: about 90 tokens with this
text), tokenized once by HF BertTokenizerFast (truncation 256); both sides get exactly the same id lists, in the same order.

Reference (naver/splade's document indexing): batches of --hf-batch passages in input order,
padded to the longest in the batch, attention_mask, AutoModelForMaskedLM in eval/inference mode,
    reps = torch.max(torch.log1p(torch.relu(logits)) * attention_mask.unsqueeze(-1), dim=1)
then the non-zeros (torch.nonzero) as naver's indexer does; torch.set_num_threads(threads).
spladex: `spladex encode --model DIR --ids --top 0 --threads N` (packed batches of up to 64
passages, no padding; --top 0 computes every vector and prints empty lines, so the timing is the
encoder's, not JSON formatting's).

Timing: encode time excludes model loading on both sides (spladex: wall time of the run minus the
wall time of a run with one passage, i.e. process start + model load; reported too).
Peak memory: each side runs in its own process; ru_maxrss of that process.

usage: bench_encoder_cpu.py [--spladex build/spladex] [--passages 256] [--threads 2]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

HF_CHILD = r"""
import json, resource, sys, time
import torch
from transformers import AutoModelForMaskedLM
model_dir, ids_path, threads, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
docs = [list(map(int, l.split())) for l in open(ids_path)]
t0 = time.perf_counter()
model = AutoModelForMaskedLM.from_pretrained(model_dir, dtype=torch.float32).eval()
load = time.perf_counter() - t0
nnz = 0
t0, c0 = time.perf_counter(), time.process_time()
with torch.inference_mode():
    for i in range(0, len(docs), batch):
        chunk = docs[i:i + batch]
        L = max(len(d) for d in chunk)
        ids = torch.zeros(len(chunk), L, dtype=torch.long)
        mask = torch.zeros(len(chunk), L, dtype=torch.long)
        for j, d in enumerate(chunk):
            ids[j, :len(d)] = torch.tensor(d)
            mask[j, :len(d)] = 1
        logits = model(input_ids=ids, attention_mask=mask).logits
        reps = torch.max(torch.log1p(torch.relu(logits)) * mask.unsqueeze(-1), dim=1).values
        row, col = torch.nonzero(reps, as_tuple=True)
        values = reps[row, col]
        nnz += int(values.numel())
enc, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"load_s": load, "encode_s": enc, "cpu_s": cpu, "nnz": nnz,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

SPLADEX_CHILD = r"""
import json, resource, subprocess, sys, time
cmd, ids_path = json.loads(sys.argv[1]), sys.argv[2]
t0 = time.perf_counter()
with open(ids_path) as f:
    p = subprocess.run(cmd, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
wall = time.perf_counter() - t0
if p.returncode:
    sys.exit("spladex failed: " + p.stderr)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def child(code, *args):
    out = subprocess.run([sys.executable, "-c", code] + [str(a) for a in args], capture_output=True, text=True)
    if out.returncode:
        sys.exit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spladex", default=os.environ.get("SPLADEX_BIN", os.path.join(ROOT, "build", "spladex")))
    ap.add_argument("--passages", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--hf-batch", type=int, default=32)
    ap.add_argument("--model-dir", default=os.path.join(ROOT, "tests", "fixtures", "generated", "efficient-splade"))
    a = ap.parse_args()

    import numpy as np
    import make_random_model
    import gen_encoder_fixtures as gen
    from transformers import BertTokenizerFast

    entry = json.load(open(os.path.join(ROOT, "tests", "fixtures", "encoder", "encoder.json")))["fixtures"]["efficient-splade"]["model"]
    st = os.path.join(a.model_dir, "model.safetensors")
    if not os.path.exists(st) or make_random_model.sha256_file(st) != entry["sha256"]:
        make_random_model.make_model("efficient-splade", a.model_dir, seed=0)

    tok = BertTokenizerFast.from_pretrained(a.model_dir)
    texts = gen.passages(a.passages, np.random.RandomState(2024), words_mean=55, sigma=0.4)
    docs = [tok(t, truncation=True, max_length=256)["input_ids"] for t in texts]
    n_tokens = sum(len(d) for d in docs)
    pad_tokens = sum(len(docs[i:i + a.hf_batch]) * max(len(d) for d in docs[i:i + a.hf_batch])
                     for i in range(0, len(docs), a.hf_batch))
    tmp = tempfile.mkdtemp(prefix="bench_encoder_")
    ids_path, one_path = os.path.join(tmp, "ids.txt"), os.path.join(tmp, "one.txt")
    with open(ids_path, "w") as f:
        f.writelines(" ".join(map(str, d)) + "\n" for d in docs)
    with open(one_path, "w") as f:
        f.write(" ".join(map(str, docs[0])) + "\n")

    cmd = [a.spladex, "encode", "--model", a.model_dir, "--ids", "--top", "0", "--threads", str(a.threads)]
    startup = child(SPLADEX_CHILD, json.dumps(cmd), one_path)
    sp = child(SPLADEX_CHILD, json.dumps(cmd), ids_path)
    hf = child(HF_CHILD, a.model_dir, ids_path, a.threads, a.hf_batch)

    sp_enc = sp["wall_s"] - startup["wall_s"]
    sp_cpu = sp["cpu_s"] - startup["cpu_s"]
    rows = [
        ("spladex cpu", sp_enc, sp_cpu, sp["peak_rss_mb"], "startup+load %.2f s (subtracted)" % startup["wall_s"]),
        ("hf torch fp32", hf["encode_s"], hf["cpu_s"], hf["peak_rss_mb"], "load %.2f s (excluded)" % hf["load_s"]),
    ]
    print("passages %d, real tokens %d (mean %.1f), padded tokens in HF batches of %d: %d (%.2fx), threads %d"
          % (len(docs), n_tokens, n_tokens / len(docs), a.hf_batch, pad_tokens, pad_tokens / n_tokens, a.threads))
    print("%-14s %9s %11s %11s %9s %12s  %s" % ("", "encode s", "passages/s", "tokens/s", "CPU s", "peak RSS MB", "note"))
    for name, s, cpu, rss, note in rows:
        print("%-14s %9.2f %11.2f %11.1f %9.2f %12.0f  %s" % (name, s, len(docs) / s, n_tokens / s, cpu, rss, note))
    print("speedup spladex / hf: %.2fx wall-clock throughput, %.2fx CPU time"
          % (hf["encode_s"] / sp_enc, hf["cpu_s"] / sp_cpu))
    return 0


if __name__ == "__main__":
    sys.exit(main())
