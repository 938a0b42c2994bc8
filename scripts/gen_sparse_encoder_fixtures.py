#!/usr/bin/env python3
"""Regenerates tests/fixtures/sparse_encoder/: sentence-transformers SparseEncoder references.

A SparseEncoder directory (sentence-transformers >= 5) is an MLMTransformer (the masked-LM and
its tokenizer at the top level) plus a SpladePooling module whose config says how token weights
become the document's: pooling_strategy max or sum, activation_function relu or log1p_relu.
For each variant below this script builds the directory with make_st_dir() from a random
BertForMaskedLM (scripts/make_random_model.py preset tiny-bert-cased: V = 6000, the cased
vocabulary of tests/fixtures/tokenizer/kinds/cased; weights rebuilt by the test, never
committed), loads it with SparseEncoder(dir) and writes <variant>.npz:
    ids, ids_offsets            the token ids of each document, as SparseEncoder tokenized them
    ref_indptr, ref_indices, ref_values   encode_document(texts) (fp32, CPU), every w > 0
and manifest.json (variants, model sha256, versions). Documents: >= 30 passages of the stdlib's
docstrings (cased English, gen_tokenizer_kinds.english_corpus) of mixed lengths, one longer
than max_seq_length 256 (truncated by SparseEncoder as by spladex --max-length 256).

Needs torch + transformers + sentence-transformers (scripts/requirements-fixtures.txt); the test
(tests/py/test_sparse_encoder_parity.py) needs only numpy and tokenizers.

usage: gen_sparse_encoder_fixtures.py
"""
import datetime
import json
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import make_random_model  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "sparse_encoder")
GENERATED = os.path.join(ROOT, "tests", "fixtures", "generated")
VOCAB = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "kinds", "cased", "vocab.txt")
PRESET = "tiny-bert-cased"
MAX_SEQ_LENGTH = 256

# variant: (pooling_strategy, activation_function)
VARIANTS = {
    "st-max": ("max", "relu"),
    "st-sum": ("sum", "relu"),
    "st-sum-log1p-relu": ("sum", "log1p_relu"),
    "st-max-log1p-relu": ("max", "log1p_relu"),
}


def base_model(seed=0):
    """The random masked-LM every variant shares (rebuilt when its weights are missing)."""
    d = os.path.join(GENERATED, PRESET)
    st = os.path.join(d, "model.safetensors")
    sha = make_random_model.sha256_file(st) if os.path.exists(st) else None
    if sha is None:
        sha = make_random_model.make_model(PRESET, d, seed=seed, vocab=VOCAB)
    return d, sha


def make_st_dir(out_dir, base_dir, pooling, activation):
    """A SparseEncoder directory as sentence-transformers saves it: the masked-LM and a cased
    WordPiece tokenizer at the top level, modules.json, 1_SpladePooling/config.json."""
    import tokenizers
    os.makedirs(os.path.join(out_dir, "1_SpladePooling"), exist_ok=True)
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        shutil.copyfile(os.path.join(base_dir, name), os.path.join(out_dir, name))
    tk = tokenizers.BertWordPieceTokenizer(os.path.join(base_dir, "vocab.txt"), lowercase=False,
                                           strip_accents=None)
    tk.save(os.path.join(out_dir, "tokenizer.json"))
    files = {
        "tokenizer_config.json": {"tokenizer_class": "BertTokenizer", "do_lower_case": False,
                                  "strip_accents": None, "tokenize_chinese_chars": True,
                                  "model_max_length": 512, "unk_token": "[UNK]", "cls_token": "[CLS]",
                                  "sep_token": "[SEP]", "pad_token": "[PAD]", "mask_token": "[MASK]"},
        "special_tokens_map.json": {"unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                                    "pad_token": "[PAD]", "mask_token": "[MASK]"},
        "modules.json": [
            {"idx": 0, "name": "0", "path": "",
             "type": "sentence_transformers.sparse_encoder.modules.mlm_transformer.MLMTransformer"},
            {"idx": 1, "name": "1", "path": "1_SpladePooling",
             "type": "sentence_transformers.sparse_encoder.modules.splade_pooling.SpladePooling"}],
        "sentence_bert_config.json": {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False},
        "config_sentence_transformers.json": {"model_type": "SparseEncoder", "prompts": {"query": "", "document": ""},
                                              "default_prompt_name": None, "similarity_fn_name": "dot"},
        "1_SpladePooling/config.json": {"pooling_strategy": pooling, "activation_function": activation,
                                        "embedding_dimension": None},
    }
    for name, obj in files.items():
        with open(os.path.join(out_dir, name), "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")


def passages(n=32):
    import gen_tokenizer_kinds
    lines = [x for x in gen_tokenizer_kinds.english_corpus() if len(x.split()) >= 4]
    rs = np.random.RandomState(5)
    pick = sorted(rs.choice(len(lines), n - 1, replace=False))
    texts = [lines[i][:1500] for i in pick]
    texts.append(" ".join(lines[int(rs.randint(len(lines)))] for _ in range(40))[:4000])  # > 256 tokens
    return texts


def main():
    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SparseEncoder
    torch.manual_seed(0)
    base, sha = base_model()
    texts = passages()
    os.makedirs(OUT, exist_ok=True)
    manifest = {"generator": {"script": "scripts/gen_sparse_encoder_fixtures.py",
                              "date": datetime.date.today().isoformat(), "torch": torch.__version__,
                              "transformers": transformers.__version__,
                              "sentence_transformers": sentence_transformers.__version__},
                "model": {"preset": PRESET, "seed": 0, "sha256": sha, "vocab": os.path.relpath(VOCAB, ROOT)},
                "max_seq_length": MAX_SEQ_LENGTH, "variants": {}}
    for name, (pooling, activation) in VARIANTS.items():
        d = os.path.join(GENERATED, name)
        make_st_dir(d, base, pooling, activation)
        model = SparseEncoder(d, device="cpu")
        assert model.max_seq_length == MAX_SEQ_LENGTH
        ids = [model.tokenize([t])["input_ids"][0].tolist() for t in texts]
        with torch.no_grad():
            emb = model.encode_document(texts, batch_size=8, convert_to_tensor=True, convert_to_sparse_tensor=False)
        ref = emb.float().cpu().numpy()
        nz = [np.nonzero(r > 0)[0] for r in ref]
        indptr = np.concatenate([[0], np.cumsum([len(z) for z in nz])]).astype(np.int64)
        np.savez_compressed(os.path.join(OUT, name + ".npz"),
                            ids=np.concatenate([np.asarray(i, np.int32) for i in ids]),
                            ids_offsets=np.concatenate([[0], np.cumsum([len(i) for i in ids])]).astype(np.int64),
                            ref_indptr=indptr, ref_indices=np.concatenate(nz).astype(np.uint16),
                            ref_values=np.concatenate([r[z] for r, z in zip(ref, nz)]).astype(np.float32))
        manifest["variants"][name] = {"pooling_strategy": pooling, "activation_function": activation,
                                      "docs": len(texts), "nnz": int(indptr[-1]),
                                      "max_tokens": max(len(i) for i in ids)}
        print(f"{name}: {len(texts)} docs, {int(indptr[-1])} non-zeros, longest {max(len(i) for i in ids)} ids")
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
