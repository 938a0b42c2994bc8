#!/usr/bin/env python3
"""Regenerates tests/fixtures/windows/: reference vectors of long documents cut into windows.

Needs torch + transformers (tests/py/test_windows.py, which reads the fixture, needs only numpy).
For each case (model, L = --max-length, S = --stride, N = --max-windows, a batch token budget that
makes documents span batches) and each document of n tokens t[0..n) (no specials, untruncated,
from BertTokenizerFast on real English prose: the stdlib docstrings of gen_encoder_fixtures.py),
the windows are built here independently of spladex, from the issue's rule:
    window k holds t[k*S, min(k*S + L - 2, n)) wrapped in [CLS] ... [SEP], k = 0, 1, ...;
    the last window is the first that reaches n; an empty text is one window ([CLS] [SEP]);
    only the first N windows are encoded;
each window runs through AutoModelForMaskedLM (eval, fp32, padded batches with an attention mask),
naver/splade's formula gives each window's vector
    torch.max(torch.log1p(torch.relu(logits)) * attention_mask.unsqueeze(-1), dim=1)
and the document's vector is the elementwise max over its windows.

Models: tiny-distilbert and tiny-bert (random weights of scripts/make_random_model.py, rebuilt
into tests/fixtures/generated/ with the sha256 of tests/fixtures/encoder/encoder.json; max
positions 512, so L in {64, 256, 512}) and the real rasyosef/splade-tiny (models/splade-tiny).

Writes windows.npz (per case i: i_ids, i_offsets: the [CLS] t [SEP] id lines given to
`spladex encode --ids`; i_indptr, i_indices (uint16), i_values (float32): every w > 0 of the
reference) and windows.json (the cases, models, versions).

usage: gen_window_fixtures.py
"""
import datetime
import json
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForMaskedLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import gen_encoder_fixtures as gef  # noqa: E402
import make_random_model  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "windows")
CLS, SEP = 101, 102

# (model, L, S, N, batch_tokens, document lengths in tokens without specials). Few documents on
# the random models: about half their vocabulary has w > 0, so each costs ~170 KB of fixture;
# the window edge cases (0, L-3 .. L-1, 2(L-2) .. 2(L-2)+1 tokens) are on splade-tiny.
CASES = [
    ("tiny-distilbert", 64, 1, 64, 192, [0, 300]),
    ("tiny-distilbert", 512, 128, 64, 1100, [5000]),
    ("tiny-distilbert", 256, 64, 64, 600, [3000]),
    ("tiny-distilbert", 256, 128, 3, 8192, [900]),
    ("tiny-bert", 64, 1, 64, 8192, [100]),
    ("tiny-bert", 512, 510, 64, 1024, [1021]),
    ("tiny-bert", 256, 128, 64, 700, [4800]),
    ("splade-tiny", 64, 1, 64, 128, [40, 120]),
    ("splade-tiny", 64, 62, 64, 8192, [0, 61, 62, 63, 124, 125, 5000]),
    ("splade-tiny", 256, 64, 64, 600, [20, 800]),
    ("splade-tiny", 512, 128, 64, 1100, [100, 1500, 5000]),
    ("splade-tiny", 512, 510, 64, 1024, [510, 511, 4000]),
]


def windows(t, L, S, N):
    """The issue's windows of t (a list of ids without specials), at most N."""
    n, w, out, k = len(t), L - 2, [], 0
    while True:
        lo = k * S
        out.append([CLS] + t[lo:min(lo + w, n)] + [SEP])
        if lo + w >= n:
            break
        k += 1
    return out[:N], len(out)


