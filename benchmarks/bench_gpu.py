#!/usr/bin/env python3
"""bench_gpu.py: spladex on the GPU against HF transformers on the same GPU.

Both encode the same synthetic corpus with the same model: the exact config of
naver/efficient-splade-VI-BT-large-doc (DistilBertForMaskedLM, 6 x 768, vocab 30522) with random
weights (scripts/make_random_model.py efficient-splade DIR). Passages are pre-tokenized id lists
([CLS] ... [SEP], random word-piece ids) whose lengths follow MS MARCO passages in BERT tokens:
a gamma distribution with mean 75 tokens, clipped to [4, 256]. The corpora of --passages are
prefixes of one corpus (the largest), so a larger one holds the smaller one's passages.

  spladex   `spladex expand --format ids --device cuda:0 --precision fp16 --top-k 128` end to
            end: reading, batching, encoding, pruning on the device, writing HDF5 shards; wall
            clock of the process (model loading included). Random weights make almost every term
            non-zero, so --top-k keeps the output near a real SPLADE index's size (~100-200 terms
            per passage) instead of 30522 floats per passage (48 GB for 200k passages). Run once per
            route in --decoders (a decoder route, SPLADEX_CUDA_DECODER=chunked, the default,
            fused or wgmma (sm_90a), cuda/decoder_maxpool.cu, with optional "+mma" for
            SPLADEX_CUDA_ATTENTION=mma
            and "+lp" for SPLADEX_CUDA_ACTIVATIONS=lp, e.g. fused+mma+lp; DESIGN.md section 3)
            and corpus size in --passages, smallest size first
            for every route, then the next size. With two sizes, the slope (extra passages over
            extra seconds between the two) is the steady rate with start-up (CUDA context, model
            upload, the canary) taken out. Each run's row is printed as soon as it is measured;
            a run past its time (--spladex-timeout, or what is left of --budget) is killed and
            its row says TIMEOUT; the lines spladex prints that name the canary (else the
            "canary" record of the job's job.json) are collected
  HF        AutoModelForMaskedLM in each of --hf-dtypes (torch.inference_mode), batches of
            --hf-batch passages of the largest corpus sorted by length (padding only to the
            batch's longest: kinder to HF than naver's unsorted batches), naver/splade's formula
            torch.max(torch.log(1 + torch.relu(logits)) * attention_mask.unsqueeze(-1), dim=1)
            and the dense vectors copied to the host; timed after a warm-up, stopped after
            --hf-seconds (the rate is over the passages it did)

--only spladex / --only hf runs one part; each invocation merges its rows into OUT/bench_gpu.json
(kept when it describes the same corpora) and rewrites OUT/bench_gpu.json and OUT/bench_gpu.md, so
scripts/gpu_check.sh runs the two parts as separate steps and still gets one table. The HF part
runs with the CUDA library directories of --cuda-libs taken out of LD_LIBRARY_PATH (re-executing
itself when they are in its own environment), so torch loads its own CUDA libraries; spladex
runs with them put in front.

Prints passages/s, tokens/s, model TFLOP/s and FLOP utilization (useful FLOPs of the real tokens,
no padding, against the card's dense fp16 tensor peak) and the ratio spladex / HF fp16.
Exit status: 0 when every run of the parts asked for was measured, 1 otherwise (the table is
written all the same).

usage: bench_gpu.py --model DIR [--spladex BIN] [--only all|spladex|hf]
                    [--passages 50000,200000] [--budget SECONDS] [--work DIR] [--out DIR]
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

DEADLINE = None  # time.monotonic() by which this process must have written its table


def left():
    return float("inf") if DEADLINE is None else DEADLINE - time.monotonic()


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


def write_ids_file(path, n, ids, offsets):
    """The first n passages, one `pN<TAB>id id ...` line each; written once per path."""
    if os.path.exists(path):
        return
    with open(path + ".tmp", "w") as f:
        for i in range(n):
            f.write("p%d\t%s\n" % (i, " ".join(map(str, ids[offsets[i]:offsets[i + 1]].tolist()))))
    os.replace(path + ".tmp", path)


def split_paths(s):
    return [d for d in (s or "").split(":") if d]


def spladex_env(args, route):
    """spladex's environment for a route (decoder[+mma][+lp]): its three SPLADEX_CUDA_* route
    variables, and the CUDA library directories in front of LD_LIBRARY_PATH."""
    parts = route.split("+")
    unknown = [p for p in parts[1:] if p not in ("mma", "lp")]
    if unknown:
        sys.exit("bench_gpu: route %s: unknown part %s (decoder[+mma][+lp])" % (route, unknown[0]))
    env = dict(os.environ, SPLADEX_CUDA_DECODER=parts[0],
               SPLADEX_CUDA_ATTENTION="mma" if "mma" in parts else "fp32",
               SPLADEX_CUDA_ACTIVATIONS="lp" if "lp" in parts else "fp32")
    have = split_paths(env.get("LD_LIBRARY_PATH"))
    add = [d for d in split_paths(args.cuda_libs) if d not in have]
    if add:
        env["LD_LIBRARY_PATH"] = ":".join(add + have)
    return env


def torch_env(args):
    """This environment with the --cuda-libs directories taken out of LD_LIBRARY_PATH, or None
    when there is nothing to take out."""
    have = split_paths(os.environ.get("LD_LIBRARY_PATH"))
    drop = set(split_paths(args.cuda_libs))
    keep = [d for d in have if d not in drop]
    if len(keep) == len(have):
        return None
    env = dict(os.environ)
    if keep:
        env["LD_LIBRARY_PATH"] = ":".join(keep)
    else:
        env.pop("LD_LIBRARY_PATH", None)
    return env


def run_with_timeout(cmd, env, timeout):
    """(returncode or None on timeout, stdout, stderr, seconds). The child stays in this
    process group, so that a `timeout` around this script ends it too."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        rc = None
    dt = time.perf_counter() - t0
    return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), dt


