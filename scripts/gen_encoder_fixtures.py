#!/usr/bin/env python3
"""Regenerates tests/fixtures/encoder/: reference SPLADE vectors from HF transformers.

Needs torch + transformers (the tests that read the fixtures need only numpy). For each model
  tiny-distilbert, efficient-splade, tiny-bert   random weights from scripts/make_random_model.py
                                                 (rebuilt into tests/fixtures/generated/, sha256
                                                 recorded, weights never committed)
  splade-tiny                                    the real rasyosef/splade-tiny at models/splade-tiny
                                                 (scripts/fetch_model.sh), >= 200 real passages
it builds documents of mixed lengths, runs AutoModelForMaskedLM (eval, fp32) on padded batches with
an attention mask, applies naver/splade's formula
    torch.max(torch.log1p(torch.relu(logits)) * attention_mask.unsqueeze(-1), dim=1)
and writes, per fixture, <name>.npz:
    ids, ids_offsets   int32 / int64: the id lines given to `spladex encode --ids` (may be
                       longer than max_length: spladex must truncate them like the tokenizer)
    max_length         int32 per doc: the --max-length of the run (256, or 512 for some docs)
    n_tokens           int32 per doc: length after truncation (what the reference model saw)
    ref_indptr, ref_indices (uint16, uint32 when V > 65536), ref_values (float32): every w > 0
                       of the reference vector
and encoder.json (models, sha256, versions, document counts).

Documents. The text is real English prose taken at generation time from the docstrings of the
Python standard library (chunked into passages with an MS MARCO-like length spread); only the
token ids are committed. Lengths: 1 ([CLS] alone: the tokenizer never produces it, but the
encoder accepts any id line and it is the T = 1 corner of attention and pooling), 2
([CLS][SEP], the empty passage), 3 (one piece), short, medium, max_length - 1, exactly max_length,
and longer than max_length (given untruncated; truncated by spladex to the first max_length - 1
ids + [SEP], which the script asserts equals HF tokenizer truncation of the same text).

usage: gen_encoder_fixtures.py [--only NAME ...]
"""
import argparse
import datetime
import importlib
import inspect
import json
import os
import re
import shutil
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForMaskedLM, BertTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import make_random_model  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "encoder")
GENERATED = os.path.join(ROOT, "tests", "fixtures", "generated")
VOCAB = os.path.join(ROOT, "tests", "fixtures", "vocab", "bert-base-uncased-vocab.txt")
CLS, SEP = 101, 102

# Stdlib modules whose docstrings make the passages (sorted walk, so the text is stable for one
# Python version; the ids are what is committed).
MODULES = ["argparse", "asyncio", "collections", "concurrent.futures", "csv", "datetime", "decimal",
           "difflib", "email", "fractions", "functools", "http.client", "inspect", "io", "ipaddress",
           "itertools", "json", "logging", "multiprocessing", "os", "pathlib", "pickle", "random",
           "re", "shutil", "socket", "sqlite3", "statistics", "string", "subprocess", "tarfile",
           "textwrap", "threading", "typing", "unittest", "urllib.parse", "uuid", "zipfile"]


def stdlib_prose():
    """Docstring paragraphs of the listed modules (and their public members), cleaned."""
    seen, paras = set(), []
    for name in MODULES:
        mod = importlib.import_module(name)
        objs = [mod] + [getattr(mod, a) for a in sorted(dir(mod)) if not a.startswith("_")]
        for o in objs:
            doc = inspect.getdoc(o) if (inspect.ismodule(o) or inspect.isclass(o) or inspect.isfunction(o)) else None
            if not doc or id(doc) in seen:
                continue
            seen.add(id(doc))
            for p in re.split(r"\n\s*\n", doc):
                p = " ".join(p.split())
                if len(p.split()) >= 8 and not p.startswith((">>>", "..")):
                    paras.append(p)
    # Remove duplicates, keep order.
    out, dup = [], set()
    for p in paras:
        if p not in dup:
            dup.add(p)
            out.append(p)
    return out


def passages(n, rs, words_mean=55, sigma=0.6):
    """n passages: consecutive prose cut into pieces of lognormal word counts (mean about
    words_mean; sigma 0.6 spreads lengths widely for the fixtures, about 0.4 is MS MARCO-like)."""
    words = " ".join(stdlib_prose()).split()
    out, pos = [], 0
    for _ in range(n):
        k = int(np.clip(rs.lognormal(np.log(words_mean) - sigma * sigma / 2, sigma), 3, 600))
        if pos + k > len(words):
            pos = 0
        out.append(" ".join(words[pos:pos + k]))
        pos += k
    return out


def long_text(min_pieces, tok, rs):
    words = " ".join(stdlib_prose()).split()
    start = int(rs.randint(0, len(words) - 2000))
    k = 50
    while len(tok(" ".join(words[start:start + k]), add_special_tokens=False)["input_ids"]) < min_pieces:
        k += 50
    return " ".join(words[start:start + k])


