#!/usr/bin/env python3
"""Generates the small model fixtures of tests/test_model.c and tests/test_tensorfile.c.

Needs torch + transformers (not needed by CI, which only reads the committed outputs).
Rerunnable and deterministic (fixed seeds). Writes tests/fixtures/models/:

  distilbert-st/      random DistilBertForMaskedLM, HF save_pretrained -> model.safetensors (F32)
  distilbert-bin/     the same weights as a torch zip pytorch_model.bin (torch.save of the state
                      dict, as transformers 4.x save_pretrained(safe_serialization=False) wrote it:
                      vocab_projector.weight shares its storage with the word embeddings)
  distilbert-f16/     the same model saved in float16 (safetensors F16)
  distilbert-bare-f16/  that F16 model with the encoder's names lacking the "distilbert." prefix
  bert-bin/           random BertForMaskedLM as pytorch_model.bin, tied decoder left out,
                      LayerNorm parameters under the legacy gamma/beta names
  bert-bf16-bin/      the same BERT in bfloat16 (torch BFloat16Storage)
  bert-untied-st/     BertForMaskedLM with tie_word_embeddings=False (own decoder weight)
  st-layout/          sentence-transformers layout: the DistilBERT under document_0_MLMTransformer/
  splade-tiny.expected.json  the same for the real models/splade-tiny (when present)
  evil/*.bin          tiny torch zips whose data.pkl must be refused (foreign globals, opcodes,
                      a non-contiguous tensor, a tensor outside its storage)

Each model dir gets expected.json: for every tensor of the model as transformers loads it
(from_pretrained in float32, then state_dict()), its name, shape and the sha256 of its float32
little-endian bytes. test_model.c requires model_load to reproduce every one bit for bit.
"""
import collections
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import sys
import zipfile
import zlib

import numpy as np
import safetensors.torch
import torch
import transformers
from transformers import (BertConfig, BertForMaskedLM, DistilBertConfig, DistilBertForMaskedLM)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")


def tensor_sha256(t):
    a = t.detach().to(torch.float32).contiguous().numpy().astype("<f4", copy=False)
    return hashlib.sha256(a.tobytes()).hexdigest()


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_st_router(d):
    """modules.json, router_config.json and document_1_SpladePooling/config.json of an asymmetric
    sentence-transformers SparseEncoder (a Router whose document route is the MLMTransformer in
    document_0_MLMTransformer/ and a max SpladePooling), as sentence-transformers >= 5 saves it."""
    pkg = "sentence_transformers.sparse_encoder.modules."
    with open(os.path.join(d, "modules.json"), "w") as f:
        json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.Router"}],
                  f, indent=1)
    with open(os.path.join(d, "router_config.json"), "w") as f:
        json.dump({"types": {"query_0_SparseStaticEmbedding": pkg + "SparseStaticEmbedding",
                             "document_0_MLMTransformer": pkg + "MLMTransformer",
                             "document_1_SpladePooling": pkg + "SpladePooling"},
                   "structure": {"query": ["query_0_SparseStaticEmbedding"],
                                 "document": ["document_0_MLMTransformer", "document_1_SpladePooling"]},
                   "parameters": {"default_route": "document", "allow_empty_key": True}}, f, indent=1)
    os.makedirs(os.path.join(d, "document_1_SpladePooling"), exist_ok=True)
    with open(os.path.join(d, "document_1_SpladePooling", "config.json"), "w") as f:
        json.dump({"pooling_strategy": "max", "activation_function": "relu", "embedding_dimension": None},
                  f, indent=1)