def doc_vectors(model, docs, batch=16):
    """max over each window list of naver's per-window vectors; (len(docs), V) float32."""
    flat = [(i, w) for i, ws in enumerate(docs) for w in ws]
    V = model.config.vocab_size
    out = np.zeros((len(docs), V), np.float32)
    seen = [False] * len(docs)
    for s in range(0, len(flat), batch):
        chunk = flat[s:s + batch]
        T = max(len(w) for _, w in chunk)
        ids = torch.zeros(len(chunk), T, dtype=torch.long)
        mask = torch.zeros(len(chunk), T, dtype=torch.long)
        for j, (_, w) in enumerate(chunk):
            ids[j, :len(w)] = torch.tensor(w)
            mask[j, :len(w)] = 1
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits
            v = torch.max(torch.log1p(torch.relu(logits)) * mask.unsqueeze(-1), dim=1).values
        v = v.float().numpy()
        for j, (i, _) in enumerate(chunk):
            out[i] = np.maximum(out[i], v[j]) if seen[i] else v[j]
            seen[i] = True
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    vocab_dir = os.path.join(gef.GENERATED, "vocab-only")
    os.makedirs(vocab_dir, exist_ok=True)
    shutil.copyfile(gef.VOCAB, os.path.join(vocab_dir, "vocab.txt"))
    tok = gef.BertTokenizerFast.from_pretrained(vocab_dir, do_lower_case=True)
    assert tok("Hello world")["input_ids"] == [101, 7592, 2088, 102], "tokenizer did not load the vocab"
    tok.model_max_length = 1 << 22
    words = " ".join(gef.stdlib_prose()).split()
    pieces = tok(" ".join(words), add_special_tokens=False)["input_ids"]
    manifest_models = json.load(open(os.path.join(ROOT, "tests", "fixtures", "encoder", "encoder.json")))["fixtures"]
    rs = np.random.RandomState(4321)
    arrays, cases, models = {}, [], {}
    for ci, (name, L, S, N, bt, lengths) in enumerate(CASES):
        if name not in models:
            entry = manifest_models[name]["model"]
            if name == "splade-tiny":
                d = os.environ.get("SPLADEX_MODEL_TINY", os.path.join(ROOT, "models", "splade-tiny"))
                sha = make_random_model.sha256_file(os.path.join(d, "model.safetensors"))
            else:
                d = os.path.join(gef.GENERATED, name)
                sha = make_random_model.make_model(entry["preset"], d, seed=entry["seed"])
            assert sha == entry["sha256"], "%s is not the model of encoder.json" % name
            models[name] = (AutoModelForMaskedLM.from_pretrained(d, dtype=torch.float32).eval(), entry)
        model = models[name][0]
        texts = []
        for n in lengths:  # a run of real prose of n pieces, from a random place
            start = int(rs.randint(0, len(pieces) - n - 1))
            texts.append(pieces[start:start + n])
        wins = [windows(t, L, S, N) for t in texts]
        ref = doc_vectors(model, [w for w, _ in wins])
        lines = [[CLS] + t + [SEP] for t in texts]
        nz = [np.nonzero(r > 0)[0] for r in ref]
        p = "%d_" % ci
        arrays[p + "ids"] = np.concatenate([np.asarray(x, np.int32) for x in lines])
        arrays[p + "offsets"] = np.concatenate([[0], np.cumsum([len(x) for x in lines])]).astype(np.int64)
        arrays[p + "indptr"] = np.concatenate([[0], np.cumsum([len(z) for z in nz])]).astype(np.int64)
        arrays[p + "indices"] = np.concatenate(nz).astype(np.uint16)
        arrays[p + "values"] = np.concatenate([r[z] for r, z in zip(ref, nz)]).astype(np.float32)
        cases.append({"model": name, "max_length": L, "stride": S, "max_windows": N,
                      "batch_tokens": bt, "lengths": lengths,
                      "windows": [len(w) for w, _ in wins], "all_windows": [c for _, c in wins]})
        print("case %d: %s L=%d S=%d N=%d: windows %s" % (ci, name, L, S, N, [c for _, c in wins]))
    np.savez_compressed(os.path.join(OUT, "windows.npz"), **arrays)
    manifest = {
        "generator": {"script": "scripts/gen_window_fixtures.py", "date": datetime.date.today().isoformat(),
                      "torch": torch.__version__, "transformers": transformers.__version__,
                      "python": sys.version.split()[0], "numpy": np.__version__,
                      "formula": "max over windows of torch.max(torch.log1p(torch.relu(logits)) * "
                                 "attention_mask.unsqueeze(-1), dim=1)"},
        "models": {k: v[1] for k, v in models.items()},
        "cases": cases,
    }
    with open(os.path.join(OUT, "windows.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