def without(argv, options):
    """argv less the given options and their values (`--opt V` or `--opt=V`)."""
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in options:
            skip = True
        elif not any(a.startswith(o + "=") for o in options):
            kept.append(a)
    return kept


def gpu_name_from_smi():
    try:
        p = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", "0"],
                           capture_output=True, text=True, timeout=10)
        if p.returncode == 0 and p.stdout.strip():
            return p.stdout.strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired):
        pass
    return None


def row(system, docs, toks, secs, flops, peak, status="ok"):
    """One table row; flops are the useful FLOPs of the docs timed."""
    r = {"system": system, "status": status, "passages": docs, "seconds": None,
         "passages_per_s": None, "tokens_per_s": None, "model_tflops": None, "mfu": None}
    if status == "ok" and secs and secs > 0:
        tflops = flops / secs / 1e12
        r.update(seconds=round(secs, 2), passages_per_s=round(docs / secs, 1),
                 tokens_per_s=round(toks / secs), model_tflops=round(tflops, 1),
                 mfu=None if peak is None else round(tflops * 1e12 / peak, 4))
    return r


def row_line(r):
    if r["status"] != "ok":
        return "| %s | %s | %s | | | | |" % (r["system"], r["passages"], r["status"])
    return "| %s | %d | %.2f | %.1f | %d | %.1f | %s |" % (
        r["system"], r["passages"], r["seconds"], r["passages_per_s"], r["tokens_per_s"],
        r["model_tflops"], "n/a" if r["mfu"] is None else "%.1f%%" % (100 * r["mfu"]))


TABLE_HEAD = ["| system | passages | seconds | passages/s | tokens/s | model TFLOP/s | MFU |",
              "|---|---:|---:|---:|---:|---:|---:|"]