def write_expected(model_dir, cls, out_dir=None, out_name="expected.json"):
    m = cls.from_pretrained(model_dir, dtype=torch.float32)
    sd = m.state_dict()
    tensors = [{"name": k, "shape": list(v.shape), "sha256": tensor_sha256(v)} for k, v in sd.items()]
    weights = [f for f in ("model.safetensors", "pytorch_model.bin") if os.path.exists(os.path.join(model_dir, f))][0]
    out = {"generator": "scripts/gen_model_fixtures.py", "transformers": transformers.__version__,
           "torch": torch.__version__, "class": cls.__name__, "weights_file": weights,
           "weights_sha256": file_sha256(os.path.join(model_dir, weights)),
           "tie_word_embeddings": bool(m.config.tie_word_embeddings), "tensors": tensors}
    with open(os.path.join(out_dir or model_dir, out_name), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


def clean_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


def save_config(model, path):
    model.config.save_pretrained(path)


def torch_save_bin(state_dict, path):
    # torch.save's zip writer names the archive after the file's stem; keep that behaviour.
    torch.save(state_dict, path)
    # The writer stores a random .data/serialization_id: pin it (fixing both CRC-32 copies) so that
    # a rerun writes identical bytes.
    with zipfile.ZipFile(path) as z:
        infos = [i for i in z.infolist() if i.filename.endswith("/.data/serialization_id")]
    if not infos:
        return
    info = infos[0]
    with open(path, "r+b") as f:
        raw = bytearray(f.read())
        name_len, extra_len = struct.unpack_from("<HH", raw, info.header_offset + 26)
        start = info.header_offset + 30 + name_len + extra_len
        pinned = b"0" * info.file_size
        old_crc = struct.pack("<I", info.CRC)
        new_crc = struct.pack("<I", zlib.crc32(pinned))
        raw[start:start + info.file_size] = pinned
        # torch writes sizes and CRC in a data descriptor after the data (flag bit 3)
        end = start + info.file_size
        if raw[end:end + 4] == b"PK\x07\x08":
            assert raw[end + 4:end + 8] == old_crc
            raw[end + 4:end + 8] = new_crc
        else:
            assert raw[info.header_offset + 14:info.header_offset + 18] == old_crc
            raw[info.header_offset + 14:info.header_offset + 18] = new_crc
        # the central directory record of this entry: signature, then its CRC at +16
        pos = raw.find(b"PK\x01\x02")
        while pos >= 0:
            n_len = struct.unpack_from("<H", raw, pos + 28)[0]
            if raw[pos + 46:pos + 46 + n_len].decode() == info.filename:
                assert raw[pos + 16:pos + 20] == old_crc
                raw[pos + 16:pos + 20] = new_crc
                break
            pos = raw.find(b"PK\x01\x02", pos + 4)
        f.seek(0)
        f.write(raw)


def distilbert():
    torch.manual_seed(1234)
    cfg = DistilBertConfig(vocab_size=1000, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                           max_position_embeddings=64)
    m = DistilBertForMaskedLM(cfg)
    with torch.no_grad():  # biases and LayerNorm start at 0/1: make them random too
        for name, p in m.named_parameters():
            if name.endswith("bias") or "layer_norm" in name or "LayerNorm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    m.eval()
    return m


def bert(tied=True):
    torch.manual_seed(5678 if tied else 91011)
    cfg = BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64, type_vocab_size=2,
                     tie_word_embeddings=tied)
    m = BertForMaskedLM(cfg)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                p.add_(torch.randn_like(p) * 0.1)
        if not tied:
            m.cls.predictions.decoder.weight.copy_(torch.randn_like(m.cls.predictions.decoder.weight) * 0.05)
    m.eval()
    return m


