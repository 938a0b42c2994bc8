"""Long documents: `spladex encode --stride S` (sliding windows max-pooled into one vector) against
HF transformers + naver/splade's formula applied per window, then the max over the windows.

The references in tests/fixtures/windows/ come from scripts/gen_window_fixtures.py (torch +
transformers), which builds the windows itself from the untruncated ids; this test needs only
numpy. Models: the random tiny-distilbert and tiny-bert (rebuilt by scripts/make_random_model.py
with the sha256 the references were made with) and the real splade-tiny ($SPLADEX_MODEL_TINY,
default models/splade-tiny). The cases cover L in {64, 256, 512}, S in {1, 64, 128, L - 2},
documents of 0 to 5,000 tokens, batch budgets small enough that documents span batches, and
documents beyond --max-windows.

Required per document: the window count, max |w_spladex - w_ref| <= 1e-4 over the vocabulary and
the same terms with w > 1e-3 (as test_encoder_parity.py).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "windows")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_encoder_parity as tep  # noqa: E402

TOL = 1e-4
SET_CUT = 1e-3
MANIFEST = json.load(open(os.path.join(FIXTURES, "windows.json")))
CASES = MANIFEST["cases"]


spladex_bin = tep.spladex_bin


def model_dir(name):
    """test_encoder_parity's models (the same sha256: gen_window_fixtures.py takes them from
    tests/fixtures/encoder/encoder.json), rebuilt or found there."""
    assert MANIFEST["models"][name]["sha256"] == tep.MANIFEST["fixtures"][name]["model"]["sha256"]
    return tep.model_dir(name)


vocab_of = tep.vocab_of


def run(args, stdin):
    p = subprocess.run([spladex_bin()] + args, input=stdin, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def case_docs(i):
    z = np.load(os.path.join(FIXTURES, "windows.npz"))
    ids, off = z["%d_ids" % i], z["%d_offsets" % i]
    docs = [ids[off[k]:off[k + 1]] for k in range(len(off) - 1)]
    p, ind, val = z["%d_indptr" % i], z["%d_indices" % i].astype(np.int64), z["%d_values" % i]
    return docs, [(ind[p[k]:p[k + 1]], val[p[k]:p[k + 1]]) for k in range(len(docs))]


def encode_case(c, docs, extra=()):
    d = model_dir(c["model"])
    args = ["encode", "--model", d, "--ids", "--json", "--threads", "2",
            "--max-length", str(c["max_length"]), "--stride", str(c["stride"]),
            "--max-windows", str(c["max_windows"]), "--batch-tokens", str(c["batch_tokens"])]
    stdin = "".join(" ".join(str(int(x)) for x in doc) + "\n" for doc in docs)
    rc, out, err = run(args + list(extra), stdin)
    assert rc == 0, "%s failed: %s" % (" ".join(args), err)
    lines = out.splitlines()
    assert len(lines) == len(docs)
    return [json.loads(line) for line in lines], err


@pytest.mark.parametrize("i", range(len(CASES)))
def test_window_parity(i):
    c = CASES[i]
    docs, refs = case_docs(i)
    vocab = vocab_of(model_dir(c["model"]))
    term_id = {t: k for k, t in enumerate(vocab)}
    out, err = encode_case(c, docs)
    worst = 0.0
    for k, (o, (ind, val)) in enumerate(zip(out, refs)):
        where = "case %d (%s L=%d S=%d N=%d) doc %d of %d tokens" % (
            i, c["model"], c["max_length"], c["stride"], c["max_windows"], k, c["lengths"][k])
        assert o["n_windows"] == c["windows"][k], "%s: windows" % where
        assert o["n_tokens"] == c["lengths"][k] + 2, "%s: n_tokens" % where
        w = np.zeros(len(vocab), np.float32)
        for term, value in o["vector"].items():
            w[term_id[term]] = value
        ref = np.zeros(len(vocab), np.float32)
        ref[ind] = val
        e = float(np.abs(w - ref).max())
        worst = max(worst, e)
        assert e <= TOL, "%s: max |w - w_ref| = %.3g > %g" % (where, e, TOL)
        a, b = set(np.nonzero(w > SET_CUT)[0]), set(np.nonzero(ref > SET_CUT)[0])
        assert a == b, "%s: terms with w > 1e-3 differ: spladex only %s, reference only %s" % (
            where, sorted(a - b)[:10], sorted(b - a)[:10])
    hit = [k for k in range(len(docs)) if c["all_windows"][k] > c["max_windows"]]
    if hit:
        assert ("%d passage%s had more than %d windows" % (len(hit), "" if len(hit) == 1 else "s",
                                                           c["max_windows"])) in err, err
        assert "(the first: stdin line %d)" % (hit[0] + 1) in err, err
    else:
        assert "--max-windows" not in err, err
    print("case %d: worst max |dw| = %.3g" % (i, worst))


def test_cases_cover_the_issue():
    # What the issue asks the proof to cover, so that a regenerated fixture keeps it.
    assert {c["max_length"] for c in CASES} >= {64, 256, 512}
    strides = {c["stride"] for c in CASES} | {"L-2" for c in CASES if c["stride"] == c["max_length"] - 2}
    assert strides >= {1, 64, 128, "L-2"}
    assert {c["model"] for c in CASES} >= {"tiny-distilbert", "tiny-bert", "splade-tiny"}
    assert max(max(c["lengths"]) for c in CASES) >= 5000 and min(min(c["lengths"]) for c in CASES) == 0
    assert any(w > c["max_windows"] for c in CASES for w in c["all_windows"])
    # documents spanning batches: more window tokens than one batch holds
    assert any(w * c["max_length"] > c["batch_tokens"] for c in CASES for w in c["windows"])


def test_top_k_after_the_max():
    # --top-k / --threshold apply to the document's max, not per window.
    c = CASES[8]
    docs, refs = case_docs(8)
    out, _ = encode_case(c, docs, ["--top-k", "5", "--threshold", "0.1"])
    for k, (o, (ind, val)) in enumerate(zip(out, refs)):
        assert len(o["vector"]) <= 5
        keep = val > 0.1
        top = np.sort(val[keep])[::-1][:5]
        got = np.sort(np.array(list(o["vector"].values()), np.float32))[::-1]
        assert len(got) == len(top), "doc %d" % k
        assert np.abs(got - top).max(initial=0) <= TOL, "doc %d" % k


TEXTS = [
    "",
    "short text",
    " ".join("The %d-th sentence of a long document talks about topic number %d and more." % (i, i % 7)
             for i in range(120)),
]


def test_text_equals_ids_and_stride_zero_unchanged():
    d = model_dir("splade-tiny")
    stdin = "".join(t + "\n" for t in TEXTS)
    rc, ids, err = run(["tokenize", "--model", d, "--max-length", "0"], stdin)
    assert rc == 0, err
    common = ["encode", "--model", d, "--json", "--threads", "2", "--max-length", "64"]
    for extra in (["--stride", "20", "--batch-tokens", "100"], ["--stride", "62", "--max-windows", "4"]):
        rc, a, err_a = run(common + extra, stdin)
        assert rc == 0, err_a
        rc, b, err_b = run(common + extra + ["--ids"], ids)
        assert rc == 0, err_b
        assert a == b, "text and its tokenize ids encode differently with %s" % extra
        assert [json.loads(x)["n_tokens"] for x in a.splitlines()] == [len(x.split()) for x in ids.splitlines()]
    # --stride 0 is today's truncation, byte for byte
    rc, a, _ = run(common, stdin)
    rc2, b, _ = run(common + ["--stride", "0", "--max-windows", "2"], stdin)
    assert rc == rc2 == 0 and a == b and '"n_windows"' not in a


def test_bad_window_options():
    d = model_dir("splade-tiny")
    rc, _, err = run(["encode", "--model", d, "--max-length", "64", "--stride", "63", "x"], "")
    assert rc != 0 and "--stride 63 is outside [0, 62]" in err, err
    rc, _, err = run(["encode", "--model", d, "--stride", "1", "--max-windows", "0", "x"], "")
    assert rc != 0 and "--max-windows" in err, err
    rc, _, err = run(["encode", "--model", d, "--ids", "--stride", "1"], "101\n")
    assert rc != 0 and "at least 2 ids" in err, err


def read_shards(d):
    import h5py
    ids, rows = [], []
    for name in sorted(x for x in os.listdir(d) if x.startswith("shard-") and x.endswith(".h5")):
        with h5py.File(os.path.join(d, name), "r") as f:
            v = f["vectors"]
            p, ind, val = v["indptr"][:], v["indices"][:], np.asarray(v["data"][:], np.float64)
            ids += [x.decode() if isinstance(x, bytes) else x for x in f["doc_ids"][:]]
            rows += [dict(zip(ind[p[i]:p[i + 1]].tolist(), val[p[i]:p[i + 1]].tolist()))
                     for i in range(len(p) - 1)]
    return ids, rows


@pytest.mark.parametrize("fmt", ["tsv", "ids"])
def test_expand_equals_encode(tmp_path, fmt):
    # expand --stride gives each document encode --stride's vector (windows spanning batches,
    # documents over --max-windows, shards of 5 docs), records L, S, N and the window counts in
    # job.json, and `spladex info` reports them.
    d = model_dir("splade-tiny")
    vocab = vocab_of(d)
    term_id = {t: k for k, t in enumerate(vocab)}
    texts = [TEXTS[2] * k for k in (1, 3, 0, 1, 6)] + ["short one", TEXTS[2][:300], ""] * 3
    stdin = "".join(t + "\n" for t in texts)
    opts = ["--max-length", "64", "--stride", "40", "--max-windows", "30", "--threads", "2"]
    rc, enc, err = run(["encode", "--model", d, "--json"] + opts, stdin)
    assert rc == 0, err
    enc = [json.loads(x) for x in enc.splitlines()]
    corpus = tmp_path / "c.tsv"
    if fmt == "ids":
        rc, ids, err = run(["tokenize", "--model", d, "--max-length", "0"], stdin)
        assert rc == 0, err
        corpus.write_text("".join("d%d\t%s\n" % (i, x) for i, x in enumerate(ids.splitlines())))
    else:
        corpus.write_text("".join("d%d\t%s\n" % (i, t) for i, t in enumerate(texts)))
    out = tmp_path / "out"
    rc, _, err = run(["expand", "--model", d, "--input", str(corpus), "--output", str(out),
                      "--format", fmt, "--device", "cpu", "--batch-tokens", "192",
                      "--shard-size", "5", "--quiet"] + opts, "")
    assert rc == 0, err
    capped = sum(1 for e in enc if e["n_windows"] == 30)
    assert capped >= 2 and ("%d document(s) had more than 30 windows" % capped) in err, err
    ids, rows = read_shards(str(out))
    assert ids == ["d%d" % i for i in range(len(texts))]
    for i, (row, e) in enumerate(zip(rows, enc)):
        ref = {term_id[t]: w for t, w in e["vector"].items()}
        assert set(row) == set(ref), "doc %d: terms differ" % i
        worst = max([abs(row[k] - ref[k]) for k in ref] + [0.0])
        assert worst <= 1e-5, "doc %d: max |dw| %.3g" % (i, worst)
    job = json.load(open(out / "job.json"))
    assert job["stride"] == 40 and job["max_windows"] == 30 and job["max_length"] == 64
    w = job["windows"]
    n_windows = [e["n_windows"] for e in enc]
    assert (w["docs"], w["total"], w["min"], w["max"], w["capped"]) == (
        len(texts), sum(n_windows), min(n_windows), max(n_windows), capped)
    first = min(i for i, n in enumerate(n_windows) if n == 30)
    assert w["first_capped"] == "d%d" % first
    rc, info, err = run(["info", str(out), "--top", "0"], "")
    assert rc == 0, err
    assert "windows/doc   min %d, mean %.2f, max %d (--stride 40, --max-windows 30" % (
        min(n_windows), sum(n_windows) / len(texts), max(n_windows)) in info, info
    assert "%d hit --max-windows, first: d%d (doc %d)" % (capped, first, first) in info, info
    # each shard records its own docs' windows as root attrs (h5py reads them as numbers)
    import h5py
    for k in range(0, len(texts), 5):
        with h5py.File(out / ("shard-%05d.h5" % (k // 5)), "r") as f:
            mine = n_windows[k:k + 5]
            hit = [k + j for j, n in enumerate(mine) if n == 30]
            assert (int(f.attrs["windows_total"]), int(f.attrs["windows_min"]),
                    int(f.attrs["windows_max"]), int(f.attrs["windows_capped"]),
                    int(f.attrs["first_capped_doc"])) == (
                sum(mine), min(mine), max(mine), len(hit), hit[0] if hit else -1)


def test_text_columns_and_fields(tmp_path):
    # --text-columns 3,4 of an MS MARCO documents TSV (docid url title body) and --text-fields
    # title,body of a JSONL give the vectors of the texts "title body"; a line with fewer columns
    # is a bad line naming file:line (or skipped and counted); the selection is part of the job.
    d = model_dir("splade-tiny")
    docs = [("D%d" % i, "http://x/%d" % i, "Title number %d" % i, TEXTS[2][i * 40:i * 40 + 500])
            for i in range(6)]
    docs[2] = ("D2", "http://x/2", "", "body only")
    plain = tmp_path / "plain.tsv"
    plain.write_text("".join("%s\t%s %s\n" % (i, t, b) for i, _, t, b in docs))
    four = tmp_path / "four.tsv"
    four.write_text("".join("\t".join(x) + "\n" for x in docs))
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("".join(json.dumps({"id": i, "url": u, "title": t, "body": b, "text": "x"}) + "\n"
                             for i, u, t, b in docs))
    common = ["expand", "--model", d, "--device", "cpu", "--quiet", "--max-length", "64",
              "--stride", "31", "--threads", "2"]
    outs = {}
    for name, extra in (("plain", ["--input", str(plain)]),
                        ("four", ["--input", str(four), "--text-columns", "3,4"]),
                        ("jsonl", ["--input", str(jsonl), "--text-fields", "title,body"])):
        outs[name] = tmp_path / name
        rc, _, err = run(common + extra + ["--output", str(outs[name])], "")
        assert rc == 0, err
    ids, ref = read_shards(str(outs["plain"]))
    for name in ("four", "jsonl"):
        got_ids, got = read_shards(str(outs[name]))
        assert got_ids == ids
        for k, (a, b) in enumerate(zip(got, ref)):
            assert set(a) == set(b), "%s doc %d: terms differ" % (name, k)
            assert max([abs(a[t] - b[t]) for t in a] + [0.0]) <= 1e-5, "%s doc %d" % (name, k)
    assert json.load(open(outs["four"] / "job.json"))["text_columns"] == "3,4"
    assert json.load(open(outs["jsonl"] / "job.json"))["text_fields"] == "title,body"
    # a rerun with another selection is refused, naming it
    rc, _, err = run(common + ["--input", str(four), "--text-columns", "3", "--output", str(outs["four"])], "")
    assert rc != 0 and "text_columns" in err, err
    # fewer columns than asked: file:line, or skipped and counted
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tu\tt\tbody\nb\tu\tonly three\nc\tu\tt\tbody\n")
    rc, _, err = run(common + ["--input", str(bad), "--text-columns", "3,4", "--output", str(tmp_path / "b1")], "")
    assert rc != 0 and "bad.tsv:2: 3 column(s), --text-columns asks for column 4" in err, err
    rc, _, err = run(common + ["--input", str(bad), "--text-columns", "3,4", "--skip-bad-lines",
                               "--output", str(tmp_path / "b2")], "")
    assert rc == 0 and "1 malformed line(s) skipped" in err, err
    assert read_shards(str(tmp_path / "b2"))[0] == ["a", "c"]
    # options checked
    for extra, msg in ((["--input", str(four), "--text-columns", "3,x"], "--text-columns '3,x'"),
                       (["--input", str(jsonl), "--text-fields", "id"], "'id' is an id key"),
                       (["--input", str(four), "--text-fields", "title"], "--text-fields is for --format jsonl"),
                       (["--input", str(jsonl), "--text-columns", "2"], "--text-columns is for --format tsv")):
        rc, _, err = run(common + extra + ["--output", str(tmp_path / "x")], "")
        assert rc != 0 and msg in err, (extra, err)
    # JSONL: a line with none of the keys is a bad line
    none = tmp_path / "none.jsonl"
    none.write_text(json.dumps({"id": "q", "title": None, "text": "t"}) + "\n")
    rc, _, err = run(common + ["--input", str(none), "--text-fields", "title,body", "--output", str(tmp_path / "n")], "")
    assert rc != 0 and "none.jsonl:1: none of the --text-fields keys" in err, err


def test_info_windows_of_the_job(tmp_path):
    # `spladex info` reports the windows of the whole job, summed over the shards' windows_*
    # attrs: after a kill -9 and a resume (the rerun writes only the missing shards) and with two
    # --worker processes, the same figures as one uninterrupted run (job.json's "windows" holds
    # the last process's docs only). A --stride 0 job's shards record none.
    d = model_dir("splade-tiny")
    texts = [TEXTS[2] * k for k in (1, 3, 0, 1, 6, 2)] + ["short one", TEXTS[2][:300], ""] * 4
    corpus = tmp_path / "c.tsv"
    corpus.write_text("".join("d%d\t%s\n" % (i, t) for i, t in enumerate(texts)))
    common = ["expand", "--model", d, "--input", str(corpus), "--device", "cpu", "--quiet",
              "--max-length", "64", "--stride", "40", "--max-windows", "30", "--threads", "2",
              "--batch-tokens", "192", "--shard-size", "3"]

    def info(out):
        rc, text, err = run(["info", str(out), "--json", "--top", "0"], "")
        assert rc == 0, err
        w = json.loads(text)["windows"]
        return tuple(w.get(k) for k in ("docs", "min", "mean", "max", "capped", "first_capped",
                                         "total", "first_capped_doc", "shards_without"))

    ref = tmp_path / "ref"
    rc, _, err = run(common + ["--output", str(ref)], "")
    assert rc == 0, err
    want = info(ref)
    docs, wmin, mean, wmax, capped, first, total, first_doc, without = want
    assert docs == len(texts) and (wmin, wmax) == (1, 30) and capped >= 2

    # killed after 4 shards' worth of rows, then resumed
    out = tmp_path / "resumed"
    env = dict(os.environ, SPLADEX_TEST_KILL_POINT="append:13")
    p = subprocess.run([spladex_bin()] + common + ["--output", str(out)], env=env,
                       capture_output=True, text=True)
    assert p.returncode in (-9, 137), p.stderr
    rc, _, err = run(common + ["--output", str(out)], "")
    assert rc == 0, err
    job = json.load(open(out / "job.json"))
    assert job["windows"]["docs"] < len(texts)  # the rerun's docs only
    assert info(out)[:6] == want[:6]
    assert first == "d%d" % first_doc and total == round(mean * docs) > docs and without == 0
    assert info(out) == want

    # two workers into one directory
    out = tmp_path / "workers"
    for k in range(2):
        rc, _, err = run(common + ["--output", str(out), "--worker", "%d/2" % k], "")
        assert rc == 0, err
    assert info(out) == want

    # --stride 0: no windows attrs, info says nothing of windows
    out = tmp_path / "plain"
    rc, _, err = run([x for x in common if x not in ("--stride", "40")] + ["--output", str(out)], "")
    assert rc == 0, err
    rc, text, err = run(["info", str(out), "--json", "--top", "0"], "")
    assert rc == 0 and "windows" not in json.loads(text), text