def run_spladex(args, ids_path, n, decoder, peak, flops, toks):
    """One `spladex expand` over the first n passages on route `decoder` (spladex_env; chunked:
    cuBLAS in vocabulary chunks + max-pool; fused: cuda/decoder_maxpool.cu). Returns its run
    record (status ok / TIMEOUT / FAILED / SKIPPED, seconds, canary lines)."""
    rec = {"decoder": decoder, "passages": n, "status": "ok", "seconds": None, "canary": []}
    system = "spladex fp16 top-%d, route %s, %d passages end to end" % (args.top_k, decoder, n)
    if left() - 10 < 5:
        rec["status"] = "SKIPPED (budget)"
        rec["row"] = row(system, n, toks, None, flops, peak, rec["status"])
        print("bench_gpu: spladex route %s, %d passages: skipped, the time budget is spent"
              % (decoder, n), flush=True)
        return rec
    timeout = min(args.spladex_timeout, left() - 10)
    out_dir = os.path.join(args.work, "spladex-out-%s-%d" % (decoder, n))
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [args.spladex, "expand", "--model", args.model, "--input", ids_path, "--format", "ids",
           "--output", out_dir, "--device", "cuda:0", "--precision", "fp16", "--max-length", "256",
           "--batch-tokens", str(args.batch_tokens), "--top-k", str(args.top_k),
           "--shard-size", "100000", "--quiet"]
    print("spladex (route %s, %d passages, timeout %.0f s): %s"
          % (decoder, n, timeout, " ".join(cmd)), flush=True)
    env = spladex_env(args, decoder)
    rc, out, err, dt = run_with_timeout(cmd, env, timeout)
    rec["canary"] = [l.strip() for l in (out + err).splitlines() if "canary" in l.lower()]
    sys.stdout.write(out[-2000:])
    sys.stdout.write(err[-4000:])
    if rc is None:
        rec["status"] = "TIMEOUT (%.0f s)" % timeout
    elif rc != 0:
        rec["status"] = "FAILED (exit %d)" % rc
    else:
        rec["seconds"] = dt
        irc, iout, ierr, _ = run_with_timeout([args.spladex, "info", out_dir, "--json"], env, 60)
        docs = None
        if irc == 0:
            try:
                docs = json.loads(iout).get("docs")
            except ValueError:
                pass
        rec["docs_in_shards"] = docs
        try:  # the canary's record, also when --quiet kept its line from being printed
            with open(os.path.join(out_dir, "job.json")) as f:
                canary = json.load(f).get("canary")
            if canary and not rec["canary"]:
                rec["canary"] = ["canary: job.json " + json.dumps(canary, sort_keys=True)]
        except (OSError, ValueError):
            pass
        if docs != n:
            rec["status"] = "FAILED (%s docs in the shards)" % docs
            sys.stdout.write(ierr[-1000:])
    shutil.rmtree(out_dir, ignore_errors=True)
    r = row(system, n, toks, rec["seconds"], flops, peak, rec["status"])
    print("bench_gpu: " + row_line(r), flush=True)
    rec["row"] = r
    return rec


def spladex_part(args, cfg, sizes, lengths, ids, offsets, flops, gpu, peak):
    os.makedirs(args.work, exist_ok=True)
    for n in sizes:
        t = time.perf_counter()
        write_ids_file(os.path.join(args.work, "passages-%d.ids" % n), n, ids, offsets)
        print("corpus: %d passages, %d tokens (%.1f s to write)"
              % (n, int(offsets[n]), time.perf_counter() - t), flush=True)
    decoders = [d for d in args.decoders.split(",") if d]
    runs = []
    for n in sizes:
        for decoder in decoders:
            runs.append(run_spladex(args, os.path.join(args.work, "passages-%d.ids" % n), n, decoder,
                                    peak, float(flops[:n].sum()), int(offsets[n])))
    rows = [r["row"] for r in runs]
    # The slope between consecutive sizes of one route: start-up cancels out.
    for decoder in decoders:
        done = {r["passages"]: r for r in runs if r["decoder"] == decoder}
        for a, b in zip(sizes, sizes[1:]):
            ra, rb = done[a], done[b]
            name = "spladex fp16 top-%d, route %s, slope %d -> %d passages" % (args.top_k, decoder, a, b)
            if ra["status"] != "ok" or rb["status"] != "ok":
                r = row(name, b - a, 0, None, 0, peak, "n/a (a run is missing)")
            elif rb["seconds"] <= ra["seconds"]:
                r = row(name, b - a, 0, None, 0, peak, "n/a (the larger run was not slower)")
            else:
                r = row(name, b - a, int(offsets[b] - offsets[a]), rb["seconds"] - ra["seconds"],
                        float(flops[a:b].sum()), peak)
            print("bench_gpu: " + row_line(r), flush=True)
            rows.append(r)
    for r in runs:
        for line in r["canary"]:
            print("canary (%s, %d passages): %s" % (r["decoder"], r["passages"], line), flush=True)
    ok = all(r["status"] == "ok" for r in runs)
    return {"runs": runs, "rows": rows, "ok": ok}


