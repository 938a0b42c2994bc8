"""`spladex export jsonl|ciff|csr` against readers we did not write (DESIGN.md section 7).

Shard directories are written directly with h5py (shardgen.py), so these tests need neither a
model nor the expand job. CIFF is read with the PyPI package ciff-toolkit (protobuf classes
compiled from the published CommonIndexFileFormat.proto); JSONL with Python's json; CSR with
numpy exactly as big-ann-benchmarks' benchmark/dataset_io.py read_sparse_matrix does. The
reference vectors are the shards' float32 weights quantized as naver/splade does
(np.rint(w * scale)), or the weights themselves for csr and jsonl --weights float.
"""
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from ciff_toolkit.ciff_pb2 import DocRecord, Header, PostingsList
from ciff_toolkit.read import CiffReader
from ciff_toolkit.write import CiffWriter

sys.path.insert(0, os.path.dirname(__file__))
import shardgen  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("SPLADEX_BIN", os.path.join(ROOT, "build", "spladex"))

pytestmark = pytest.mark.skipif(not os.path.exists(BIN), reason="spladex binary not built")

# A vocabulary with what JSON and byte order must get right: quotes, backslashes, control
# characters, ## pieces, upper case (sorts before lower case in byte order), non-ASCII.
SPECIAL_TERMS = ['"quoted"', "back\\slash", "tab\there", "new\nline", "ctl\x01\x1f", "##ing",
                 "##s", "Zebra", "zebra", "café", "cafe", "日本", "[unused993]", "[CLS]", "a",
                 "ab", "a b", "\u2028sep", "emoji😀"]


def make_vocab(size):
    vocab = list(SPECIAL_TERMS)
    i = 0
    while len(vocab) < size:
        vocab.append("w%03d" % i if i % 3 else "##p%d" % i)
        i += 1
    return vocab


def make_ids(n):
    ids = ["doc-%d" % d for d in range(n)]
    ids[1] = 'id "with" quotes'
    ids[2] = "back\\slash\ttab"
    ids[3] = "ünïcode 文書"
    ids[4] = "ctl\x02char\nnewline"
    return ids


