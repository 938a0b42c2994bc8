#!/usr/bin/env python3
"""spladex CPU encoder vs ONNX Runtime (fp32, int8) and HF transformers on the efficient-splade config.

Install the reference engines first (ONNX Runtime, onnx, onnxscript, torch, transformers; never
needed to build or run spladex):
    .venv/bin/python -m pip install -r scripts/requirements-bench.txt
then, with a Release build:
    .venv/bin/python benchmarks/bench_encoder_cpu.py --spladex build/spladex --threads 2

Model: DistilBertForMaskedLM with the exact config of naver/efficient-splade-VI-BT-large-doc
(6 layers, 768, 12 heads, 3072, vocab 30522) and random weights (scripts/make_random_model.py,
seed 0): the speed of a forward pass does not depend on the values of the weights.
Passages: N real English passages (Python stdlib docstrings, as in gen_encoder_fixtures.py) with
a lognormal MS MARCO-like length spread (55 words mean, sigma 0.4), tokenized once by HF
BertTokenizerFast (truncation 256); every engine gets exactly the same id lists.

Engines, each in its own process, each timed without model loading / session creation:
- spladex: `spladex encode --model DIR --ids --top 0 --threads N` in input order (packed batches
  of up to 64 passages, no padding; --top 0 computes every vector and prints empty lines, so the
  timing is the encoder's, not JSON formatting's). Encode time = wall time of the run minus the
  wall time of a run with one passage (process start + model load; reported too).
- ONNX Runtime fp32: the HF model exported by torch.onnx (dynamo exporter) with naver's SPLADE
  pooling inside the graph,
      reps = max_t(log1p(relu(logits)) * attention_mask[..., None])
  dynamic batch and sequence axes; passages sorted by length and padded per batch (ORT's best
  case); batch sizes --ort-batches (1,2,4,8), each reported, the best one is "ORT fp32";
  ORT_ENABLE_ALL graph optimisations, intra_op_num_threads = N, inter_op 1, sequential.
- ONNX Runtime int8: onnxruntime.quantization.quantize_dynamic (QInt8 weights) of that graph,
  the same protocol; its accuracy against ORT fp32 (same passages, same batch size) is printed:
  the top-64 terms' overlap per passage (mean / worst) and max |dw| over all (passage, term).
- HF transformers fp32: AutoModelForMaskedLM (attn_implementation "sdpa"), length-sorted batches
  of --hf-batch (8), the same pooling, torch.set_num_threads(N). (naver's indexing loop, the
  reference of the earlier spladex-vs-HF section of RESULTS.md: --hf-batch 32 --hf-order input.)
The engines run --repeats times, interleaved (spladex, ORT fp32, ORT int8, HF, then again); the
best time of each is reported (the machine is shared: the best is the least disturbed).
Accuracy of spladex itself: one untimed `spladex encode --json` run compared with ORT fp32 (the
same two numbers), so the speed is shown at fp32 accuracy.

FLOPs (counted once here, the same count for every engine, real tokens only: padding is an
engine's own cost): per token 2*(4*H*H + 2*H*F) per layer (Q, K, V, O, FFN in and out) + 2*H*H
(the MLM head's dense) + 2*H*V (the decoder); per document of T tokens 2*2*T*T*H per layer
(Q K^T and P V). Embeddings, LayerNorm, softmax, GELU and pooling are not counted.
GFLOP/s = that count / encode seconds.

usage: bench_encoder_cpu.py [--spladex build/spladex] [--passages 200] [--threads 2] [--repeats 3]
                            [--ort-batches 1,2,4,8] [--hf-batch 8] [--skip ort,int8,hf]
                            [--baseline OTHER_SPLADEX_BINARY]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

# Shared by the Python children: the ids file, sorted batches, the timing loop's result.
COMMON = r"""
import json, resource, sys, time
import numpy as np
def load_docs(path):
    return [list(map(int, l.split())) for l in open(path)]