def gen_models():
    db = distilbert()
    d = os.path.join(ROOT, "distilbert-st")
    clean_dir(d)
    db.save_pretrained(d)
    write_expected(d, DistilBertForMaskedLM)

    d = os.path.join(ROOT, "distilbert-bin")
    clean_dir(d)
    save_config(db, d)
    torch_save_bin(db.state_dict(), os.path.join(d, "pytorch_model.bin"))
    write_expected(d, DistilBertForMaskedLM)

    d = os.path.join(ROOT, "distilbert-f16")
    clean_dir(d)
    db16 = distilbert().half()
    db16.save_pretrained(d)
    write_expected(d, DistilBertForMaskedLM)

    # Bare names (no "distilbert." prefix on the encoder), F16: transformers adds the prefix on load.
    d = os.path.join(ROOT, "distilbert-bare-f16")
    clean_dir(d)
    save_config(db16, d)
    bare = {k[len("distilbert."):] if k.startswith("distilbert.") else k: v.contiguous()
            for k, v in db16.state_dict().items() if k != "vocab_projector.weight"}
    safetensors.torch.save_file(bare, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    write_expected(d, DistilBertForMaskedLM)

    d = os.path.join(ROOT, "st-layout")
    clean_dir(d)
    sub = os.path.join(d, "document_0_MLMTransformer")
    os.makedirs(sub)
    db.save_pretrained(sub)
    write_st_router(d)
    write_expected(sub, DistilBertForMaskedLM, out_dir=d)

    bt = bert(tied=True)
    d = os.path.join(ROOT, "bert-bin")
    clean_dir(d)
    save_config(bt, d)
    sd = bt.state_dict()
    legacy = type(sd)()
    for k, v in sd.items():
        if k == "cls.predictions.decoder.weight":
            continue  # tied: leave it to the loader
        k = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        legacy[k] = v
    torch_save_bin(legacy, os.path.join(d, "pytorch_model.bin"))
    write_expected(d, BertForMaskedLM)

    d = os.path.join(ROOT, "bert-bf16-bin")
    clean_dir(d)
    bt16 = bert(tied=True).to(torch.bfloat16)
    save_config(bt16, d)
    torch_save_bin(bt16.state_dict(), os.path.join(d, "pytorch_model.bin"))
    write_expected(d, BertForMaskedLM)

    d = os.path.join(ROOT, "bert-untied-st")
    clean_dir(d)
    bu = bert(tied=False)
    bu.save_pretrained(d)
    write_expected(d, BertForMaskedLM)


# ---- refused pickles: hand-written protocol-2 opcodes in a torch-style zip ----

def pk_str(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def pk_int(i):
    return b"J" + struct.pack("<i", i)


def pk_tuple(*items):
    return b"(" + b"".join(items) + b"t"


def tensor_pickle(storage_type="FloatStorage", key="0", numel=6, offset=0, size=(2, 3), stride=(3, 1),
                  rebuild=b"ctorch._utils\n_rebuild_tensor_v2\n"):
    pid = pk_tuple(pk_str("storage"), b"ctorch\n" + storage_type.encode() + b"\n", pk_str(key), pk_str("cpu"),
                   pk_int(numel))
    args = pk_tuple(pid + b"Q", pk_int(offset), pk_tuple(*[pk_int(s) for s in size]),
                    pk_tuple(*[pk_int(s) for s in stride]), b"\x89",
                    b"ccollections\nOrderedDict\n)R")
    return rebuild + args + b"R"


def state_dict_pickle(value):
    return (b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(" + pk_str("w") + value + b"u.")


def zip_put(z, name, data, compression=zipfile.ZIP_STORED):
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # fixed: reruns write equal bytes
    info.compress_type = compression
    z.writestr(info, data)


def write_torch_zip(path, pkl, storages):
    with zipfile.ZipFile(path, "w") as z:
        zip_put(z, "archive/data.pkl", pkl)
        zip_put(z, "archive/byteorder", b"little")
        for key, data in storages.items():
            zip_put(z, "archive/data/" + key, data)
        zip_put(z, "archive/version", b"3\n")


def gen_evil():
    d = os.path.join(ROOT, "evil")
    clean_dir(d)
    six = np.arange(6, dtype="<f4").tobytes()
    # os.system called through REDUCE: the classic pickle exploit.
    write_torch_zip(os.path.join(d, "global-os-system.bin"),
                    b"\x80\x02cos\nsystem\nq\x00" + pk_str("echo pwned") + b"\x85Rq\x01.", {})
    # builtins.eval inside an otherwise normal state dict value.
    write_torch_zip(os.path.join(d, "global-builtins-eval.bin"),
                    state_dict_pickle(b"cbuiltins\neval\n" + pk_str("1+1") + b"\x85R"), {"0": six})
    # A real pickle of a foreign object, made by python's pickle (protocol 2).
    write_torch_zip(os.path.join(d, "global-pickled-set.bin"), pickle.dumps({"w": {1, 2}}, protocol=2), {})
    # STACK_GLOBAL (protocol 4) naming subprocess.Popen.
    write_torch_zip(os.path.join(d, "stack-global-popen.bin"),
                    b"\x80\x04\x8c\x0asubprocess\x8c\x05Popen\x93." , {})
    # INST: an opcode a state dict never uses.
    write_torch_zip(os.path.join(d, "opcode-inst.bin"), b"\x80\x02(ios\nsystem\n.", {})
    # A valid tensor whose strides are not contiguous.
    write_torch_zip(os.path.join(d, "noncontiguous.bin"),
                    state_dict_pickle(tensor_pickle(stride=(1, 2))), {"0": six})
    # A tensor reaching past the end of its storage (offset 4 + 6 elements > 6).
    write_torch_zip(os.path.join(d, "outside-storage.bin"),
                    state_dict_pickle(tensor_pickle(offset=4)), {"0": six})
    # A storage whose numel claims more than its zip entry holds.
    write_torch_zip(os.path.join(d, "short-storage.bin"),
                    state_dict_pickle(tensor_pickle(numel=600, size=(20, 30), stride=(30, 1))), {"0": six})
    # A storage key with no zip entry.
    write_torch_zip(os.path.join(d, "missing-storage.bin"),
                    state_dict_pickle(tensor_pickle(key="7")), {"0": six})
    # A good one of the same shape (the tests check that it loads).
    write_torch_zip(os.path.join(d, "good.bin"), state_dict_pickle(tensor_pickle()), {"0": six})
    # A small real torch.save of what a state dict holds (shared storage, a view at an offset, F16,
    # BF16, a scalar, an int64 buffer, _metadata): the byte-flip sweep runs over its data.pkl.
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    sd = collections.OrderedDict()
    sd["a"] = x
    sd["a_again"] = x
    sd["row"] = x[1]
    sd["h"] = torch.tensor([1.5, -2.0, 65504.0], dtype=torch.float16)
    sd["b"] = torch.tensor([1.0, -0.5], dtype=torch.bfloat16)
    sd["scalar"] = torch.tensor(3.25)
    sd["ids"] = torch.arange(3, dtype=torch.int64)
    sd._metadata = collections.OrderedDict([("", {"version": 1})])
    torch_save_bin(sd, os.path.join(d, "torch-small.bin"))
    # A deflated archive (zipfile ZIP_DEFLATED) of the good pickle: the reader inflates it.
    with zipfile.ZipFile(os.path.join(d, "good-deflated.bin"), "w") as z:
        zip_put(z, "archive/data.pkl", state_dict_pickle(tensor_pickle()), zipfile.ZIP_DEFLATED)
        zip_put(z, "archive/data/0", six, zipfile.ZIP_DEFLATED)
        zip_put(z, "archive/version", b"3\n", zipfile.ZIP_DEFLATED)


def gen_splade_tiny():
    """Expected tensors of the real model at models/splade-tiny (scripts/fetch_model.sh puts it there)."""
    model_dir = os.path.join(ROOT, "..", "..", "..", "models", "splade-tiny")
    if not os.path.exists(os.path.join(model_dir, "config.json")):
        print(f"note: {model_dir} absent, splade-tiny.expected.json not regenerated")
        return
    write_expected(model_dir, BertForMaskedLM, out_dir=ROOT, out_name="splade-tiny.expected.json")


def main():
    os.makedirs(ROOT, exist_ok=True)
    gen_models()
    gen_splade_tiny()
    gen_evil()
    total = 0
    for base, _, files in os.walk(ROOT):
        total += sum(os.path.getsize(os.path.join(base, f)) for f in files)
    print(f"wrote {ROOT}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    sys.exit(main())