def doc_ids_for_length(target, max_length, tok, rs, texts):
    """(ids given to spladex, ids the reference model sees) for a document of `target` tokens."""
    if target == 1:
        return [CLS], [CLS]
    if target == 2:
        return [CLS, SEP], [CLS, SEP]
    if target > max_length:
        text = long_text(target - 2, tok, rs)
        full = tok(text)["input_ids"]
        trunc = tok(text, truncation=True, max_length=max_length)["input_ids"]
        assert len(full) > max_length and trunc == full[:max_length - 1] + [SEP], "truncation rule"
        return full, trunc
    # Cut real text to exactly `target` ids: [CLS] + target - 2 pieces + [SEP].
    text = long_text(target, tok, rs) if target > 40 else texts.pop()
    pieces = tok(text, add_special_tokens=False)["input_ids"]
    while len(pieces) < target - 2:
        pieces += tok(texts.pop(), add_special_tokens=False)["input_ids"]
    ids = [CLS] + pieces[:target - 2] + [SEP]
    return ids, ids


def reference(model, docs, batch_size=8):
    """naver/splade's document vectors for docs (lists of ids), padded batches; (B, V) float32."""
    out = []
    for i in range(0, len(docs), batch_size):
        chunk = docs[i:i + batch_size]
        L = max(len(d) for d in chunk)
        ids = torch.zeros(len(chunk), L, dtype=torch.long)
        mask = torch.zeros(len(chunk), L, dtype=torch.long)
        for j, d in enumerate(chunk):
            ids[j, :len(d)] = torch.tensor(d)
            mask[j, :len(d)] = 1
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits
            w = torch.max(torch.log1p(torch.relu(logits)) * mask.unsqueeze(-1), dim=1).values
        out.append(w.float().numpy())
    return np.concatenate(out)


def write_fixture(name, given, seen, max_lengths, ref):
    given_flat = np.concatenate([np.asarray(g, np.int32) for g in given])
    offsets = np.concatenate([[0], np.cumsum([len(g) for g in given])]).astype(np.int64)
    nz = [np.nonzero(r > 0)[0] for r in ref]
    indptr = np.concatenate([[0], np.cumsum([len(z) for z in nz])]).astype(np.int64)
    np.savez_compressed(os.path.join(OUT, name + ".npz"), ids=given_flat, ids_offsets=offsets,
                        max_length=np.asarray(max_lengths, np.int32),
                        n_tokens=np.asarray([len(s) for s in seen], np.int32),
                        ref_indptr=indptr,
                        ref_indices=np.concatenate(nz).astype(np.uint16 if ref.shape[1] <= 65536 else np.uint32),
                        ref_values=np.concatenate([r[z] for r, z in zip(ref, nz)]).astype(np.float32))
    return int(indptr[-1])


# Lengths of the documents per fixture, grouped by --max-length.
RANDOM_LENGTHS = {
    "tiny-distilbert": {256: [1, 2, 3, 7, 20, 75, 255, 256, 300], 512: [511, 600]},
    "tiny-bert": {256: [1, 2, 3, 9, 33, 130, 256, 290], 512: [3, 512, 530]},
    "efficient-splade": {256: [1, 2, 3, 12, 75, 256, 320], 512: [200, 512]},
    "tiny-bert-v105879": {256: [1, 2, 3, 9, 33, 130, 256, 290], 512: [530]},
    "tiny-roberta": {},  # RoBERTa: no WordPiece text, ids only (below)
    "tiny-xlm-roberta": {},  # XLMRobertaForMaskedLM (the same weights), ids only
}
# Documents of ids drawn uniformly from the whole vocabulary (the text above only reaches
# bert-base-uncased's 30,522 pieces): (max_length, length) per fixture.
RANDOM_ID_DOCS = {"tiny-bert-v105879": [(256, 64), (256, 200)],
                  # lengths 1 and 2 are <s> alone and <s></s>; 512 reaches the position table's end
                  "tiny-roberta": [(256, 1), (256, 2), (256, 3), (256, 17), (256, 100), (256, 255), (256, 256),
                                   (512, 300), (512, 511), (512, 512)],
                  "tiny-xlm-roberta": [(256, 1), (256, 2), (256, 3), (256, 17), (256, 100), (256, 255),
                                       (512, 300), (512, 512)]}
