#!/usr/bin/env python3
"""Writes a random SPLADE masked-LM model directory (config.json, model.safetensors, vocab.txt or,
RoBERTa, tokenizer.json).

numpy only (no torch): the parity tests rebuild these models on a CI machine that has no torch,
so the weights come from numpy.random.RandomState(seed) (the legacy generator, whose streams are
frozen across numpy versions) and a hand-written safetensors writer (sorted names, fixed header
padding), and the same preset + seed always gives a byte-identical model.safetensors.
The fixture records that file's sha256 so a test can prove it rebuilt the weights the
reference vectors were computed from.

Initialization (like HF's, but with non-trivial LayerNorms and biases so every parameter
matters): matrices N(0, 0.02); LayerNorm gammas 1 + 0.1 N(0,1), betas 0.1 N(0,1); biases 0.02 N(0,1).

Presets:
  tiny-distilbert   DistilBertForMaskedLM, vocab 30522, dim 32, 2 layers, 4 heads, hidden_dim 64;
                    decoder tied (vocab_projector.weight omitted from the checkpoint)
  efficient-splade  DistilBertForMaskedLM with the exact config of
                    naver/efficient-splade-VI-BT-large-doc (6 layers, 768, 12 heads, 3072); tied
  tiny-bert         BertForMaskedLM, vocab 30522, hidden 32, 2 layers, 4 heads, intermediate 64,
                    type_vocab 2, layer_norm_eps 1e-5 (not the default, so the config value is
                    tested); decoder NOT tied: cls.predictions.decoder.weight is its own tensor and
                    config.json says tie_word_embeddings false
  tiny-bert-v105879 BertForMaskedLM like tiny-bert but tied, with a multilingual-BERT-sized
                    vocabulary of 105,879 pieces (not a multiple of any decoder tile, above 65,535):
                    vocab.txt is bert-base-uncased's 30,522 pieces then "[multi_N]" pieces, made
                    here; the decoder bias is shifted by -0.42 so a document keeps a few hundred
                    terms (the reference vectors stay small)
  tiny-bert-cased   the same with V = 6000, for the cased vocabulary of
                    tests/fixtures/tokenizer/kinds/cased (the SparseEncoder fixtures)
  tiny-roberta      RobertaForMaskedLM, V = 50265 (roberta-base's), hidden 32, 2 layers, 514 positions
                    (padding_idx 1: positions start at row 2), type vocabulary 1, tied, bias shifted;
                    a made-up byte-level BPE tokenizer.json of V tokens instead of vocab.txt
  tiny-xlm-roberta  the same as XLMRobertaForMaskedLM (model_type xlm-roberta)

usage: make_random_model.py PRESET OUT_DIR [--seed N] [--vocab PATH]
"""
import argparse
import hashlib
import json
import os
import shutil
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_VOCAB = os.path.join(HERE, "..", "tests", "fixtures", "vocab", "bert-base-uncased-vocab.txt")

PRESETS = {
    "tiny-distilbert": {
        "architectures": ["DistilBertForMaskedLM"], "model_type": "distilbert",
        "vocab_size": 30522, "max_position_embeddings": 512, "sinusoidal_pos_embds": False,
        "n_layers": 2, "n_heads": 4, "dim": 32, "hidden_dim": 64, "dropout": 0.1,
        "attention_dropout": 0.1, "activation": "gelu", "initializer_range": 0.02,
        "qa_dropout": 0.1, "seq_classif_dropout": 0.2, "pad_token_id": 0, "tie_weights_": True,
        "tie_word_embeddings": True,
    },
    # config.json of naver/efficient-splade-VI-BT-large-doc (transformers_version dropped).
    "efficient-splade": {
        "_name_or_path": "random-efficient-splade-VI-BT-large-doc",
        "activation": "gelu", "architectures": ["DistilBertForMaskedLM"],
        "attention_dropout": 0.1, "dim": 768, "dropout": 0.1, "hidden_dim": 3072,
        "initializer_range": 0.02, "max_position_embeddings": 512, "model_type": "distilbert",
        "n_heads": 12, "n_layers": 6, "pad_token_id": 0, "qa_dropout": 0.1,
        "seq_classif_dropout": 0.2, "sinusoidal_pos_embds": False, "tie_weights_": True,
        "torch_dtype": "float32", "vocab_size": 30522,
    },
    "tiny-bert": {
        "architectures": ["BertForMaskedLM"], "model_type": "bert",
        "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 64, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512,
        "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-5,
        "pad_token_id": 0, "position_embedding_type": "absolute", "tie_word_embeddings": False,
    },
    "tiny-bert-v105879": {
        "architectures": ["BertForMaskedLM"], "model_type": "bert",
        "vocab_size": 105879, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 64, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512,
        "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
        "pad_token_id": 0, "position_embedding_type": "absolute", "tie_word_embeddings": True,
    },
}