def run_hf(args, dtype_name, lengths, ids, offsets):
    import torch
    from transformers import AutoModelForMaskedLM

    dev = torch.device(args.hf_device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
    if not cuda:
        dtype = torch.float32  # the CPU is only for checking this code
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

    seconds = min(args.hf_seconds, left() - 15)
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
            if time.perf_counter() - t0 > seconds:
                break
        sync()
        dt = time.perf_counter() - t0
    name = torch.cuda.get_device_name(dev) if cuda else "cpu"
    model = None  # noqa: F841 (the closure holds the cell; this frees the weights)
    if cuda:
        torch.cuda.empty_cache()
    return dt, done_docs, done_tokens, name


def hf_part(args, lengths, ids, offsets, mean_flops, gpu, peak):
    rows, ok = [], True
    for dtype_name in [d for d in args.hf_dtypes.split(",") if d]:
        system = "HF transformers %s" % dtype_name
        if left() < 30:
            rows.append(row(system, 0, 0, None, 0, peak, "SKIPPED (budget)"))
            ok = False
            continue
        try:
            dt, docs, toks, name = run_hf(args, dtype_name, lengths, ids, offsets)
        except Exception as e:  # no torch, no transformers, no device: a row that says so
            print("bench_gpu: HF transformers %s did not run: %s: %s"
                  % (dtype_name, type(e).__name__, e), flush=True)
            rows.append(row(system, 0, 0, None, 0, peak,
                            "NOT RUN (%s)" % type(e).__name__))
            ok = False
            continue
        if gpu is None or gpu == "cpu":
            gpu = name
            peak = next((p for n, p in PEAKS if n in gpu), None)
        r = row(system, docs, toks, dt, docs * mean_flops, peak)
        print("bench_gpu: " + row_line(r), flush=True)
        rows.append(r)
    return {"rows": rows, "ok": ok, "gpu": gpu}


def write_tables(args, result):
    rows = result.get("spladex", {}).get("rows", []) + result.get("hf", {}).get("rows", [])
    peak = result.get("peak_fp16_dense_tflops")
    for r in rows:  # the GPU's name may have become known after a part's rows were made
        if r["status"] == "ok":
            r["mfu"] = None if peak is None else round(r["model_tflops"] / peak, 4)
    hf = next((r for r in result.get("hf", {}).get("rows", [])
               if r["system"].endswith("fp16") and r["status"] == "ok"), None)
    largest = "%d passages end to end" % result["corpus"]["sizes"][-1]
    ratios = {}
    if hf:  # the slopes and the largest corpus's runs
        ratios = {r["system"]: round(r["passages_per_s"] / hf["passages_per_s"], 2)
                  for r in result.get("spladex", {}).get("rows", [])
                  if r["status"] == "ok" and ("slope" in r["system"] or r["system"].endswith(largest))}
    result["rows"] = rows
    result["ratio_spladex_over_hf_fp16"] = ratios
    with open(os.path.join(args.out, "bench_gpu.json"), "w") as f:
        json.dump(result, f, indent=1)
    c = result["corpus"]
    lines = ["GPU: %s (dense fp16 peak %s TFLOP/s), %s, corpora of %s passages, mean %.1f tokens"
             % (result.get("gpu") or "unknown", "unknown" if peak is None else "%.0f" % peak,
                result["date"], " and ".join(str(n) for n in c["sizes"]), c["mean_length"]), ""]
    lines += TABLE_HEAD + [row_line(r) for r in rows]
    lines += [""] + ["ratio %s / HF fp16: %.2fx" % (k, v) for k, v in ratios.items()]
    for part in ("spladex", "hf"):
        if part in result and not result[part]["ok"]:
            lines.append("INCOMPLETE: the %s part (see the rows' status and the log)" % part)
        elif part not in result:
            lines.append("not run: the %s part" % part)
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "bench_gpu.md"), "w") as f:
        f.write(text)
    return text


