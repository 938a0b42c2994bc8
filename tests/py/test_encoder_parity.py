"""Parity of `spladex encode` (CPU) with HF transformers + naver/splade's formula.

The references in tests/fixtures/encoder/ come from scripts/gen_encoder_fixtures.py (torch +
transformers); this test needs only numpy. Random models are rebuilt with
scripts/make_random_model.py into tests/fixtures/generated/ and must have the sha256 the
references were computed with. The real rasyosef/splade-tiny is read from $SPLADEX_MODEL_TINY
(default models/splade-tiny); when it is absent the test fails and says how to fetch it.

Required for every document: max |w_spladex - w_ref| <= 1e-4 over the whole vocabulary, and the
same set of terms with w > 1e-3. --threshold and --top-k runs are checked against the reference
pruned in numpy, allowing a different choice only among terms whose reference weights are
within 1e-4 of the cut (the two computations legitimately disagree there by float rounding).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "encoder")
GENERATED = os.path.join(ROOT, "tests", "fixtures", "generated")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import make_random_model  # noqa: E402

TOL = 1e-4
SET_CUT = 1e-3
MANIFEST = json.load(open(os.path.join(FIXTURES, "encoder.json")))
RANDOM = ["tiny-distilbert", "tiny-bert", "efficient-splade", "tiny-bert-v105879", "tiny-roberta",
          "tiny-xlm-roberta"]


def spladex_bin():
    b = os.environ.get("SPLADEX_BIN")
    if not b:
        for cand in ("build/spladex",):
            if os.path.exists(os.path.join(ROOT, cand)):
                return os.path.join(ROOT, cand)
        pytest.fail("set SPLADEX_BIN to the spladex binary")
    return b


_models = {}


def model_dir(name):
    """The model directory of a fixture, rebuilt (random) or found (splade-tiny)."""
    if name in _models:
        return _models[name]
    entry = MANIFEST["fixtures"][name]["model"]
    if name == "splade-tiny":
        d = os.environ.get("SPLADEX_MODEL_TINY", os.path.join(ROOT, "models", "splade-tiny"))
        if not os.path.isfile(os.path.join(d, "config.json")):
            pytest.fail("%s is missing: run scripts/fetch_model.sh (or set SPLADEX_MODEL_TINY)" % d)
        sha = make_random_model.sha256_file(os.path.join(d, "model.safetensors"))
        assert sha == entry["sha256"], "%s is not the checkpoint the fixture was made from" % d
    else:
        d = os.path.join(GENERATED, name)
        st = os.path.join(d, "model.safetensors")
        sha = make_random_model.sha256_file(st) if os.path.exists(st) else None
        byte_level = make_random_model.PRESETS[entry["preset"]]["model_type"] in make_random_model.ROBERTA_TYPES
        if sha != entry["sha256"] or (byte_level and not os.path.exists(os.path.join(d, "tokenizer.json"))):
            sha = make_random_model.make_model(entry["preset"], d, seed=entry["seed"])
        assert sha == entry["sha256"], "make_random_model.py %s rebuilt different weights" % name
    _models[name] = d
    return d


def load_fixture(name):
    z = np.load(os.path.join(FIXTURES, MANIFEST["fixtures"][name]["file"]))
    off = z["ids_offsets"]
    docs = [z["ids"][off[i]:off[i + 1]] for i in range(len(off) - 1)]
    return docs, z


def vocab_of(d):
    for p in (os.path.join(d, "vocab.txt"),):
        if os.path.exists(p):
            with open(p, encoding="utf-8") as f:
                return [line.rstrip("\n") for line in f]
    tj = json.load(open(os.path.join(d, "tokenizer.json"), encoding="utf-8"))
    v = tj["model"]["vocab"]
    out = [None] * len(v)
    for t, i in v.items():
        out[i] = t
    return out


def run_spladex(d, docs, max_length, extra=()):
    cmd = [spladex_bin(), "encode", "--model", d, "--ids", "--json", "--max-length", str(max_length)] + list(extra)
    text = "".join(" ".join(str(int(x)) for x in doc) + "\n" for doc in docs)
    p = subprocess.run(cmd, input=text, capture_output=True, text=True)
    assert p.returncode == 0, "%s failed: %s" % (" ".join(cmd), p.stderr)
    lines = p.stdout.splitlines()
    assert len(lines) == len(docs)
    return [json.loads(line) for line in lines]


def dense(obj, term_id, V):
    w = np.zeros(V, np.float32)
    for term, value in obj["vector"].items():
        w[term_id[term]] = value
    return w


def reference_rows(z, idx, V):
    ref = np.zeros((len(idx), V), np.float32)
    p, ind, val = z["ref_indptr"], z["ref_indices"].astype(np.int64), z["ref_values"]
    for r, i in enumerate(idx):
        ref[r, ind[p[i]:p[i + 1]]] = val[p[i]:p[i + 1]]
    return ref


def encode_groups(name, extra=(), limit=None):
    """Runs spladex on every max-length group of a fixture (its first `limit` docs, default all);
    yields (doc index, spladex vector, reference vector)."""
    d = model_dir(name)
    docs, z = load_fixture(name)
    docs = docs[:limit]
    vocab = vocab_of(d)
    term_id = {t: i for i, t in enumerate(vocab)}
    for L in sorted(set(z["max_length"].tolist())):
        idx = [i for i in range(len(docs)) if z["max_length"][i] == L]
        out = run_spladex(d, [docs[i] for i in idx], L, extra)
        ref = reference_rows(z, idx, len(vocab))
        for r, i in enumerate(idx):
            assert out[r]["n_tokens"] == z["n_tokens"][i], "doc %d: n_tokens" % i
            yield i, dense(out[r], term_id, len(vocab)), ref[r]


def check_parity(name, extra=()):
    worst, n = 0.0, 0
    for i, w, ref in encode_groups(name, extra):
        err = float(np.abs(w - ref).max())
        worst = max(worst, err)
        assert err <= TOL, "%s doc %d: max |w - w_ref| = %.3g > %g" % (name, i, err, TOL)
        a, b = set(np.nonzero(w > SET_CUT)[0]), set(np.nonzero(ref > SET_CUT)[0])
        assert a == b, "%s doc %d: terms with w > 1e-3 differ: spladex only %s, reference only %s" % (
            name, i, sorted(a - b)[:10], sorted(b - a)[:10])
        n += 1
    print("%s %s: %d docs, worst max |dw| = %.3g" % (name, " ".join(extra), n, worst))
    return n


@pytest.mark.parametrize("name", RANDOM)
def test_random_model_parity(name):
    assert check_parity(name, ["--threads", "2"]) >= 9


def test_random_model_parity_small_batches_one_thread():
    # Many small batches (documents split over batches of at most 300 tokens), one thread.
    check_parity("tiny-bert", ["--threads", "1", "--batch-tokens", "600"])
    check_parity("tiny-distilbert", ["--threads", "1", "--batch-tokens", "600"])


def test_splade_tiny_parity():
    n = check_parity("splade-tiny", ["--threads", "2"])
    assert n >= 200


def expected_pruned(ref, threshold, top_k):
    """The reference pruned in numpy: w > threshold, then top_k by (w desc, id asc)."""
    keep = np.nonzero(ref > threshold)[0]
    if top_k > 0 and len(keep) > top_k:
        order = np.lexsort((keep, -ref[keep]))  # weight descending, then id ascending
        keep = np.sort(keep[order[:top_k]])
    return keep


@pytest.mark.parametrize("name,threshold,top_k", [
    ("splade-tiny", 0.5, 0), ("splade-tiny", 0.0, 16), ("splade-tiny", 0.3, 8),
    ("tiny-bert", 0.0, 1), ("tiny-distilbert", 0.25, 100), ("splade-tiny", 0.0, 100000),
])
def test_threshold_and_top_k(name, threshold, top_k):
    extra = ["--threshold", str(threshold), "--top-k", str(top_k)]
    # The first 60 documents hold every special length (1, 2, 3, 255, 256, 400, 511, 512, 700).
    for i, w, ref in encode_groups(name, extra, limit=60):
        got = np.nonzero(w)[0]
        want = expected_pruned(ref, threshold, top_k)
        assert np.abs(w[got] - ref[got]).max(initial=0) <= TOL, "doc %d: weights" % i
        if top_k > 0:
            assert len(got) <= top_k, "doc %d: %d terms kept, top-k %d" % (i, len(got), top_k)
            if int((ref > threshold + TOL).sum()) >= top_k:
                assert len(got) == top_k, "doc %d: %d terms kept, top-k %d" % (i, len(got), top_k)
        diff = set(got) ^ set(want)
        if diff:
            # Only terms at the cut (threshold or k-th weight) may be chosen differently.
            cut = [threshold] + ([float(np.sort(ref[want])[0])] if top_k > 0 and len(want) else [])
            for t in diff:
                assert min(abs(float(ref[t]) - c) for c in cut) <= TOL, \
                    "doc %d: term %d (w_ref %.7g) kept differently, cut %s" % (i, t, ref[t], cut)


def test_bad_id_lines():
    d = model_dir("tiny-bert")
    for text, needle in [("101 30522 102\n", "line 1"), ("101 102\n\n", "line 2"),
                         ("101 abc 102\n", "'abc'"), ("101 -5\n", "-5")]:
        p = subprocess.run([spladex_bin(), "encode", "--model", d, "--ids", "--json"], input=text,
                           capture_output=True, text=True)
        assert p.returncode != 0 and needle in p.stderr, (text, p.stderr)


def tiny_model_or_fail():
    d = os.environ.get("SPLADEX_MODEL_TINY", os.path.join(ROOT, "models", "splade-tiny"))
    if not os.path.isfile(os.path.join(d, "config.json")):
        pytest.fail("%s is missing: run scripts/fetch_model.sh (or set SPLADEX_MODEL_TINY)" % d)
    return d


def test_text_mode_equals_tokenize_then_ids():
    """encode on text == tokenize | encode --ids; TEXT arguments == stdin lines; text mode shows
    the --json vector's largest terms in order."""
    d = tiny_model_or_fail()
    lines = ["The quick brown fox jumps over the lazy dog.", "", "Caf\u00e9 na\u00efve \u00fcber \u2014 \"quoted\" \\ back",
             "word " * 400]
    text = "".join(line + "\n" for line in lines)
    run = lambda args, inp=None: subprocess.run([spladex_bin()] + args, input=inp, capture_output=True,
                                                text=True, check=True).stdout
    ids = run(["tokenize", "--model", d, "--max-length", "256"], text)
    via_ids = run(["encode", "--model", d, "--ids", "--json"], ids)
    via_text = run(["encode", "--model", d, "--json"], text)
    via_args = run(["encode", "--model", d, "--json"] + lines)
    assert via_text == via_ids == via_args
    objs = [json.loads(x) for x in via_text.splitlines()]
    assert [o["n_tokens"] for o in objs] == [len(x.split()) for x in ids.splitlines()]
    assert objs[1]["n_tokens"] == 2 and objs[3]["n_tokens"] == 256
    shown = run(["encode", "--model", d, "--top", "5"] + lines[:1]).split()
    best = sorted(objs[0]["vector"].items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert [s.rsplit(":", 1)[0] for s in shown] == [t for t, _ in best]
