"""Interop of `spladex expand` shards: read with h5py + scipy.sparse (and anndata's read_elem
where anndata is installed), with no spladex code, they hold exactly what `spladex encode --json`
prints for the same passages: the same doc ids in input order, the same terms, the same weights
(within 1e-5 + 1e-4 |w|: expand batches by a token budget after sorting by length, encode in
input order, and the CPU encoder's float sums depend slightly on the batch).

Also checked: every shard's attrs (format, first_doc, n_docs, the input byte range, which is
exactly the shard's lines of the input), the csr_matrix encoding, the vocabulary, --top-k,
`--format ids` (pre-tokenized with `spladex tokenize`) and JSONL input giving the same rows.

The model is $SPLADEX_MODEL_TINY (default models/splade-tiny), else a random tiny BERT made with
scripts/make_random_model.py (numpy only).
"""
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import scipy.sparse as sp

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

PASSAGES = [
    "The presence of communication amid scientific minds was equally important to the success "
    "of the Manhattan Project as scientific intellect was.",
    "",
    "Café au lait — naïve résumé with accents, 東京 and emoji 😀 and ÅNGSTRÖM.",
    "short",
    "SPLADE expands each passage with related vocabulary terms; the weights are log(1 + relu).",
    " ".join(["retrieval", "sparse", "index", "lexical", "neural"] * 40),  # longer than max_length
    "Numbers 12,345.67 and symbols #hash @user e-mail: someone@example.com!",
    "UPPER lower MiXeD case words",
] + ["passage number %d about topic %s" % (i, ["search", "music", "cooking"][i % 3]) for i in range(25)]
MAX_LENGTH = 64
SHARD_SIZE = 7


def spladex_bin():
    b = os.environ.get("SPLADEX_BIN") or os.path.join(ROOT, "build", "spladex")
    if not os.path.exists(b):
        pytest.fail("set SPLADEX_BIN to the spladex binary")
    return b


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = os.environ.get("SPLADEX_MODEL_TINY", os.path.join(ROOT, "models", "splade-tiny"))
    if os.path.isfile(os.path.join(d, "config.json")):
        return d
    d = str(tmp_path_factory.mktemp("model"))
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_random_model.py"),
                    "tiny-bert", d], check=True, stdout=subprocess.DEVNULL)
    return d


def run(args, stdin=None):
    p = subprocess.run([spladex_bin()] + args, input=stdin, capture_output=True)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout.decode("utf-8")


def encode_json(model, texts, extra=()):
    out = run(["encode", "--model", model, "--json", "--max-length", str(MAX_LENGTH)] + list(extra),
              stdin=("\n".join(texts) + "\n").encode("utf-8"))
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == len(texts)
    return [r["vector"] for r in rows]


def read_shards(out):
    """(doc_ids, CSR matrix, vocab, [attrs]) from the shard files alone, with h5py + scipy."""
    names = sorted(n for n in os.listdir(out) if n.startswith("shard-"))
    assert names and not any(n.endswith(".tmp") for n in names)
    ids, mats, attrs, vocab = [], [], [], None
    for n in names:
        with h5py.File(os.path.join(out, n), "r") as f:
            g = f["vectors"]
            assert g.attrs["encoding-type"] == "csr_matrix"
            assert g.attrs["encoding-version"] == "0.1.0"
            shape = tuple(int(x) for x in g.attrs["shape"])
            assert g["data"].dtype == np.float32 and g["indices"].dtype == np.int32
            assert g["indptr"].dtype == np.int64
            m = sp.csr_matrix((g["data"][:], g["indices"][:], g["indptr"][:]), shape=shape)
            assert m.has_sorted_indices
            mats.append(m)
            ids += [x.decode("utf-8") for x in f["doc_ids"][:]]
            v = [x.decode("utf-8") for x in f["vocab"][:]]
            assert vocab is None or v == vocab
            vocab = v
            attrs.append(dict(f.attrs))
    return ids, sp.vstack(mats).tocsr(), vocab, attrs


def assert_rows_equal(matrix, vocab, vectors):
    assert matrix.shape[0] == len(vectors)
    for r, want in enumerate(vectors):
        lo, hi = matrix.indptr[r], matrix.indptr[r + 1]
        got = {vocab[t]: float(w) for t, w in zip(matrix.indices[lo:hi], matrix.data[lo:hi])}
        assert set(got) == set(want), "row %d: terms differ: %s" % (
            r, sorted(set(got) ^ set(want))[:10])
        for term, w in want.items():
            assert abs(got[term] - w) <= 1e-5 + 1e-4 * abs(w), (r, term, got[term], w)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    path = d / "c.tsv"
    with open(path, "w", encoding="utf-8") as f:
        for i, t in enumerate(PASSAGES):
            f.write("id-%d\t%s\n" % (i, t))
    return str(path)


@pytest.fixture(scope="module")
def expanded(model, corpus, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("out"))
    run(["expand", "--model", model, "--input", corpus, "--output", out, "--quiet",
         "--max-length", str(MAX_LENGTH), "--shard-size", str(SHARD_SIZE), "--batch-tokens", "512"])
    return out


def test_shards_equal_encode(model, expanded):
    ids, matrix, vocab, _ = read_shards(expanded)
    assert ids == ["id-%d" % i for i in range(len(PASSAGES))]
    assert matrix.shape[1] == len(vocab)
    assert_rows_equal(matrix, vocab, encode_json(model, PASSAGES))