def main():
    global DEADLINE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spladex", help="the spladex binary (needed by --only spladex / all)")
    ap.add_argument("--model", required=True, help="efficient-splade random model directory")
    ap.add_argument("--only", choices=["all", "spladex", "hf"], default="all")
    ap.add_argument("--passages", default="50000,200000",
                    help="corpus sizes, comma-separated (each a prefix of the largest); two or more "
                         "give the slope")
    ap.add_argument("--batch-tokens", type=int, default=32768)
    ap.add_argument("--top-k", type=int, default=128,
                    help="spladex keeps the K largest weights per passage on the device (random "
                         "weights make ~all 30522 terms non-zero; real SPLADE docs keep ~100-200)")
    ap.add_argument("--decoders", default="chunked,fused,fused+mma+lp,wgmma+mma+lp",
                    help="spladex routes to time, comma-separated: chunked, fused or wgmma "
                         "(SPLADEX_CUDA_DECODER), each with optional +mma "
                         "(SPLADEX_CUDA_ATTENTION=mma) and +lp (SPLADEX_CUDA_ACTIVATIONS=lp)")
    ap.add_argument("--cuda-libs", default=os.environ.get("SPLADEX_CUDA_LIBS", ""),
                    help="directories (:-separated) of the CUDA libraries spladex needs on "
                         "LD_LIBRARY_PATH; kept out of torch's (default: $SPLADEX_CUDA_LIBS)")
    ap.add_argument("--hf-batch", type=int, default=128)
    ap.add_argument("--hf-seconds", type=float, default=60.0, help="per dtype")
    ap.add_argument("--hf-dtypes", default="fp16", help="comma-separated: fp16, bf16")
    ap.add_argument("--hf-device", default="cuda:0", help=argparse.SUPPRESS)
    ap.add_argument("--spladex-timeout", type=float, default=150.0, help="per spladex run")
    ap.add_argument("--budget", type=float,
                    default=(float(os.environ["GPU_CHECK_STEP_LIMIT"]) - 10
                             if os.environ.get("GPU_CHECK_STEP_LIMIT") else None),
                    help="seconds for this invocation (default: none, or $GPU_CHECK_STEP_LIMIT "
                         "- 10): runs that no longer fit are skipped, the table is written")
    ap.add_argument("--work", default="benchmarks/out",
                    help="the ids files and spladex's shards (large: keep it out of --out)")
    ap.add_argument("--out", default=os.environ.get("OUT", "benchmarks/out"))
    args = ap.parse_args()
    if args.budget is not None:
        DEADLINE = time.monotonic() + args.budget

    if args.only == "hf":
        env = torch_env(args)
        if env is not None:  # the loader reads LD_LIBRARY_PATH at start: start again without them
            print("bench_gpu: re-running without %s on LD_LIBRARY_PATH for torch" % args.cuda_libs,
                  flush=True)
            argv = [sys.executable, os.path.abspath(__file__)] + without(sys.argv[1:], ("--budget",))
            if args.budget is not None:
                argv += ["--budget", str(max(1.0, left()))]
            os.execve(sys.executable, argv, env)
    if args.only != "hf" and not args.spladex:
        ap.error("--spladex BIN is needed for --only %s" % args.only)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)

    sizes = sorted({int(s) for s in args.passages.split(",") if s})
    t = time.perf_counter()
    lengths, ids, offsets = make_corpus(sizes[-1])
    tokens = int(lengths.sum())
    flops = flops_per_passage(lengths, cfg)
    print("corpus: %d passages, %d tokens, mean length %.1f, max %d (%.1f s to make)"
          % (sizes[-1], tokens, tokens / sizes[-1], lengths.max(), time.perf_counter() - t),
          flush=True)
    corpus = {"sizes": sizes, "tokens": [int(offsets[n]) for n in sizes],
              "mean_length": round(tokens / sizes[-1], 2), "max_length": int(lengths.max())}
    config = {"top_k": args.top_k, "batch_tokens": args.batch_tokens, "hf_batch": args.hf_batch}

    result = {}
    path = os.path.join(args.out, "bench_gpu.json")
    if os.path.exists(path):  # the other part's rows, when they describe the same corpora
        try:
            with open(path) as f:
                old = json.load(f)
            if old.get("corpus") == corpus and old.get("config") == config:
                result = old
        except ValueError:
            pass
    gpu = result.get("gpu") or gpu_name_from_smi()
    peak = next((p for n, p in PEAKS if gpu and n in gpu), None)
    result.update({"model": "efficient-splade-VI-BT-large-doc config, random weights",
                   "corpus": corpus, "config": config,
                   "date": time.strftime("%Y-%m-%d", time.gmtime())})

    ok = True
    if args.only in ("all", "spladex"):
        part = spladex_part(args, cfg, sizes, lengths, ids, offsets, flops, gpu, peak)
        result["spladex"] = part
        ok = ok and part["ok"]
        result.update(gpu=gpu, peak_fp16_dense_tflops=None if peak is None else peak / 1e12)
        print(write_tables(args, result), flush=True)
    if args.only == "all":
        # torch in a child process whose environment never had spladex's CUDA libraries
        cmd = [sys.executable, os.path.abspath(__file__), "--only", "hf"] + without(
            sys.argv[1:], ("--only", "--budget"))
        if args.budget is not None:
            cmd += ["--budget", str(max(1.0, left()))]
        rc = subprocess.run(cmd, env=torch_env(args) or dict(os.environ)).returncode
        return 0 if ok and rc == 0 else 1
    if args.only == "hf":
        part = hf_part(args, lengths, ids, offsets, float(flops.mean()), gpu, peak)
        result["hf"] = {"rows": part["rows"], "ok": part["ok"]}
        ok = ok and part["ok"]
        gpu = part["gpu"]
        peak = next((p for n, p in PEAKS if gpu and n in gpu), None)
        result.update(gpu=gpu, peak_fp16_dense_tflops=None if peak is None else peak / 1e12)
        print(write_tables(args, result), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
