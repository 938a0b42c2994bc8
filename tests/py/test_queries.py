"""`spladex queries`: topics to the query files of Anserini, PISA and Seismic (DESIGN.md section 7).

The reference vector of each query is what `spladex encode --json` prints for the same text with
the same model (float32 weights, %.9g; equal to 1e-5 absolute, as another batch composition
rounds the CPU's GEMMs differently), and the quantized formats must be exactly the `jsonl` output
of the same run quantized as naver/splade does (np.rint of the float32 product). Each format is parsed here the way its engine parses it: Anserini splits the query on
white space and boosts each term by its count (BagOfWordsQueryGenerator); PISA splits `ID:terms`
at the first colon and, with --weighted, weights each term by its count.
"""
import collections
import gzip
import json
import os
import subprocess

import numpy as np
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("SPLADEX_BIN", os.path.join(ROOT, "build", "spladex"))
MODEL = os.environ.get("SPLADEX_MODEL_TINY", os.path.join(ROOT, "models", "splade-tiny"))

pytestmark = pytest.mark.skipif(
    not os.path.exists(BIN) or not os.path.exists(os.path.join(MODEL, "config.json")),
    reason="needs the spladex binary and models/splade-tiny")

SPECIALS = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
TOPICS = [("1", "what is a dog"), ("2", "capital of France?"), ("q3", "how do plants make food"),
          ("1048585", "what is paula deen's brother"), ("5", "café au lait ünïcode 文書"),
          ("6", "Tab\tinside the text"), ("7", "\U0001F600 \u2603 \u2708")]  # [UNK] gets a weight