def sorted_batches(docs, batch, by_length=True):
    order = sorted(range(len(docs)), key=lambda i: len(docs[i])) if by_length else list(range(len(docs)))
    for i in range(0, len(order), batch):
        idx = order[i:i + batch]
        L = max(len(docs[j]) for j in idx)
        ids = np.zeros((len(idx), L), dtype=np.int64)
        mask = np.zeros((len(idx), L), dtype=np.int64)
        for r, j in enumerate(idx):
            ids[r, :len(docs[j])] = docs[j]
            mask[r, :len(docs[j])] = 1
        yield idx, ids, mask
def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

HF_CHILD = COMMON + r"""
import torch
from transformers import AutoModelForMaskedLM
model_dir, ids_path, threads, batch, by_length = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "sorted"
torch.set_num_threads(threads)
docs = load_docs(ids_path)
batches = list(sorted_batches(docs, batch, by_length))
t0 = time.perf_counter()
model = AutoModelForMaskedLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
load = time.perf_counter() - t0
nnz = 0
t0, c0 = time.perf_counter(), time.process_time()
with torch.inference_mode():
    for idx, ids, mask in batches:
        ids, mask = torch.from_numpy(ids), torch.from_numpy(mask)
        logits = model(input_ids=ids, attention_mask=mask).logits
        reps = torch.max(torch.log1p(torch.relu(logits)) * mask.unsqueeze(-1), dim=1).values
        nnz += int(torch.count_nonzero(reps))
enc, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"load_s": load, "encode_s": enc, "cpu_s": cpu, "nnz": nnz, "peak_rss_mb": peak_rss_mb()}))
"""

# Exports the HF model with the pooling inside the graph, and its int8 dynamic quantisation.
EXPORT_CHILD = r"""
import sys, torch
from transformers import AutoModelForMaskedLM
model_dir, fp32_path, int8_path = sys.argv[1], sys.argv[2], sys.argv[3]
class Splade(torch.nn.Module):
    def __init__(self, mlm):
        super().__init__()
        self.mlm = mlm
    def forward(self, input_ids, attention_mask):
        logits = self.mlm(input_ids=input_ids, attention_mask=attention_mask).logits
        w = torch.log1p(torch.relu(logits)) * attention_mask.unsqueeze(-1).to(logits.dtype)
        return torch.max(w, dim=1).values
mlm = AutoModelForMaskedLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
ids = torch.ones(2, 16, dtype=torch.long)
mask = torch.ones(2, 16, dtype=torch.long)
batch, seq = torch.export.Dim("batch", min=1, max=1024), torch.export.Dim("seq", min=2, max=512)
torch.onnx.export(Splade(mlm), (ids, mask), fp32_path, input_names=["input_ids", "attention_mask"],
                  output_names=["reps"], dynamo=True, external_data=False,
                  dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}})
from onnxruntime.quantization import QuantType, quantize_dynamic
quantize_dynamic(fp32_path, int8_path, weight_type=QuantType.QInt8)
"""