PRESETS["tiny-bert-cased"] = dict(PRESETS["tiny-bert-v105879"], vocab_size=6000)
PRESETS["tiny-roberta"] = dict(PRESETS["tiny-bert-v105879"], architectures=["RobertaForMaskedLM"],
                               model_type="roberta", vocab_size=50265, max_position_embeddings=514,
                               type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                               layer_norm_eps=1e-5)
# XLMRobertaForMaskedLM is RobertaForMaskedLM's code under another model_type (the weights under
# "roberta."); spladex runs it when its tokenizer.json is byte-level BPE.
PRESETS["tiny-xlm-roberta"] = dict(PRESETS["tiny-roberta"], architectures=["XLMRobertaForMaskedLM"],
                                   model_type="xlm-roberta")
ROBERTA_TYPES = ("roberta", "xlm-roberta")

# Added to the decoder bias of a preset (sparser vectors: smaller reference fixtures).
DECODER_BIAS_SHIFT = {"tiny-bert-v105879": -0.42, "tiny-bert-cased": -0.42, "tiny-roberta": -0.42,
                      "tiny-xlm-roberta": -0.42}


def tensor_plan(cfg):
    """[(name, shape, kind)] in generation order; kind: matrix | gamma | beta | bias."""
    plan = []
    if cfg["model_type"] == "distilbert":
        H, F, L, V, P = cfg["dim"], cfg["hidden_dim"], cfg["n_layers"], cfg["vocab_size"], cfg["max_position_embeddings"]
        e = "distilbert.embeddings."
        plan += [(e + "word_embeddings.weight", (V, H), "matrix"),
                 (e + "position_embeddings.weight", (P, H), "matrix"),
                 (e + "LayerNorm.weight", (H,), "gamma"), (e + "LayerNorm.bias", (H,), "beta")]
        for i in range(L):
            p = "distilbert.transformer.layer.%d." % i
            for lin in ("q_lin", "k_lin", "v_lin", "out_lin"):
                plan += [(p + "attention.%s.weight" % lin, (H, H), "matrix"),
                         (p + "attention.%s.bias" % lin, (H,), "bias")]
            plan += [(p + "sa_layer_norm.weight", (H,), "gamma"), (p + "sa_layer_norm.bias", (H,), "beta"),
                     (p + "ffn.lin1.weight", (F, H), "matrix"), (p + "ffn.lin1.bias", (F,), "bias"),
                     (p + "ffn.lin2.weight", (H, F), "matrix"), (p + "ffn.lin2.bias", (H,), "bias"),
                     (p + "output_layer_norm.weight", (H,), "gamma"),
                     (p + "output_layer_norm.bias", (H,), "beta")]
        plan += [("vocab_transform.weight", (H, H), "matrix"), ("vocab_transform.bias", (H,), "bias"),
                 ("vocab_layer_norm.weight", (H,), "gamma"), ("vocab_layer_norm.bias", (H,), "beta"),
                 ("vocab_projector.bias", (V,), "bias")]
        if not cfg.get("tie_word_embeddings", True):
            plan.append(("vocab_projector.weight", (V, H), "matrix"))
    else:
        H, F, L, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
        P, Y = cfg["max_position_embeddings"], cfg["type_vocab_size"]
        pre = "roberta." if cfg["model_type"] in ROBERTA_TYPES else "bert."
        e = pre + "embeddings."
        plan += [(e + "word_embeddings.weight", (V, H), "matrix"),
                 (e + "position_embeddings.weight", (P, H), "matrix"),
                 (e + "token_type_embeddings.weight", (Y, H), "matrix"),
                 (e + "LayerNorm.weight", (H,), "gamma"), (e + "LayerNorm.bias", (H,), "beta")]
        for i in range(L):
            p = pre + "encoder.layer.%d." % i
            for lin in ("self.query", "self.key", "self.value", "output.dense"):
                plan += [(p + "attention.%s.weight" % lin, (H, H), "matrix"),
                         (p + "attention.%s.bias" % lin, (H,), "bias")]
            plan += [(p + "attention.output.LayerNorm.weight", (H,), "gamma"),
                     (p + "attention.output.LayerNorm.bias", (H,), "beta"),
                     (p + "intermediate.dense.weight", (F, H), "matrix"),
                     (p + "intermediate.dense.bias", (F,), "bias"),
                     (p + "output.dense.weight", (H, F), "matrix"), (p + "output.dense.bias", (H,), "bias"),
                     (p + "output.LayerNorm.weight", (H,), "gamma"), (p + "output.LayerNorm.bias", (H,), "beta")]
        if pre == "roberta.":
            return plan + [("lm_head.dense.weight", (H, H), "matrix"), ("lm_head.dense.bias", (H,), "bias"),
                           ("lm_head.layer_norm.weight", (H,), "gamma"), ("lm_head.layer_norm.bias", (H,), "beta"),
                           ("lm_head.bias", (V,), "bias")]
        plan += [("cls.predictions.transform.dense.weight", (H, H), "matrix"),
                 ("cls.predictions.transform.dense.bias", (H,), "bias"),
                 ("cls.predictions.transform.LayerNorm.weight", (H,), "gamma"),
                 ("cls.predictions.transform.LayerNorm.bias", (H,), "beta"),
                 ("cls.predictions.bias", (V,), "bias")]
        if not cfg.get("tie_word_embeddings", True):
            plan.append(("cls.predictions.decoder.weight", (V, H), "matrix"))
    return plan