def run(*args, check=True):
    p = subprocess.run([BIN, *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError("spladex %s failed (%d):\n%s" % (args, p.returncode, p.stderr))
    return p


def queries(tmp_path, fmt, topics_path, *extra, name=None):
    out = str(tmp_path / (name or ("q." + fmt)))
    p = run("queries", "--model", MODEL, "--input", topics_path, "--format", fmt, "--output",
            out, "--device", "cpu", *extra)
    return out, p


@pytest.fixture(scope="module")
def topics(tmp_path_factory):
    d = tmp_path_factory.mktemp("queries")
    tsv = str(d / "topics.tsv")
    with open(tsv, "w", encoding="utf-8") as f:
        for qid, text in TOPICS:
            f.write("%s\t%s\n" % (qid, text))
    # The reference: spladex encode --json, each text an argument (the TSV text is everything
    # after the first tab, so a tab inside the text stays in it).
    texts = [t for _, t in TOPICS]
    p = subprocess.run([BIN, "encode", "--model", MODEL, "--json", "--device", "cpu", *texts],
                       capture_output=True, text=True, check=True)
    ref = [json.loads(line)["vector"] for line in p.stdout.splitlines()]
    return {"dir": d, "tsv": tsv, "ref": [{t: np.float32(w) for t, w in v.items()} for v in ref]}


def quantize(vector, scale=100.0, drop_special=False):
    out = {}
    for t, w in vector.items():
        if drop_special and t in SPECIALS:
            continue
        q = int(np.rint(np.float32(w) * np.float32(scale)))
        if q >= 1:
            out[t] = q
    return out


def parse_repeated(path, separator):
    """qid, separator, white-space tokens; a token's weight is its count."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            qid, text = line.rstrip("\n").split(separator, 1)
            out.append((qid, dict(collections.Counter(text.split()))))
    return out


def parse_anserini(path):
    """Anserini -topicReader TsvString + -pretokenized: qid, tab, tokens; each distinct token
    is boosted by its count (BagOfWordsQueryGenerator)."""
    return parse_repeated(path, "\t")


def parse_pisa(path):
    """PISA `queries --weighted`: ID before the first colon, tokens, weight = count."""
    return parse_repeated(path, ":")


def parse_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [(d["id"], d["vector"]) for d in map(json.loads, f)]


def float_vectors(topics, tmp_path):
    """The float32 vectors of `--format jsonl` over the TSV topics (the same batches as every
    other format's run)."""
    out, _ = queries(tmp_path, "jsonl", topics["tsv"], name="floats.jsonl")
    return [{t: np.float32(w) for t, w in v.items()} for _, v in parse_jsonl(out)]


def test_jsonl_is_the_float32_vector_of_encode(topics, tmp_path):
    out, _ = queries(tmp_path, "jsonl", topics["tsv"])
    got = parse_jsonl(out)
    assert [q for q, _ in got] == [q for q, _ in TOPICS]
    for (_, vector), ref in zip(got, topics["ref"]):
        assert list(vector) == list(ref)  # the same terms, ascending vocab id
        got_w = np.array([vector[t] for t in ref], dtype=np.float32)
        ref_w = np.array(list(ref.values()), dtype=np.float32)
        np.testing.assert_allclose(got_w, ref_w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fmt,parse", [("jsonl-int", parse_jsonl), ("anserini", parse_anserini),
                                       ("pisa", parse_pisa)])
def test_quantized_formats_carry_the_export_quantization(topics, tmp_path, fmt, parse):
    floats = float_vectors(topics, tmp_path)
    out, p = queries(tmp_path, fmt, topics["tsv"])
    got = parse(out)
    assert [q for q, _ in got] == [q for q, _ in TOPICS]
    for (_, vector), ref in zip(got, floats):
        assert vector == quantize(ref)
        assert all(type(w) is int and w >= 1 for w in vector.values())
    meta = json.load(open(out + ".meta.json"))
    assert meta["kind"] == "queries" and meta["format"] == fmt and meta["weights"] == "int"
    assert meta["vectors"] == len(TOPICS) and meta["quant_scale"] == 100
    assert meta["nnz"] == sum(len(quantize(r)) for r in floats)
    assert meta["max_length"] == 256 and meta["drop_special"] is False


def test_anserini_and_pisa_lines_are_exactly_the_repetitions(topics, tmp_path):
    a, _ = queries(tmp_path, "anserini", topics["tsv"])
    first = open(a, encoding="utf-8").readline()
    want = quantize(float_vectors(topics, tmp_path)[0])
    assert first == "1\t" + " ".join(" ".join([t] * w) for t, w in want.items()) + "\n"
    p, _ = queries(tmp_path, "pisa", topics["tsv"])
    assert open(p, encoding="utf-8").readline() == "1:" + first.split("\t", 1)[1]


def test_quant_scale_and_drop_special(topics, tmp_path):
    floats = float_vectors(topics, tmp_path)
    out, _ = queries(tmp_path, "jsonl-int", topics["tsv"], "--quant-scale", "51.2",
                     "--drop-special")
    got = parse_jsonl(out)
    for (_, vector), ref in zip(got, floats):
        assert vector == quantize(ref, 51.2, drop_special=True)
        assert not SPECIALS & set(vector)
    meta = json.load(open(out + ".meta.json"))
    assert meta["drop_special"] is True and set(meta["dropped_terms"]) == SPECIALS
    # splade-tiny weights [UNK] in query 7 (characters outside its vocabulary): the option must
    # change something
    kept = [quantize(r, 51.2) for r in floats]
    assert any(SPECIALS & set(v) for v in kept), "fixture too weak: no special token weighted"


def test_jsonl_topics_gzip_and_bad_lines(topics, tmp_path):
    beir = str(tmp_path / "queries.jsonl.gz")
    with gzip.open(beir, "wt", encoding="utf-8") as f:
        for qid, text in TOPICS[:3]:
            f.write(json.dumps({"_id": qid, "text": text, "metadata": {}}) + "\n")
    out, _ = queries(tmp_path, "jsonl-int", beir, name="beir.jsonl")
    got = parse_jsonl(out)
    assert [q for q, _ in got] == [q for q, _ in TOPICS[:3]]
    floats, _ = queries(tmp_path, "jsonl", beir, name="beir-float.jsonl")
    assert [v for _, v in got] == [quantize(v) for _, v in parse_jsonl(floats)]

    bad = str(tmp_path / "bad.tsv")
    with open(bad, "w") as f:
        f.write("1\twhat is a dog\nno tab on this line\n2\tcapital of France?\n")
    p = run("queries", "--model", MODEL, "--input", bad, "--format", "pisa", "--output",
            str(tmp_path / "bad.pisa"), "--device", "cpu", check=False)
    assert p.returncode != 0 and "bad.tsv:2" in p.stderr, p.stderr
    assert not os.path.exists(str(tmp_path / "bad.pisa"))
    out, p = queries(tmp_path, "pisa", bad, "--skip-bad-lines", name="skip.pisa")
    assert [q for q, _ in parse_pisa(out)] == ["1", "2"]
    assert "skipped 1 bad line" in p.stderr


def test_ids_a_format_cannot_carry_are_refused(tmp_path):
    t = str(tmp_path / "colon.tsv")
    with open(t, "w") as f:
        f.write("a:b\twhat is a dog\n")
    p = run("queries", "--model", MODEL, "--input", t, "--format", "pisa", "--output",
            str(tmp_path / "x.pisa"), "--device", "cpu", check=False)
    assert p.returncode != 0 and "colon.tsv:1" in p.stderr and "':'" in p.stderr, p.stderr
    queries(tmp_path, "anserini", t)  # a colon is fine in Anserini's TSV


def test_bad_arguments(topics, tmp_path):
    assert run("queries", "--help").stdout.startswith("usage: spladex queries")
    base = ["queries", "--model", MODEL, "--input", topics["tsv"], "--output",
            str(tmp_path / "x")]
    for extra in ([], ["--format", "trec"], ["--format", "pisa", "--quant-scale", "0"],
                  ["--format", "pisa", "--input-format", "csv"],
                  ["--format", "pisa", "--precision", "fp8"]):
        p = run(*base, *extra, check=False)
        assert p.returncode == 2, (extra, p.stderr)


def test_threshold_and_top_k_apply_before_quantization(topics, tmp_path):
    floats = float_vectors(topics, tmp_path)
    out, _ = queries(tmp_path, "jsonl", topics["tsv"], "--top-k", "3", name="top3.jsonl")
    for (_, vector), ref in zip(parse_jsonl(out), floats):
        best = sorted(ref.items(), key=lambda kv: -kv[1])[:3]
        assert {t: np.float32(w) for t, w in vector.items()} == dict(best)
    out, _ = queries(tmp_path, "jsonl-int", topics["tsv"], "--threshold", "0.5",
                     name="t05.jsonl")
    for (_, vector), ref in zip(parse_jsonl(out), floats):
        assert vector == quantize({t: w for t, w in ref.items() if w > 0.5})
    assert json.load(open(out + ".meta.json"))["threshold"] == 0.5


def test_jsonl_topics_with_qid_and_query_keys(topics, tmp_path):
    # {"qid", "query"} topics (the corpus reader's topic_keys): "id" still wins over "qid" and
    # "text" over "query", as for a corpus; a line with neither id key is a bad line naming it.
    t = str(tmp_path / "topics.jsonl")
    with open(t, "w", encoding="utf-8") as f:
        f.write(json.dumps({"qid": "1", "query": TOPICS[0][1]}) + "\n")
        f.write(json.dumps({"qid": 2, "query": TOPICS[1][1]}) + "\n")
        f.write(json.dumps({"qid": "x", "id": "q3", "query": "ignored", "text": TOPICS[2][1]})
                + "\n")
    out, _ = queries(tmp_path, "jsonl-int", t, name="qid.jsonl")
    got = parse_jsonl(out)
    assert [q for q, _ in got] == ["1", "2", "q3"]
    tsv = str(tmp_path / "three.tsv")  # the same texts in the same batch: the same bits
    with open(tsv, "w", encoding="utf-8") as f:
        f.write("".join("%s\t%s\n" % (q, text) for q, text in TOPICS[:3]))
    same, _ = queries(tmp_path, "jsonl-int", tsv, name="tsv.jsonl")
    assert [v for _, v in got] == [v for _, v in parse_jsonl(same)]
    with open(t, "a", encoding="utf-8") as f:
        f.write(json.dumps({"query": "no id"}) + "\n")
    p = run("queries", "--model", MODEL, "--input", t, "--format", "pisa", "--output",
            str(tmp_path / "x.pisa"), "--device", "cpu", check=False)
    assert p.returncode != 0 and "topics.jsonl:4" in p.stderr and '"qid"' in p.stderr, p.stderr