# RoBERTa documents holding <pad> (id 1) as a text can ("<pad>" is an added special token): HF
# gives such a token the padding_idx position and does not count it, (max_length, length, the
# indices set to <pad>) per fixture.
RANDOM_PAD_DOCS = {"tiny-roberta": [(256, 9, [1]), (256, 40, [5, 6, 20]), (256, 30, [28]), (512, 512, [3, 300])],
                   "tiny-xlm-roberta": [(256, 40, [5, 6, 20])]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--splade-tiny", default=os.environ.get("SPLADEX_MODEL_TINY", os.path.join(ROOT, "models", "splade-tiny")))
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    # from_pretrained on a directory holding the vocab.txt (transformers 5 ignores a bare
    # vocab_file= argument); the ids are checked against a known sentence.
    vocab_dir = os.path.join(GENERATED, "vocab-only")
    os.makedirs(vocab_dir, exist_ok=True)
    shutil.copyfile(VOCAB, os.path.join(vocab_dir, "vocab.txt"))
    tok = BertTokenizerFast.from_pretrained(vocab_dir, do_lower_case=True)
    assert tok("Hello world")["input_ids"] == [101, 7592, 2088, 102], "tokenizer did not load the vocab"
    tok.model_max_length = 1 << 20
    manifest_path = os.path.join(OUT, "encoder.json")
    manifest = json.load(open(manifest_path)) if os.path.exists(manifest_path) else {"fixtures": {}}
    manifest["generator"] = {
        "script": "scripts/gen_encoder_fixtures.py", "date": datetime.date.today().isoformat(),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "python": sys.version.split()[0], "numpy": np.__version__,
        "formula": "torch.max(torch.log1p(torch.relu(logits)) * attention_mask.unsqueeze(-1), dim=1)",
    }
    todo = a.only or list(RANDOM_LENGTHS) + ["splade-tiny"]
    for name in todo:
        rs = np.random.RandomState(1234)
        texts = passages(400, rs)[::-1]
        if name in RANDOM_LENGTHS:
            model_dir = os.path.join(GENERATED, name)
            sha = make_random_model.make_model(name, model_dir, seed=0)
            plan = [(L, t) for L, ts in RANDOM_LENGTHS[name].items() for t in ts]
            entry = {"model": {"preset": name, "seed": 0, "sha256": sha}}
        else:
            model_dir = a.splade_tiny
            if not os.path.isdir(model_dir):
                sys.exit("%s missing: run scripts/fetch_model.sh" % model_dir)
            plan = [(256, 1), (256, 2), (256, 3), (256, 255), (256, 256), (256, 400)]
            plan += [(512, 511), (512, 512), (512, 700)]
            entry = {"model": {"dir": "models/splade-tiny (env SPLADEX_MODEL_TINY)",
                               "sha256": make_random_model.sha256_file(os.path.join(model_dir, "model.safetensors"))}}
        given, seen, max_lengths = [], [], []
        for L, t in plan:
            g, s = doc_ids_for_length(t, L, tok, rs, texts)
            given.append(g), seen.append(s), max_lengths.append(L)
        V = make_random_model.PRESETS[name]["vocab_size"] if name in RANDOM_LENGTHS else None
        roberta = name in RANDOM_LENGTHS and make_random_model.PRESETS[name]["model_type"] in make_random_model.ROBERTA_TYPES
        cls, sep, low = (0, 2, 3) if roberta else (CLS, SEP, 0)  # RoBERTa: <s> </s>, never <pad> (1)
        for L, t in RANDOM_ID_DOCS.get(name, []):
            ids = ([cls] + [int(x) for x in rs.randint(low, V, max(t - 2, 0))] + [sep])[:t]
            given.append(ids), seen.append(ids), max_lengths.append(L)
        for L, t, pads in RANDOM_PAD_DOCS.get(name, []):
            ids = [cls] + [int(x) for x in rs.randint(low, V, t - 2)] + [sep]
            for i in pads:
                ids[i] = 1  # RoBERTa's <pad> (pad_token_id 1, make_random_model.py)
            given.append(ids), seen.append(ids), max_lengths.append(L)
        if name == "splade-tiny":
            # >= 200 real passages at the default max length, tokenized as the CLI would.
            for text in passages(230, np.random.RandomState(7)):
                full = tok(text)["input_ids"]
                trunc = tok(text, truncation=True, max_length=256)["input_ids"]
                given.append(full), seen.append(trunc), max_lengths.append(256)
        model = AutoModelForMaskedLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        ref = np.zeros((len(seen), model.config.vocab_size), np.float32)
        for L in sorted(set(max_lengths)):
            idx = [i for i, m in enumerate(max_lengths) if m == L]
            ref[idx] = reference(model, [seen[i] for i in idx])
        nnz = write_fixture(name, given, seen, max_lengths, ref)
        entry.update({"file": name + ".npz", "docs": len(seen), "nnz": nnz, "vocab_size": int(ref.shape[1]),
                      "min_tokens": min(len(s) for s in seen), "max_tokens": max(len(s) for s in seen)})
        manifest["fixtures"][name] = entry
        print("%s: %d docs, %d non-zeros, model sha256 %s" % (name, len(seen), nnz, entry["model"]["sha256"]))
        del model
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