def test_attrs_and_byte_ranges(expanded, corpus):
    _, _, _, attrs = read_shards(expanded)
    data = open(corpus, "rb").read()
    lines = data.splitlines(keepends=True)
    assert len(attrs) == -(-len(PASSAGES) // SHARD_SIZE)
    for s, a in enumerate(attrs):
        assert a["format"] == "spladex-shard" and int(a["format_version"]) == 1
        assert int(a["first_doc"]) == s * SHARD_SIZE and int(a["max_length"]) == MAX_LENGTH
        n = int(a["n_docs"])
        assert n == min(SHARD_SIZE, len(PASSAGES) - s * SHARD_SIZE)
        want = b"".join(lines[s * SHARD_SIZE: s * SHARD_SIZE + n])
        assert data[int(a["input_start"]):int(a["input_end"])] == want
    job = json.load(open(os.path.join(expanded, "job.json")))
    assert job["n_docs_total"] == len(PASSAGES) and job["max_length"] == MAX_LENGTH


def test_anndata_reads_shards(expanded):
    anndata = pytest.importorskip("anndata")
    try:
        from anndata.io import read_elem
    except ImportError:
        from anndata.experimental import read_elem
    ids, matrix, _, _ = read_shards(expanded)
    parts = []
    for n in sorted(x for x in os.listdir(expanded) if x.startswith("shard-")):
        with h5py.File(os.path.join(expanded, n), "r") as f:
            m = read_elem(f["vectors"])
            assert sp.issparse(m)
            parts.append(m)
    got = sp.vstack(parts).tocsr()
    assert (got != matrix).nnz == 0
    del anndata


def test_top_k(model, corpus, tmp_path):
    out = str(tmp_path / "topk")
    run(["expand", "--model", model, "--input", corpus, "--output", out, "--quiet", "--top-k", "5",
         "--max-length", str(MAX_LENGTH), "--shard-size", str(SHARD_SIZE)])
    _, matrix, vocab, attrs = read_shards(out)
    assert all(int(a["top_k"]) == 5 for a in attrs)
    assert np.diff(matrix.indptr).max() <= 5
    assert_rows_equal(matrix, vocab, encode_json(model, PASSAGES, ["--top-k", "5"]))


def test_pretokenized_and_jsonl_inputs(model, expanded, tmp_path):
    """--format ids (from `spladex tokenize`, untruncated) and Pyserini JSONL give the TSV's rows."""
    ids_text = run(["tokenize", "--model", model], stdin=("\n".join(PASSAGES) + "\n").encode())
    id_lines = ids_text.splitlines()
    assert len(id_lines) == len(PASSAGES)
    ids_path = tmp_path / "c.ids"
    ids_path.write_text("".join("id-%d\t%s\n" % (i, l) for i, l in enumerate(id_lines)))
    jsonl_path = tmp_path / "c.jsonl"
    with open(jsonl_path, "w", encoding="utf-8") as f:
        for i, t in enumerate(PASSAGES):
            f.write(json.dumps({"id": "id-%d" % i, "contents": t}) + "\n")
    _, ref, _, _ = read_shards(expanded)
    for path, fmt in ((ids_path, "ids"), (jsonl_path, "jsonl")):
        out = str(tmp_path / ("out-" + fmt))
        run(["expand", "--model", model, "--input", str(path), "--output", out, "--quiet",
             "--format", fmt, "--max-length", str(MAX_LENGTH), "--shard-size", str(SHARD_SIZE),
             "--batch-tokens", "512"])
        ids, matrix, _, _ = read_shards(out)
        assert ids == ["id-%d" % i for i in range(len(PASSAGES))]
        assert matrix.shape == ref.shape and (matrix.indices == ref.indices).all()
        assert np.allclose(matrix.data, ref.data, rtol=1e-4, atol=1e-5), fmt


WORDS = ["search", "music", "river", "house", "green", "light", "paper", "water", "stone", "night",
         "city", "bird", "tree", "road", "cloud", "fire", "glass", "money", "story", "table"]


@pytest.mark.parametrize("long_every", [0, 9])
def test_many_windows(model, tmp_path, long_every):
    """Batches stream through the encoder across windows (the next window's first batch is
    submitted before the previous window's last is collected). With --max-length 64 and
    --batch-tokens 2048 a window is 256 docs; passages of 1-4 words make each window a single
    batch (window k's buffer then still has window k-2's batch in flight when k is gathered);
    a long passage every `long_every` makes windows of several batches. Rows must come out in
    input order and equal `spladex encode`."""
    texts = []
    for i in range(1200):
        n = 1 + (i * 7) % 4
        if long_every and i % long_every == 0:
            n = 20 + i % 25
        texts.append(" ".join(WORDS[(i * 3 + k * 5) % len(WORDS)] for k in range(n)))
    corpus = tmp_path / "many.tsv"
    corpus.write_text("".join("d%d\t%s\n" % (i, t) for i, t in enumerate(texts)), encoding="utf-8")
    out = str(tmp_path / "out")
    run(["expand", "--model", model, "--input", str(corpus), "--output", out, "--quiet",
         "--max-length", str(MAX_LENGTH), "--shard-size", "100", "--batch-tokens", "2048"])
    ids, matrix, vocab, _ = read_shards(out)
    assert ids == ["d%d" % i for i in range(len(texts))]
    assert_rows_equal(matrix, vocab, encode_json(model, texts))