def run(*args, check=True):
    p = subprocess.run([BIN, "export", *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError("spladex export %s failed (%d):\n%s" % (args, p.returncode, p.stderr))
    return p


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """237 docs over 300 terms in shards of 50 (the last one short), with empty documents
    (no terms, or only weights that round to 0) and exact rounding ties."""
    rng = np.random.default_rng(6)
    vocab = make_vocab(300)
    m = shardgen.random_matrix(rng, 237, len(vocab), 12, empty_every=40).tolil()
    m[5, :] = 0                       # a doc whose every weight rounds to 0
    m[5, 7] = 0.004
    m[5, 9] = 0.0049
    for j, w in enumerate([0.125, 0.375, 0.625, 0.875, 0.005, 0.015]):
        m[6, 20 + j] = w              # ties: 12.5 -> 12, 37.5 -> 38, 62.5 -> 62, 87.5 -> 88
    m = sp.csr_matrix(m, dtype=np.float32)
    m.eliminate_zeros()
    ids = make_ids(m.shape[0])
    d = tmp_path_factory.mktemp("export")
    out = str(d / "shards")
    shardgen.write_dir(out, ids, m, vocab, shard_size=50)
    return {"dir": out, "tmp": d, "m": m, "ids": ids, "vocab": vocab,
            "expect": shardgen.quantized_vectors(m, vocab)}


def read_ciff(path):
    """Header, postings lists and doc records, read by ciff-toolkit."""
    with CiffReader(path) as r:
        header = r.read_header()
        lists = list(r.read_postings_lists())
        docs = list(r.read_documents())
        assert r.fp.read(1) == b"", "bytes after the last DocRecord"
    return header, lists, docs


def vectors_from_ciff(lists, n_docs):
    vectors = [dict() for _ in range(n_docs)]
    for pl in lists:
        docid = 0
        for i, p in enumerate(pl.postings):
            docid = p.docid if i == 0 else docid + p.docid
            assert pl.term not in vectors[docid]
            vectors[docid][pl.term] = p.tf
    return vectors


def test_quantization_reference_rounds_half_to_even():
    # The reference itself: naver/splade's np.rint on float32 products.
    assert list(shardgen.quantize([0.125, 0.375, 0.625, 0.875], 100)) == [12, 38, 62, 88]


def test_jsonl_equals_quantized_shards(corpus):
    out = str(corpus["tmp"] / "docs.jsonl")
    p = run("jsonl", "--input", corpus["dir"], "--output", out)
    lines = open(out, encoding="utf-8").read().split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    assert len(lines) == len(corpus["ids"])
    vocab_order = {t: i for i, t in enumerate(corpus["vocab"])}
    n_empty = 0
    for d, line in enumerate(lines):
        doc = json.loads(line)
        assert list(doc) == ["id", "contents", "vector"]
        assert doc["id"] == corpus["ids"][d]
        assert doc["contents"] == ""
        want = corpus["expect"][d]
        if not want:
            assert doc["vector"] == {"[unused993]": 1}
            n_empty += 1
            continue
        assert doc["vector"] == want
        assert all(type(v) is int and v >= 1 for v in doc["vector"].values())
        keys = list(doc["vector"])
        assert keys == sorted(keys, key=vocab_order.get)  # ascending vocab id
    assert n_empty >= 6  # docs 0, 40, 80, ... and the all-rounding-to-0 doc 5
    assert "had no weight >= 1" in p.stderr
    tie = {corpus["vocab"][20 + j]: w for j, w in enumerate([12, 38, 62, 88, 0, 2])}
    got = json.loads(lines[6])["vector"]
    for term, w in tie.items():
        assert got.get(term, 0) == w


def test_jsonl_escapes_like_json_dumps(corpus):
    # Same bytes as Python's json.dumps(ensure_ascii=False) of the same objects.
    out = str(corpus["tmp"] / "escape.jsonl")
    run("jsonl", "--input", corpus["dir"], "--output", out)
    with open(out, encoding="utf-8") as f:
        for d, line in enumerate(f):
            doc = json.loads(line)
            assert line == json.dumps(doc, ensure_ascii=False) + "\n"
            if d > 10:
                break


def test_jsonl_gz_is_the_same_bytes(corpus):
    plain, gz = str(corpus["tmp"] / "p.jsonl"), str(corpus["tmp"] / "p.jsonl.gz")
    run("jsonl", "--input", corpus["dir"], "--output", plain)
    run("jsonl", "--input", corpus["dir"], "--output", gz)
    with gzip.open(gz, "rb") as f:
        assert f.read() == open(plain, "rb").read()


def test_ciff_read_by_ciff_toolkit_equals_quantized_shards(corpus):
    out = str(corpus["tmp"] / "index.ciff")
    run("ciff", "--input", corpus["dir"], "--output", out, "--description", "test export")
    header, lists, docs = read_ciff(out)
    n = len(corpus["ids"])
    expect = corpus["expect"]
    terms_used = sorted({t for v in expect for t in v}, key=lambda t: t.encode("utf-8"))
    doclengths = [sum(v.values()) for v in expect]

    assert header.version == 1
    assert header.num_postings_lists == len(terms_used) == header.total_postings_lists
    assert header.num_docs == n == header.total_docs
    assert header.total_terms_in_collection == sum(doclengths)
    assert header.average_doclength == sum(doclengths) / n
    assert header.description == "test export"

    assert [pl.term for pl in lists] == terms_used  # byte order, df > 0 only, no duplicates
    for pl in lists:
        assert pl.df == len(pl.postings) > 0
        assert pl.cf == sum(p.tf for p in pl.postings)
        assert all(p.docid > 0 for p in pl.postings[1:])  # d-gaps: strictly increasing
    assert vectors_from_ciff(lists, n) == expect

    assert [r.docid for r in docs] == list(range(n))
    assert [r.collection_docid for r in docs] == corpus["ids"]
    assert [r.doclength for r in docs] == doclengths
    assert doclengths[5] == 0 and doclengths[0] == 0  # empty docs keep their DocRecord


def test_ciff_bytes_are_what_protobuf_serializes(corpus):
    # Parse with protobuf, write back with protobuf (ciff-toolkit's writer): identical bytes,
    # so our hand-written encoding follows protobuf's field rules exactly.
    ours = str(corpus["tmp"] / "ours.ciff")
    theirs = str(corpus["tmp"] / "theirs.ciff")
    run("ciff", "--input", corpus["dir"], "--output", ours)
    header, lists, docs = read_ciff(ours)
    with CiffWriter(theirs) as w:
        w.write_header(header)
        w.write_postings_lists(lists)
        w.write_documents(docs)
    assert open(ours, "rb").read() == open(theirs, "rb").read()
    assert isinstance(header, Header) and isinstance(lists[0], PostingsList)
    assert isinstance(docs[0], DocRecord)


def test_ciff_gz_and_many_passes_give_identical_bytes(corpus):
    base = str(corpus["tmp"] / "base.ciff")
    run("ciff", "--input", corpus["dir"], "--output", base)
    reference = open(base, "rb").read()
    df_max = max(np.bincount(corpus["m"].indices, minlength=len(corpus["vocab"])))
    # --memory M leaves M/2 for one pass's postings (8 bytes each): force many passes.
    memory = 16 * int(df_max) + 64
    small = str(corpus["tmp"] / "small.ciff")
    p = run("ciff", "--input", corpus["dir"], "--output", small, "--memory", str(memory))
    passes = int(p.stderr.split(" pass(es)")[0].rsplit(" ", 1)[1])
    assert passes >= 5, p.stderr
    assert open(small, "rb").read() == reference
    gz = str(corpus["tmp"] / "small.ciff.gz")
    run("ciff", "--input", corpus["dir"], "--output", gz, "--memory", "3K")
    with gzip.open(gz, "rb") as f:
        assert f.read() == reference
    header, _, _ = read_ciff(gz)  # ciff-toolkit opens .gz itself
    assert header.num_docs == len(corpus["ids"])


def test_memory_too_small_for_one_term_names_it(corpus):
    p = run("ciff", "--input", corpus["dir"], "--output", str(corpus["tmp"] / "x.ciff"),
            "--memory", "1K", check=False)
    assert p.returncode != 0
    assert "postings" in p.stderr and "--memory" in p.stderr
    assert not os.path.exists(str(corpus["tmp"] / "x.ciff"))
    assert not os.path.exists(str(corpus["tmp"] / "x.ciff.tmp"))


def test_quant_scale(corpus):
    out = str(corpus["tmp"] / "s.jsonl")
    run("jsonl", "--input", corpus["dir"], "--output", out, "--quant-scale", "51.2")
    expect = shardgen.quantized_vectors(corpus["m"], corpus["vocab"], scale=51.2)
    with open(out, encoding="utf-8") as f:
        for d, line in enumerate(f):
            assert json.loads(line)["vector"] == (expect[d] or {"[unused993]": 1})


def test_several_workers_are_just_shards(corpus, tmp_path):
    # Shards written by 3 workers (s % 3 == i), each worker in its own order and time, plus a
    # job.json written by whichever finished: the same export as the single-writer directory.
    out = str(tmp_path / "workers")
    os.makedirs(out)
    m, ids, vocab, size = corpus["m"], corpus["ids"], corpus["vocab"], 50
    n_shards = -(-m.shape[0] // size)
    for worker in (2, 0, 1):
        for s in reversed(range(worker, n_shards, 3)):
            a, b = s * size, min(m.shape[0], (s + 1) * size)
            shardgen.write_shard(os.path.join(out, "shard-%05d.h5" % s), a, ids[a:b], m[a:b], vocab)
    shardgen.write_job(out, size, m.shape[0])
    for fmt in ("ciff", "jsonl"):
        one, many = str(tmp_path / ("one." + fmt)), str(tmp_path / ("many." + fmt))
        run(fmt, "--input", corpus["dir"], "--output", one)
        run(fmt, "--input", out, "--output", many)
        assert open(one, "rb").read() == open(many, "rb").read()


def test_float16_shards(tmp_path):
    rng = np.random.default_rng(16)
    vocab = make_vocab(64)
    m = shardgen.random_matrix(rng, 30, len(vocab), 8)
    ids = ["d%d" % i for i in range(30)]
    shardgen.write_dir(str(tmp_path / "h"), ids, m, vocab, 16, dtype=np.float16)
    m16 = m.copy()
    m16.data = m.data.astype(np.float16).astype(np.float32)
    out = str(tmp_path / "h.ciff")
    run("ciff", "--input", str(tmp_path / "h"), "--output", out)
    _, lists, _ = read_ciff(out)
    assert vectors_from_ciff(lists, 30) == shardgen.quantized_vectors(m16, vocab)


@pytest.mark.parametrize("fmt", ["jsonl", "ciff"])
def test_incomplete_directory_is_refused_naming_missing_shards(corpus, tmp_path, fmt):
    m, ids, vocab = corpus["m"], corpus["ids"], corpus["vocab"]
    out = str(tmp_path / ("out." + fmt))
    cases = {
        # worker for shard 1 never ran; shard 3's worker was killed mid-shard
        "gap": (dict(skip={1}, partial={3}),
                ["shard-00001.h5", "shard-00003.h5 (only a partial .tmp)", "2 of 5"]),
        # the last shard is missing: only job.json's n_shards can tell
        "tail": (dict(skip={4}), ["shard-00004.h5", "1 of 5"]),
    }
    for name, (kw, needles) in cases.items():
        d = str(tmp_path / name)
        shardgen.write_dir(d, ids, m, vocab, 50, **kw)
        p = run(fmt, "--input", d, "--output", out, check=False)
        assert p.returncode != 0, name
        assert "incomplete" in p.stderr, p.stderr
        for needle in needles:
            assert needle in p.stderr, (needle, p.stderr)
        assert not os.path.exists(out)
    # A job that has not finished reading its input (no totals in job.json) is refused too.
    d = str(tmp_path / "unfinished")
    shardgen.write_dir(d, ids, m, vocab, 50, job=False)
    shardgen.write_job(d, 50, None)
    p = run(fmt, "--input", d, "--output", out, check=False)
    assert p.returncode != 0 and "not finished" in p.stderr, p.stderr
    # Without job.json, gaps are still found.
    d = str(tmp_path / "nojob")
    shardgen.write_dir(d, ids, m, vocab, 50, job=False, skip={2})
    p = run(fmt, "--input", d, "--output", out, check=False)
    assert p.returncode != 0 and "shard-00002.h5" in p.stderr, p.stderr


def test_shards_of_another_job_are_refused(corpus, tmp_path):
    # A shard whose first_doc does not continue the directory (copied from a job with another
    # shard size) is refused, naming it.
    m, ids, vocab = corpus["m"], corpus["ids"], corpus["vocab"]
    d = str(tmp_path / "mixed")
    shardgen.write_dir(d, ids, m, vocab, 50)
    shardgen.write_shard(os.path.join(d, "shard-00002.h5"), 90, ids[90:150], m[90:150], vocab)
    p = run("ciff", "--input", d, "--output", str(tmp_path / "x.ciff"), check=False)
    assert p.returncode != 0 and "shard-00002.h5" in p.stderr, p.stderr


def test_device_option(corpus, tmp_path):
    # --device cpu is the reference; auto and cuda give its bytes, or (cuda without a device) one
    # clear message and no output. jsonl has no transpose: cuda is refused there.
    ref = str(tmp_path / "cpu.ciff")
    p = run("ciff", "--input", corpus["dir"], "--output", ref, "--device", "cpu")
    assert "transposed on cpu" in p.stderr and "CUDA" not in p.stderr, p.stderr
    reference = open(ref, "rb").read()

    auto = str(tmp_path / "auto.ciff")
    p = run("ciff", "--input", corpus["dir"], "--output", auto, "--device", "auto")
    assert open(auto, "rb").read() == reference
    fallback = [line for line in p.stderr.splitlines() if "no usable CUDA device" in line]
    if fallback:
        assert len(fallback) == 1 and fallback[0].endswith(
            "; transposing on the CPU. Pass --device cpu to accept the CPU, or --device cuda to "
            "require a GPU."), p.stderr
        assert "WARNING: --device auto found no usable CUDA device (" in fallback[0], p.stderr
        assert "transposed on cpu" in p.stderr
    else:
        assert "with cuSPARSE csr2csc" in p.stderr, p.stderr

    for device, memory in (("cuda", "2G"), ("cuda:0", "3K")):
        out = str(tmp_path / ("%s.ciff" % device.replace(":", "")))
        p = run("ciff", "--input", corpus["dir"], "--output", out, "--device", device,
                "--memory", memory, check=False)
        if p.returncode == 0:
            assert open(out, "rb").read() == reference, device
            assert "with cuSPARSE csr2csc" in p.stderr
        else:
            assert p.returncode == 1, p.stderr
            lines = p.stderr.strip().split("\n")
            assert len(lines) == 1, p.stderr
            assert lines[0].startswith("spladex export: --device %s: no usable CUDA device: "
                                       % device), p.stderr
            assert not os.path.exists(out) and not os.path.exists(out + ".tmp")

    out = str(tmp_path / "x.jsonl")
    p = run("jsonl", "--input", corpus["dir"], "--output", out, "--device", "cuda", check=False)
    assert p.returncode == 2 and "jsonl has no transpose" in p.stderr, p.stderr
    assert not os.path.exists(out)
    for device in ("cpu", "auto"):
        run("jsonl", "--input", corpus["dir"], "--output", out, "--device", device)
        assert os.path.getsize(out) > 0
    for device in ("gpu", "cuda:", "cuda:x", "cuda0", ""):
        p = run("ciff", "--input", corpus["dir"], "--output", str(tmp_path / "y.ciff"),
                "--device", device, check=False)
        assert p.returncode == 2 and "--device" in p.stderr, (device, p.stderr)


def test_bad_arguments():
    assert run("--help").stdout.startswith("usage: spladex export")
    for args in ([], ["xml", "--input", "a", "--output", "b"], ["ciff", "--output", "b"],
                 ["ciff", "--input", "a", "--output", "b", "--memory", "lots"],
                 ["ciff", "--input", "a", "--output", "b", "--quant-scale", "-1"]):
        p = run(*args, check=False)
        assert p.returncode == 2, (args, p.stderr)


# ---- csr, jsonl --weights float, --drop-special, PATH.meta.json ----

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def read_bigann_csr(path):
    """big-ann-benchmarks benchmark/dataset_io.py read_sparse_matrix, line for line."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    nrow, ncol, nnz = np.frombuffer(raw, dtype="<i8", count=3)
    off = 24
    indptr = np.frombuffer(raw, dtype="<i8", count=nrow + 1, offset=off)
    off += 8 * (nrow + 1)
    assert nnz == indptr[-1]
    indices = np.frombuffer(raw, dtype="<i4", count=nnz, offset=off)
    off += 4 * nnz
    assert np.all(indices >= 0) and np.all(indices < ncol)
    data = np.frombuffer(raw, dtype="<f4", count=nnz, offset=off)
    off += 4 * nnz
    assert off == len(raw), "bytes after data"
    return sp.csr_matrix((data, indices, indptr), shape=(nrow, ncol))


def without_columns(m, cols):
    m = m.tolil(copy=True)
    for c in cols:
        m[:, c] = 0
    m = sp.csr_matrix(m, dtype=np.float32)
    m.eliminate_zeros()
    return m


def read_meta(path):
    with open(path + ".meta.json", encoding="utf-8") as f:
        return json.load(f)


def test_csr_read_by_numpy_equals_the_shards(corpus):
    out = str(corpus["tmp"] / "docs.csr")
    p = run("csr", "--input", corpus["dir"], "--output", out)
    got = read_bigann_csr(out)
    m = corpus["m"]
    assert got.shape == m.shape and got.nnz == m.nnz
    assert np.array_equal(got.indptr, m.indptr)
    assert np.array_equal(got.indices, m.indices)
    assert got.data.dtype == np.float32 and np.array_equal(got.data, m.data)  # bit-exact
    assert "nonzeros" in p.stderr
    meta = read_meta(out)
    assert meta["format"] == "csr" and meta["weights"] == "float"
    assert meta["vectors"] == m.shape[0] and meta["nnz"] == m.nnz
    assert meta["vocab_size"] == len(corpus["vocab"]) and meta["drop_special"] is False
    for side in (".indptr", ".indices", ".data", ".tmp"):
        assert not os.path.exists(out + side)
    gz = out + ".gz"
    run("csr", "--input", corpus["dir"], "--output", gz)
    with gzip.open(gz, "rb") as f:
        assert f.read() == open(out, "rb").read()


def test_csr_float16_shards(tmp_path):
    rng = np.random.default_rng(17)
    vocab = make_vocab(64)
    m = shardgen.random_matrix(rng, 30, len(vocab), 8)
    shardgen.write_dir(str(tmp_path / "h"), ["d%d" % i for i in range(30)], m, vocab, 16,
                       dtype=np.float16)
    out = str(tmp_path / "h.csr")
    run("csr", "--input", str(tmp_path / "h"), "--output", out)
    got = read_bigann_csr(out)
    assert np.array_equal(got.data, m.data.astype(np.float16).astype(np.float32))
    assert np.array_equal(got.indices, m.indices)


def test_jsonl_float_weights_are_the_stored_float32(corpus):
    out = str(corpus["tmp"] / "float.jsonl")
    run("jsonl", "--input", corpus["dir"], "--output", out, "--weights", "float")
    m, vocab = corpus["m"], corpus["vocab"]
    with open(out, encoding="utf-8") as f:
        lines = f.readlines()
    assert len(lines) == m.shape[0]
    for d, line in enumerate(lines):
        doc = json.loads(line)
        a, b = m.indptr[d], m.indptr[d + 1]
        want = {vocab[c]: w for c, w in zip(m.indices[a:b], m.data[a:b])}
        assert list(doc["vector"]) == [vocab[c] for c in m.indices[a:b]]
        # every weight reads back as the very same float32, in the fewest digits
        assert {t: np.float32(w) for t, w in doc["vector"].items()} == want
    assert json.loads(lines[0])["vector"] == {}  # an empty document: no placeholder
    meta = read_meta(out)
    assert meta["weights"] == "float" and meta["format"] == "jsonl"


def test_drop_special_in_every_format(corpus, tmp_path):
    m, vocab = corpus["m"], corpus["vocab"]
    special_ids = [i for i, t in enumerate(vocab) if t in SPECIALS]
    assert special_ids == [vocab.index("[CLS]")]
    cls = special_ids[0]
    assert m[:, cls].nnz > 0, "the fixture must use [CLS] for this test to mean anything"
    kept = without_columns(m, special_ids)

    out = str(tmp_path / "d.csr")
    run("csr", "--input", corpus["dir"], "--output", out, "--drop-special")
    got = read_bigann_csr(out)
    assert got.shape == m.shape and (got != kept).nnz == 0 and got.nnz == kept.nnz
    meta = read_meta(out)
    assert meta["drop_special"] is True and meta["dropped_terms"] == ["[CLS]"]

    expect = shardgen.quantized_vectors(kept, vocab)
    out = str(tmp_path / "d.jsonl")
    run("jsonl", "--input", corpus["dir"], "--output", out, "--drop-special")
    with open(out, encoding="utf-8") as f:
        for d, line in enumerate(f):
            assert json.loads(line)["vector"] == (expect[d] or {"[unused993]": 1})

    out = str(tmp_path / "d.ciff")
    run("ciff", "--input", corpus["dir"], "--output", out, "--drop-special")
    header, lists, _ = read_ciff(out)
    assert "[CLS]" not in [pl.term for pl in lists]
    assert vectors_from_ciff(lists, m.shape[0]) == expect
    assert "special tokens dropped" in header.description
    # without the option, [CLS] is there
    out = str(tmp_path / "k.ciff")
    run("ciff", "--input", corpus["dir"], "--output", out)
    header, lists, _ = read_ciff(out)
    assert "[CLS]" in [pl.term for pl in lists]
    assert "special tokens kept" in header.description


def test_meta_json_and_ciff_description_record_the_conventions(corpus, tmp_path):
    out = str(tmp_path / "x.ciff")
    run("ciff", "--input", corpus["dir"], "--output", out, "--quant-scale", "51.2")
    header, lists, _ = read_ciff(out)
    meta = read_meta(out)
    expect = shardgen.quantized_vectors(corpus["m"], corpus["vocab"], scale=51.2)
    assert meta["kind"] == "export" and meta["format"] == "ciff" and meta["weights"] == "int"
    assert meta["quant_scale"] == pytest.approx(51.2) and meta["model"] == "test/model"
    assert meta["max_length"] == 256 and meta["source"] == corpus["dir"]
    assert meta["vectors"] == len(corpus["ids"])
    assert meta["nnz"] == sum(len(v) for v in expect) == sum(pl.df for pl in lists)
    assert meta["empty_vectors"] == sum(1 for v in expect if not v)
    d = header.description
    for needle in ("model test/model", "max_length 256", "round(w * 51.2)",
                   "special tokens kept", "%d documents" % len(corpus["ids"]),
                   "%d postings lists" % len(lists)):
        assert needle in d, (needle, d)
    out = str(tmp_path / "x.jsonl")
    run("jsonl", "--input", corpus["dir"], "--output", out)
    meta = read_meta(out)
    assert meta["nnz"] == sum(len(v) for v in shardgen.quantized_vectors(corpus["m"],
                                                                          corpus["vocab"]))


def test_weights_option_is_checked():
    for args in (["jsonl", "--input", "a", "--output", "b", "--weights", "half"],
                 ["ciff", "--input", "a", "--output", "b", "--weights", "float"],
                 ["csr", "--input", "a", "--output", "b", "--device", "cuda"]):
        p = run(*args, check=False)
        assert p.returncode == 2, (args, p.stderr)