ORT_CHILD = COMMON + r"""
import onnxruntime as ort
onnx_path, ids_path, threads, batch_list, reps_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
docs = load_docs(ids_path)
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
t0 = time.perf_counter()
sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
load = time.perf_counter() - t0
out = {"load_s": load, "batches": {}}
best = None
for batch in map(int, batch_list.split(",")):
    batches = list(sorted_batches(docs, batch))
    reps = np.zeros((len(docs), 0), dtype=np.float32)
    t0, c0 = time.perf_counter(), time.process_time()
    for idx, ids, mask in batches:
        r = sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        if reps.shape[1] == 0:
            reps = np.zeros((len(docs), r.shape[1]), dtype=np.float32)
        reps[idx] = r
    enc, cpu = time.perf_counter() - t0, time.process_time() - c0
    out["batches"][batch] = {"encode_s": enc, "cpu_s": cpu}
    if best is None or enc < best:
        best = enc
        if reps_path != "-":
            np.save(reps_path, reps)
out["peak_rss_mb"] = peak_rss_mb()
print(json.dumps(out))
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


def flops(docs, cfg):
    """The FLOP count of the docstring, for these documents."""
    H, F, V, L = cfg["dim"], cfg["hidden_dim"], cfg["vocab_size"], cfg["n_layers"]
    per_token = L * 2 * (4 * H * H + 2 * H * F) + 2 * H * H + 2 * H * V
    attention = sum(L * 2 * 2 * len(d) * len(d) * H for d in docs)
    return per_token * sum(len(d) for d in docs) + attention


def compare(ref, other, k=64):
    """(mean, worst) top-k overlap per passage and max |dw| of two (docs, V) weight arrays."""
    import numpy as np
    overlaps = []
    for a, b in zip(ref, other):
        top = [set(t for t in np.argsort(-r, kind="stable")[:k].tolist() if r[t] > 0) for r in (a, b)]
        overlaps.append(len(top[0] & top[1]) / max(len(top[0]), 1))
    return float(np.mean(overlaps)), float(np.min(overlaps)), float(np.max(np.abs(ref - other)))


def spladex_reps(binary, model_dir, ids_path, threads, vocab):
    """spladex's weights as a (docs, V) array, from one untimed `encode --json` run."""
    import numpy as np
    cmd = [binary, "encode", "--model", model_dir, "--ids", "--json", "--threads", str(threads)]
    with open(ids_path) as f:
        out = subprocess.run(cmd, stdin=f, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    reps = np.zeros((len(lines), len(vocab)), dtype=np.float32)
    for i, line in enumerate(lines):
        for term, w in json.loads(line)["vector"].items():
            reps[i, vocab[term]] = w
    return reps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spladex", default=os.environ.get("SPLADEX_BIN", os.path.join(ROOT, "build", "spladex")))
    ap.add_argument("--passages", type=int, default=200)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ort-batches", default="1,2,4,8")
    ap.add_argument("--hf-batch", type=int, default=8)
    ap.add_argument("--hf-order", choices=("sorted", "input"), default="sorted",
                    help="HF batches of length-sorted passages, or in input order (naver's indexing loop)")
    ap.add_argument("--skip", default="", help="comma-separated engines not to run: ort,int8,hf")
    ap.add_argument("--baseline", help="another spladex binary (e.g. an older build) timed the same way, as 'spladex baseline'")
    ap.add_argument("--model-dir", default=os.path.join(ROOT, "tests", "fixtures", "generated", "efficient-splade"))
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))

    import numpy as np
    import make_random_model
    import gen_encoder_fixtures as gen
    from transformers import BertTokenizerFast

    entry = json.load(open(os.path.join(ROOT, "tests", "fixtures", "encoder", "encoder.json")))["fixtures"]["efficient-splade"]["model"]
    st = os.path.join(a.model_dir, "model.safetensors")
    if not os.path.exists(st) or make_random_model.sha256_file(st) != entry["sha256"]:
        make_random_model.make_model("efficient-splade", a.model_dir, seed=0)
    cfg = json.load(open(os.path.join(a.model_dir, "config.json")))

    tok = BertTokenizerFast.from_pretrained(a.model_dir)
    texts = gen.passages(a.passages, np.random.RandomState(2024), words_mean=55, sigma=0.4)
    docs = [tok(t, truncation=True, max_length=256)["input_ids"] for t in texts]
    n_tokens = sum(len(d) for d in docs)
    gflop = flops(docs, cfg) / 1e9
    tmp = tempfile.mkdtemp(prefix="bench_encoder_")
    ids_path, one_path = os.path.join(tmp, "ids.txt"), os.path.join(tmp, "one.txt")
    with open(ids_path, "w") as f:
        f.writelines(" ".join(map(str, d)) + "\n" for d in docs)
    with open(one_path, "w") as f:
        f.write(" ".join(map(str, docs[0])) + "\n")

    fp32_onnx, int8_onnx = os.path.join(tmp, "splade.onnx"), os.path.join(tmp, "splade.int8.onnx")
    fp32_reps, int8_reps = os.path.join(tmp, "fp32.npy"), os.path.join(tmp, "int8.npy")
    if not {"ort", "int8"} <= skip:
        t0 = time.perf_counter()
        child(EXPORT_CHILD + "\nprint('{}')\n", a.model_dir, fp32_onnx, int8_onnx)
        print("onnx export + int8 quantisation: %.1f s (not timed)" % (time.perf_counter() - t0), flush=True)

    spladex_bins = [("spladex fp32", a.spladex)] + ([("spladex baseline", a.baseline)] if a.baseline else [])
    best = {}

    def keep(name, seconds, cpu, rss, note):
        if name not in best or seconds < best[name][0]:
            best[name] = (seconds, cpu, rss, note)

    for rep in range(a.repeats):
        for name, binary in spladex_bins:
            cmd = [binary, "encode", "--model", a.model_dir, "--ids", "--top", "0", "--threads", str(a.threads)]
            startup = child(SPLADEX_CHILD, json.dumps(cmd), one_path)
            sp = child(SPLADEX_CHILD, json.dumps(cmd), ids_path)
            keep(name, sp["wall_s"] - startup["wall_s"], sp["cpu_s"] - startup["cpu_s"], sp["peak_rss_mb"],
                 "startup+load %.2f s (subtracted)" % startup["wall_s"])
            print("round %d: %s %.2f s" % (rep + 1, name, sp["wall_s"] - startup["wall_s"]), flush=True)
        for name, path, reps in (("ort fp32", fp32_onnx, fp32_reps), ("ort int8", int8_onnx, int8_reps)):
            if (name == "ort fp32" and "ort" in skip) or (name == "ort int8" and "int8" in skip):
                continue
            o = child(ORT_CHILD, path, ids_path, a.threads, a.ort_batches, reps if rep == 0 else "-")
            for b, r in o["batches"].items():
                keep("%s b%s" % (name, b), r["encode_s"], r["cpu_s"], o["peak_rss_mb"], "session %.2f s (excluded)" % o["load_s"])
            print("round %d: %s %s" % (rep + 1, name, " ".join("b%s %.2f s" % (b, r["encode_s"]) for b, r in o["batches"].items())), flush=True)
        if "hf" not in skip:
            hf = child(HF_CHILD, a.model_dir, ids_path, a.threads, a.hf_batch, a.hf_order)
            keep("hf torch fp32 b%d" % a.hf_batch, hf["encode_s"], hf["cpu_s"], hf["peak_rss_mb"], "load %.2f s (excluded)" % hf["load_s"])
            print("round %d: hf %.2f s" % (rep + 1, hf["encode_s"]), flush=True)

    for name in ("ort fp32", "ort int8"):
        cands = [k for k in best if k.startswith(name + " b")]
        if cands:
            k = min(cands, key=lambda c: best[c][0])
            s, cpu, rss, note = best[k]
            best[name] = (s, cpu, rss, "best batch %s; %s" % (k.split(" b")[-1], note))
    ref = best.get("ort fp32", (None,))[0]

    print("passages %d, real tokens %d (mean %.1f, max %d), %.1f GFLOP counted, threads %d, best of %d"
          % (len(docs), n_tokens, n_tokens / len(docs), max(len(d) for d in docs), gflop, a.threads, a.repeats))
    print("%-18s %9s %9s %11s %9s %9s %10s  %s" % ("", "encode s", "GFLOP/s", "passages/s", "CPU s", "peak MB",
                                                  "ORT fp32 /", "note"))
    order = ["spladex fp32", "spladex baseline", "ort fp32", "ort int8", "hf torch fp32 b%d" % a.hf_batch]
    order += sorted(k for k in best if k not in order)
    for name in order:
        if name not in best:
            continue
        s, cpu, rss, note = best[name]
        ratio = "%9.2fx" % (ref / s) if ref else "%10s" % "-"
        print("%-18s %9.2f %9.1f %11.2f %9.2f %9.0f %s  %s" % (name, s, gflop / s, len(docs) / s, cpu, rss, ratio, note))
    print("(ORT fp32 / engine: > 1 means faster than ORT fp32)")

    if os.path.exists(fp32_reps):
        vocab = {t: i for i, t in enumerate(l.rstrip("\n") for l in open(os.path.join(a.model_dir, "vocab.txt")))}
        ref_reps = np.load(fp32_reps)
        rows = [("spladex fp32", spladex_reps(a.spladex, a.model_dir, ids_path, a.threads, vocab))]
        if os.path.exists(int8_reps):
            rows.append(("ort int8", np.load(int8_reps)))
        for name, r in rows:
            mean, worst, dw = compare(ref_reps, r)
            print("accuracy %-12s vs ort fp32: top-64 overlap mean %.4f, worst %.4f; max |dw| %.3g" % (name, mean, worst, dw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