def make_weights(cfg, seed, bias_shift=0.0):
    rs = np.random.RandomState(seed)
    out = {}
    for name, shape, kind in tensor_plan(cfg):
        z = rs.standard_normal(size=shape)  # float64, frozen stream
        if kind == "matrix":
            a = 0.02 * z
        elif kind == "gamma":
            a = 1.0 + 0.1 * z
        elif kind == "beta":
            a = 0.1 * z
        else:
            a = 0.02 * z
        if name in ("cls.predictions.bias", "vocab_projector.bias", "lm_head.bias"):
            a = a + bias_shift
        out[name] = np.ascontiguousarray(a.astype("<f4"))
    if "cls.predictions.bias" in out:
        # HF BERT checkpoints carry the decoder bias twice (it is one parameter in the module).
        out["cls.predictions.decoder.bias"] = out["cls.predictions.bias"].copy()
    return out


def write_safetensors(path, tensors):
    """Minimal deterministic safetensors writer: F32 only, names sorted, header padded to 8."""
    header, offset, names = {}, 0, sorted(tensors)
    for n in names:
        nbytes = tensors[n].nbytes
        header[n] = {"dtype": "F32", "shape": list(tensors[n].shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for n in names:
            f.write(tensors[n].tobytes())


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bytes_to_unicode():
    """GPT-2's byte -> printable character table (tokenizers' ByteLevel)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_bpe_tokenizer(path, V):
    """A RoBERTa-style byte-level BPE tokenizer.json of exactly V tokens, made up: <s> <pad> </s>
    <unk> (0-3), the 256 byte characters, two-character merges of them in a fixed order, <mask>
    last (as roberta-base's 50,264). Only its strings and ids matter to the id-based fixtures;
    HF tokenizers loads it as it is."""
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    chars = bytes_to_unicode()
    vocab = {t: i for i, t in enumerate(specials + chars)}
    merges = []
    for a in chars:
        for b in chars:
            if len(vocab) == V - 1:
                break
            merges.append([a, b])
            vocab[a + b] = len(vocab)
    vocab["<mask>"] = V - 1
    assert len(vocab) == V
    added = [dict(id=vocab[t], content=t, single_word=False, lstrip=t == "<mask>", rstrip=False,
                  normalized=False, special=True) for t in specials + ["<mask>"]]
    tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
          "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
          "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0],
                             "trim_offsets": True, "add_prefix_space": False},
          "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
          "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                    "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                    "vocab": vocab, "merges": merges}}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)


def make_model(preset, out_dir, seed=0, vocab=DEFAULT_VOCAB):
    """Writes the model directory; returns the sha256 of model.safetensors."""
    cfg = PRESETS[preset]
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    weights = make_weights(cfg, seed, DECODER_BIAS_SHIFT.get(preset, 0.0))
    st = os.path.join(out_dir, "model.safetensors")
    write_safetensors(st + ".tmp", weights)
    os.replace(st + ".tmp", st)
    V = cfg["vocab_size"]
    if cfg["model_type"] in ROBERTA_TYPES:
        write_bpe_tokenizer(os.path.join(out_dir, "tokenizer.json"), V)
        if os.path.exists(os.path.join(out_dir, "vocab.txt")):  # an older layout's: read first
            os.remove(os.path.join(out_dir, "vocab.txt"))
        return sha256_file(st)
    with open(vocab, encoding="utf-8") as f:
        pieces = f.read().split("\n")[:-1]
    if V == len(pieces):
        shutil.copyfile(vocab, os.path.join(out_dir, "vocab.txt"))
    else:  # cut, or padded with made-up pieces, to the model's vocabulary size
        pieces = (pieces + ["[multi_%d]" % i for i in range(len(pieces), V)])[:V]
        with open(os.path.join(out_dir, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(pieces) + "\n")
    return sha256_file(st)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("preset", choices=sorted(PRESETS))
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab", default=DEFAULT_VOCAB)
    a = ap.parse_args()
    print(make_model(a.preset, a.out_dir, a.seed, a.vocab))
    return 0


if __name__ == "__main__":
    sys.exit(main())
