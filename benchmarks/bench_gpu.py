#!/usr/bin/env python3
"""bench_gpu.py: spladex on the GPU against HF transformers on the same GPU.

Both encode the same synthetic corpus with the same model: the exact config of
naver/efficient-splade-VI-BT-large-doc (DistilBertForMaskedLM, 6 x 768, vocab 30522) with random
weights (scripts/make_random_model.py efficient-splade DIR). Passages are pre-tokenized id lists
([CLS] ... [SEP], random word-piece ids) whose lengths follow MS MARCO passages in BERT tokens:
a gamma distribution with mean 75 tokens, clipped to [4, 256].

  spladex   `spladex expand --format ids --device cuda:0 --precision fp16 --top-k 128` end to
            end: reading, batching, encoding, pruning on the device, writing HDF5 shards; wall
            clock of the process (model loading included). Random weights make almost every term
            non-zero, so --top-k keeps the output near a real SPLADE index's size (~100-200 terms
            per passage) instead of 30522 floats per passage (48 GB for 200k passages). Run once per
            decoder route in --decoders (SPLADEX_CUDA_DECODER=chunked, the default route, and
            fused, cuda/decoder_maxpool.cu), so one run times both
  HF        AutoModelForMaskedLM in fp16 (torch.inference_mode), batches of --hf-batch passages
            sorted by length (padding only to the batch's longest: kinder to HF than naver's
            unsorted batches), naver/splade's formula
            torch.max(torch.log(1 + torch.relu(logits)) * attention_mask.unsqueeze(-1), dim=1)
            and the dense vectors copied to the host; timed after a warm-up, stopped after
            --hf-seconds (the rate is over the passages it did)

Prints passages/s, tokens/s, model TFLOP/s and FLOP utilization (useful FLOPs of the real tokens,
no padding, against the card's dense fp16 tensor peak) and the ratio spladex / HF. Writes
OUT/bench_gpu.json and OUT/bench_gpu.md.

usage: bench_gpu.py --spladex BIN --model DIR [--passages 200000] [--work DIR] [--out DIR]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

# Dense fp16 tensor-core peaks (no sparsity), FLOP/s, matched against the device name.
PEAKS = [("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989e12), ("H200", 989e12),
         ("GH200", 989e12), ("A100", 312e12), ("L40S", 362e12), ("A10", 125e12), ("L4", 121e12)]


def flops_per_passage(lengths, cfg):
    """Useful forward FLOPs of each passage (2 per multiply-add): the linear layers, attention
    scores and mixing, the MLM head and the decoder over all vocabulary terms."""
    H, F, L, V = cfg["dim"], cfg["hidden_dim"], cfg["n_layers"], cfg["vocab_size"]
    T = lengths.astype(np.float64)
    per_token = L * 2 * (4 * H * H + 2 * H * F) + 2 * H * H + 2 * H * V
    attention = L * 4 * T * T * H
    return per_token * T + attention


def make_corpus(n, seed=12345):
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.rint(rng.gamma(4.0, (75.0 - 2.0) / 4.0, size=n) + 2.0), 4, 256).astype(np.int64)
    total = int(lengths.sum())
    ids = rng.integers(1996, 30522, size=total, dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids[offsets[:-1]] = 101
    ids[offsets[1:] - 1] = 102
    return lengths, ids, offsets


def write_ids_file(path, ids, offsets):
    with open(path, "w") as f:
        for i in range(len(offsets) - 1):
            f.write("p%d\t%s\n" % (i, " ".join(map(str, ids[offsets[i]:offsets[i + 1]].tolist()))))


def run_spladex(args, ids_path, n, decoder):
    """One `spladex expand` over the corpus with SPLADEX_CUDA_DECODER=decoder (chunked: cuBLAS in
    vocabulary chunks + max-pool; fused: cuda/decoder_maxpool.cu)."""
    out_dir = os.path.join(args.work, "spladex-out-" + decoder)
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [args.spladex, "expand", "--model", args.model, "--input", ids_path, "--format", "ids",
           "--output", out_dir, "--device", "cuda:0", "--precision", "fp16", "--max-length", "256",
           "--batch-tokens", str(args.batch_tokens), "--top-k", str(args.top_k),
           "--shard-size", "100000", "--quiet"]
    print("spladex (SPLADEX_CUDA_DECODER=%s): %s" % (decoder, " ".join(cmd)), flush=True)
    env = dict(os.environ, SPLADEX_CUDA_DECODER=decoder)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.spladex_timeout, env=env)
    dt = time.perf_counter() - t0
    sys.stdout.write(p.stdout[-2000:])
    sys.stderr.write(p.stderr[-4000:])
    if p.returncode != 0:
        print("bench_gpu: spladex with the %s decoder failed (exit %d)" % (decoder, p.returncode),
              flush=True)
        return None, None
    info = subprocess.run([args.spladex, "info", out_dir, "--json"], capture_output=True, text=True,
                          timeout=120)
    docs = None
    if info.returncode == 0:
        try:
            docs = json.loads(info.stdout).get("docs")
        except ValueError:
            pass
    if docs is not None and docs != n:
        print("bench_gpu: spladex (%s) wrote %s docs, expected %d" % (decoder, docs, n), flush=True)
        return None, docs
    return dt, docs


def run_hf(args, lengths, ids, offsets):
    import torch
    from transformers import AutoModelForMaskedLM

    dev = torch.device(args.hf_device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    dtype = torch.float16 if cuda else torch.float32  # the CPU is only for checking this code
    model = AutoModelForMaskedLM.from_pretrained(args.model, dtype=dtype).to(dev).eval()
    order = np.argsort(lengths, kind="stable")
    batches = [order[i:i + args.hf_batch] for i in range(0, len(order), args.hf_batch)]
    # interleave short and long batches so a time cap does not bias the length mix
    rng = np.random.default_rng(7)
    rng.shuffle(batches)

    def encode(batch):
        T = int(lengths[batch].max())
        x = np.zeros((len(batch), T), dtype=np.int64)
        mask = np.zeros((len(batch), T), dtype=np.int64)
        for r, d in enumerate(batch):
            x[r, :lengths[d]] = ids[offsets[d]:offsets[d + 1]]
            mask[r, :lengths[d]] = 1
        xt = torch.from_numpy(x).to(dev, non_blocking=True)
        mt = torch.from_numpy(mask).to(dev, non_blocking=True)
        logits = model(input_ids=xt, attention_mask=mt).logits
        vec, _ = torch.max(torch.log(1 + torch.relu(logits)) * mt.unsqueeze(-1), dim=1)
        return vec.cpu()

    with torch.inference_mode():
        for b in batches[:3]:
            encode(b)
        sync()
        done_docs, done_tokens = 0, 0
        t0 = time.perf_counter()
        for b in batches:
            encode(b)
            done_docs += len(b)
            done_tokens += int(lengths[b].sum())
            if time.perf_counter() - t0 > args.hf_seconds:
                break
        sync()
        dt = time.perf_counter() - t0
    return dt, done_docs, done_tokens, torch.cuda.get_device_name(dev) if cuda else "cpu"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spladex", required=True)
    ap.add_argument("--model", required=True, help="efficient-splade random model directory")
    ap.add_argument("--passages", type=int, default=200000)
    ap.add_argument("--batch-tokens", type=int, default=32768)
    ap.add_argument("--top-k", type=int, default=128,
                    help="spladex keeps the K largest weights per passage on the device (random "
                         "weights make ~all 30522 terms non-zero; real SPLADE docs keep ~100-200)")
    ap.add_argument("--decoders", default="chunked,fused",
                    help="spladex decoder routes to time, comma-separated (SPLADEX_CUDA_DECODER)")
    ap.add_argument("--hf-batch", type=int, default=128)
    ap.add_argument("--hf-seconds", type=float, default=60.0)
    ap.add_argument("--hf-device", default="cuda:0", help=argparse.SUPPRESS)
    ap.add_argument("--spladex-timeout", type=float, default=150.0)
    ap.add_argument("--work", default="benchmarks/out")
    ap.add_argument("--out", default=os.environ.get("OUT", "benchmarks/out"))
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)

    t = time.perf_counter()
    lengths, ids, offsets = make_corpus(args.passages)
    ids_path = os.path.join(args.work, "passages-%d.ids" % args.passages)
    if not os.path.exists(ids_path):
        write_ids_file(ids_path + ".tmp", ids, offsets)
        os.replace(ids_path + ".tmp", ids_path)
    tokens = int(lengths.sum())
    flops = flops_per_passage(lengths, cfg)
    print("corpus: %d passages, %d tokens, mean length %.1f, max %d (%.1f s to make)"
          % (args.passages, tokens, tokens / args.passages, lengths.max(), time.perf_counter() - t),
          flush=True)

    spladex_runs = []
    for decoder in [d for d in args.decoders.split(",") if d]:
        sp_s, sp_docs = run_spladex(args, ids_path, args.passages, decoder)
        spladex_runs.append((decoder, sp_s, sp_docs))
    hf_s, hf_docs, hf_tokens, gpu = run_hf(args, lengths, ids, offsets)

    peak = next((p for name, p in PEAKS if name in gpu), None)
    mean_flops = float(flops.mean())
    rows = []
    timed = [("spladex fp16 top-%d, %s decoder, end to end" % (args.top_k, decoder), args.passages,
              tokens, secs) for decoder, secs, _ in spladex_runs if secs is not None]
    failed = [decoder for decoder, secs, _ in spladex_runs if secs is None]
    for system, docs, toks, secs in timed + [("HF transformers fp16", hf_docs, hf_tokens, hf_s)]:
        tflops = docs * mean_flops / secs / 1e12
        rows.append({"system": system, "passages": docs, "seconds": round(secs, 2),
                     "passages_per_s": round(docs / secs, 1), "tokens_per_s": round(toks / secs),
                     "model_tflops": round(tflops, 1),
                     "mfu": None if peak is None else round(tflops * 1e12 / peak, 4)})
    hf_rate = rows[-1]["passages_per_s"]
    ratios = {r["system"]: round(r["passages_per_s"] / hf_rate, 2) for r in rows[:-1]}
    result = {"gpu": gpu, "peak_fp16_dense_tflops": None if peak is None else peak / 1e12,
              "model": "efficient-splade-VI-BT-large-doc config, random weights",
              "corpus": {"passages": args.passages, "tokens": tokens,
                         "mean_length": round(tokens / args.passages, 2), "max_length": int(lengths.max())},
              "spladex_docs_in_shards": {d: docs for d, _, docs in spladex_runs},
              "spladex_failed": failed, "rows": rows, "ratio_spladex_over_hf": ratios,
              "date": time.strftime("%Y-%m-%d", time.gmtime())}
    with open(os.path.join(args.out, "bench_gpu.json"), "w") as f:
        json.dump(result, f, indent=1)
    lines = ["GPU: %s (dense fp16 peak %s TFLOP/s), %s, %d passages, mean %.1f tokens"
             % (gpu, "unknown" if peak is None else "%.0f" % (peak / 1e12), result["date"],
                args.passages, tokens / args.passages), "",
             "| system | passages | seconds | passages/s | tokens/s | model TFLOP/s | MFU |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append("| %s | %d | %.2f | %.1f | %d | %.1f | %s |"
                     % (r["system"], r["passages"], r["seconds"], r["passages_per_s"], r["tokens_per_s"],
                        r["model_tflops"], "n/a" if r["mfu"] is None else "%.1f%%" % (100 * r["mfu"])))
    lines += [""] + ["ratio %s / HF: %.2fx" % (k, v) for k, v in ratios.items()]
    if failed:
        lines += ["", "FAILED: spladex with the %s decoder (see the log above)" % ", ".join(failed)]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "bench_gpu.md"), "w") as f:
        f.write(text)
    print(text)
    if failed or not timed:
        sys.exit(1)


if __name__ == "__main__":
    main()
