"""Parity of `spladex encode` (CPU) with sentence-transformers' SparseEncoder.encode_document, and
the modules spladex refuses.

tests/fixtures/sparse_encoder/ holds, per SpladePooling variant (max / sum pooling, relu /
log1p_relu activation), the ids and the reference vectors that scripts/gen_sparse_encoder_fixtures.py
computed with sentence-transformers on a random cased BertForMaskedLM (V = 6000). This test
rebuilds the same directory (make_random_model.py + gen_sparse_encoder_fixtures.make_st_dir;
numpy and tokenizers only) and requires, for every document, max |w_spladex - w_ref| <= 1e-4 and
the same set of terms with w > 1e-3. A Router layout (asymmetric model: the document route is
encoded) must give the same vectors; modules spladex does not implement are refused by name.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "sparse_encoder")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import gen_sparse_encoder_fixtures as gen  # noqa: E402
import make_random_model  # noqa: E402

TOL = 1e-4
SET_CUT = 1e-3
MANIFEST = json.load(open(os.path.join(FIXTURES, "manifest.json")))
BIN = os.environ.get("SPLADEX_BIN", os.path.join(ROOT, "build", "spladex"))


def base_dir():
    d, sha = gen.base_model(seed=MANIFEST["model"]["seed"])
    if sha != MANIFEST["model"]["sha256"]:  # stale weights from another version: rebuild
        sha = gen.make_random_model.make_model(gen.PRESET, d, seed=MANIFEST["model"]["seed"], vocab=gen.VOCAB)
    assert sha == MANIFEST["model"]["sha256"], "make_random_model.py rebuilt different weights"
    return d


def variant_dir(tmp_path, name):
    pooling, activation = gen.VARIANTS[name]
    d = os.path.join(str(tmp_path), name)
    gen.make_st_dir(d, base_dir(), pooling, activation)
    return d


def encode_ids(model, docs, extra=()):
    cmd = [BIN, "encode", "--model", model, "--ids", "--json", "--max-length", str(MANIFEST["max_seq_length"]),
           "--threads", "2"] + list(extra)
    text = "".join(" ".join(str(int(x)) for x in d) + "\n" for d in docs)
    p = subprocess.run(cmd, input=text, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def check_variant(model, name, extra=(), vocab_dir=None):
    z = np.load(os.path.join(FIXTURES, name + ".npz"))
    off = z["ids_offsets"]
    docs = [z["ids"][off[i]:off[i + 1]] for i in range(len(off) - 1)]
    with open(os.path.join(vocab_dir or model, "vocab.txt"), encoding="utf-8") as f:
        term_id = {t.rstrip("\n"): i for i, t in enumerate(f)}
    V = len(term_id)
    out = encode_ids(model, docs, extra)
    p, ind, val = z["ref_indptr"], z["ref_indices"].astype(np.int64), z["ref_values"]
    worst = 0.0
    for i, obj in enumerate(out):
        w = np.zeros(V, np.float32)
        for term, value in obj["vector"].items():
            w[term_id[term]] = value
        ref = np.zeros(V, np.float32)
        ref[ind[p[i]:p[i + 1]]] = val[p[i]:p[i + 1]]
        err = float(np.abs(w - ref).max())
        worst = max(worst, err)
        assert err <= TOL, f"{name} doc {i}: max |w - w_ref| = {err:.3g}"
        a, b = set(np.nonzero(w > SET_CUT)[0]), set(np.nonzero(ref > SET_CUT)[0])
        assert a == b, f"{name} doc {i}: spladex only {sorted(a - b)[:10]}, reference only {sorted(b - a)[:10]}"
    print(f"{name}: {len(out)} docs, worst max |dw| = {worst:.3g}")
    return out


@pytest.mark.parametrize("name", sorted(gen.VARIANTS))
def test_sparse_encoder_parity(name):
    # in tests/fixtures/generated/<name>, where test_encoder_gpu also finds st-sum (CUDA refuses it)
    assert MANIFEST["variants"][name]["docs"] >= 30
    check_variant(variant_dir(gen.GENERATED, name), name)


def test_sum_is_not_max(tmp_path):
    """The variants differ, so each test above checks its own pooling."""
    a = check_variant(variant_dir(tmp_path, "st-max"), "st-max")
    b = check_variant(variant_dir(tmp_path, "st-sum"), "st-sum")
    assert any(x["vector"] != y["vector"] for x, y in zip(a, b))


def make_router(tmp_path, document_route):
    """An asymmetric SparseEncoder: a Router at the top, the masked-LM in document_0_MLMTransformer."""
    src = variant_dir(tmp_path, "st-sum")
    d = os.path.join(str(tmp_path), "router")
    mlm = os.path.join(d, "document_0_MLMTransformer")
    shutil.copytree(src, mlm, ignore=shutil.ignore_patterns("1_SpladePooling", "modules.json"))
    shutil.copytree(os.path.join(src, "1_SpladePooling"), os.path.join(d, "document_1_SpladePooling"))
    os.makedirs(os.path.join(d, "query_0_SparseStaticEmbedding"))
    pkg = "sentence_transformers.sparse_encoder.modules."
    types = {"query_0_SparseStaticEmbedding": pkg + "SparseStaticEmbedding",
             "document_0_MLMTransformer": pkg + "MLMTransformer",
             "document_1_SpladePooling": pkg + "SpladePooling"}
    with open(os.path.join(d, "router_config.json"), "w") as f:
        json.dump({"types": types, "structure": {"query": ["query_0_SparseStaticEmbedding"],
                                                 "document": document_route},
                   "parameters": {"default_route": "document", "allow_empty_key": True}}, f)
    with open(os.path.join(d, "modules.json"), "w") as f:
        json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.Router"}], f)
    return d


def test_router_document_route(tmp_path):
    d = make_router(tmp_path, ["document_0_MLMTransformer", "document_1_SpladePooling"])
    check_variant(d, "st-sum", vocab_dir=os.path.join(d, "document_0_MLMTransformer"))


def refused(model):
    p = subprocess.run([BIN, "encode", "--model", model, "--json", "x"], capture_output=True, text=True)
    assert p.returncode != 0
    return p.stderr


def test_refused_modules(tmp_path):
    # a Router whose document route is the inference-free static embedding
    d = make_router(tmp_path, ["query_0_SparseStaticEmbedding"])
    msg = refused(d)
    assert "SparseStaticEmbedding" in msg and "router_config.json" in msg, msg
    # a module after the pooling, an unknown pooling, a vocabulary-size mismatch
    m = variant_dir(tmp_path, "st-max")
    modules = json.load(open(os.path.join(m, "modules.json")))
    for change, needle in [
        (lambda: json.dump(modules + [{"idx": 2, "name": "2", "path": "2_Normalize",
                                       "type": "sentence_transformers.base.modules.Normalize"}],
                           open(os.path.join(m, "modules.json"), "w")), "Normalize"),
        (lambda: json.dump(modules[:1], open(os.path.join(m, "modules.json"), "w")), "SpladePooling"),
        (lambda: json.dump({"pooling_strategy": "mean"}, open(os.path.join(m, "1_SpladePooling", "config.json"), "w")),
         "mean"),
        (lambda: json.dump({"pooling_strategy": "max", "embedding_dimension": 30522},
                           open(os.path.join(m, "1_SpladePooling", "config.json"), "w")), "embedding_dimension"),
    ]:
        gen.make_st_dir(m, base_dir(), "max", "relu")
        change()
        msg = refused(m)
        assert needle in msg, (needle, msg)


@pytest.mark.parametrize("config,needle", [
    ({"model_type": "modernbert", "architectures": ["ModernBertForMaskedLM"]}, "modernbert"),
    ({"model_type": "new", "architectures": ["NewForMaskedLM"]}, "NewForMaskedLM"),
    ({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}, "LlamaForCausalLM"),
    ({"model_type": "camembert", "architectures": ["CamembertForMaskedLM"]}, "camembert"),
    ({"model_type": "bert", "architectures": ["BertModel"]}, "BertModel"),
])
def test_other_architectures_refused(tmp_path, config, needle):
    d = os.path.join(str(tmp_path), "m")
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(dict(config, vocab_size=100), f)
    msg = refused(d)
    assert needle in msg and "BertForMaskedLM" in msg, msg  # the architecture and what is supported


def test_tokenizer_family_refused(tmp_path):
    """XLMRobertaForMaskedLM runs with a byte-level BPE tokenizer.json (tests/py/test_encoder_parity.py)
    but its usual SentencePiece Unigram tokenizer is refused naming it; a RoBERTa model whose
    directory holds a WordPiece vocab.txt (read first) and a BERT model with a byte-level BPE
    tokenizer.json are refused naming both families, never encoded with the other's ids."""
    xlm = os.path.join(str(tmp_path), "xlm")
    make_random_model.make_model("tiny-xlm-roberta", xlm)
    unigram = {"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": None,
               "post_processor": None, "decoder": None,
               "model": {"type": "Unigram", "unk_id": 3, "vocab": [["<s>", 0.0], ["<pad>", 0.0], ["</s>", 0.0],
                                                                  ["<unk>", 0.0], ["\u2581a", -1.0]]}}
    with open(os.path.join(xlm, "tokenizer.json"), "w") as f:
        json.dump(unigram, f)
    msg = refused(xlm)
    assert "Unigram" in msg, msg
    rob = os.path.join(str(tmp_path), "rob")
    make_random_model.make_model("tiny-roberta", rob)
    os.remove(os.path.join(rob, "tokenizer.json"))  # only a vocab.txt (with one, tok_open refuses it)
    with open(make_random_model.DEFAULT_VOCAB, encoding="utf-8") as f:  # BERT's, padded to V
        pieces = f.read().split("\n")[:-1]
    with open(os.path.join(rob, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(p + "\n" for p in pieces + ["[x%d]" % i for i in range(len(pieces), 50265)]))
    msg = refused(rob)
    assert "RoBERTa" in msg and "WordPiece" in msg, msg
    bert = os.path.join(str(tmp_path), "bert")
    make_random_model.make_model("tiny-bert", bert)
    os.remove(os.path.join(bert, "vocab.txt"))
    make_random_model.write_bpe_tokenizer(os.path.join(bert, "tokenizer.json"), 30522)
    msg = refused(bert)
    assert "BERT" in msg and "byte-level BPE" in msg, msg
