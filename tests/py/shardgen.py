"""shardgen: writes spladex shard directories directly with h5py (DESIGN.md section 4, io/shard.h,
io/jobfile.h), so the export tests and benchmarks do not depend on the expand job or a model.

    write_dir(out, doc_ids, matrix, vocab, shard_size)   job.json + shard-00000.h5 ...
    random_matrix(rng, n_docs, vocab_size, terms_per_doc)  a scipy CSR of SPLADE-like weights
    quantize(values, scale)                              naver/splade's np.rint(w * scale)

Layout written exactly as documented: root attrs format="spladex-shard", format_version=1, model,
max_length, threshold, top_k, first_doc, n_docs, input_start, input_end; /vectors (attrs
encoding-type="csr_matrix", encoding-version="0.1.0", shape int64 [n_docs, V]) with data float32,
indices int32 (ascending per row), indptr int64; /doc_ids and /vocab variable-length UTF-8
strings; chunked, shuffle + deflate.
"""
import json
import os

import h5py
import numpy as np
import scipy.sparse as sp

STR = h5py.string_dtype(encoding="utf-8")


def quantize(values, scale=100):
    """Integer weights as naver/splade's Anserini export computes them: np.rint on the float32
    product of float32 data and the scale (NumPy keeps float32 * Python scalar in float32);
    rint rounds ties to even."""
    return np.rint(np.asarray(values, dtype=np.float32) * np.float32(scale)).astype(np.int64)


def _chunk(n, cap):
    return (max(1, min(n, cap)),)


def write_shard(path, first_doc, doc_ids, matrix, vocab, model="test/model", max_length=256,
                threshold=0.0, top_k=0, dtype=np.float32):
    """Writes one shard holding the rows of matrix (scipy CSR, float) for doc_ids, docs
    [first_doc, first_doc + n) of the job."""
    m = sp.csr_matrix(matrix)
    m.sort_indices()
    n = m.shape[0]
    assert len(doc_ids) == n and m.shape[1] == len(vocab)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "spladex-shard"
        f.attrs["format_version"] = np.int32(1)
        f.attrs["model"] = model
        f.attrs["max_length"] = np.int32(max_length)
        f.attrs["threshold"] = np.float32(threshold)
        f.attrs["top_k"] = np.int32(top_k)
        f.attrs["first_doc"] = np.int64(first_doc)
        f.attrs["n_docs"] = np.int64(n)
        f.attrs["input_start"] = np.int64(0)
        f.attrs["input_end"] = np.int64(0)
        g = f.create_group("vectors")
        g.attrs["encoding-type"] = "csr_matrix"
        g.attrs["encoding-version"] = "0.1.0"
        g.attrs["shape"] = np.array([n, len(vocab)], dtype=np.int64)
        opts = dict(shuffle=True, compression="gzip", compression_opts=1, maxshape=(None,))
        nnz = m.nnz
        g.create_dataset("data", data=m.data.astype(dtype), chunks=_chunk(nnz, 65536), **opts)
        g.create_dataset("indices", data=m.indices.astype(np.int32), chunks=_chunk(nnz, 65536),
                         **opts)
        g.create_dataset("indptr", data=m.indptr.astype(np.int64), chunks=_chunk(n + 1, 16384),
                         **opts)
        f.create_dataset("doc_ids", data=np.array(list(doc_ids), dtype=object), dtype=STR,
                         chunks=_chunk(n, 4096), **opts)
        f.create_dataset("vocab", data=np.array(list(vocab), dtype=object), dtype=STR,
                         chunks=_chunk(len(vocab), 4096), **opts)


def write_job(out, shard_size, n_docs_total=None, model="test/model"):
    """Writes out/job.json with io/jobfile.h's fields; n_docs_total None leaves the totals out
    (a job that has not finished reading its input)."""
    job = {"job_version": 1, "version": "0.1.0", "model": model, "model_sha256": "0" * 64,
           "input": "/dev/null", "input_size": 0, "format": "tsv", "max_length": 256,
           "threshold": 0, "top_k": 0, "shard_size": int(shard_size), "precision": "fp32"}
    if n_docs_total is not None:
        job["n_docs_total"] = int(n_docs_total)
        job["n_shards"] = -(-int(n_docs_total) // int(shard_size))
    with open(os.path.join(out, "job.json"), "w") as f:
        json.dump(job, f)


def write_dir(out, doc_ids, matrix, vocab, shard_size, job=True, skip=(), partial=(),
              model="test/model", dtype=np.float32):
    """Writes a shard directory: shard s holds docs [s*S, (s+1)*S). Shards in skip are not
    written (as if their worker had not run), shards in partial are left as .tmp files.
    Returns the number of shards."""
    os.makedirs(out, exist_ok=True)
    m = sp.csr_matrix(matrix)
    n = m.shape[0]
    n_shards = -(-n // shard_size)
    for s in range(n_shards):
        if s in skip:
            continue
        a, b = s * shard_size, min(n, (s + 1) * shard_size)
        path = os.path.join(out, "shard-%05d.h5" % s)
        if s in partial:
            path += ".tmp"
        write_shard(path, a, doc_ids[a:b], m[a:b], vocab, model=model, dtype=dtype)
    if job:
        write_job(out, shard_size, n, model=model)
    return n_shards


def random_matrix(rng, n_docs, vocab_size, terms_per_doc, empty_every=0):
    """SPLADE-like doc vectors: ~terms_per_doc distinct zipf-ish term ids per doc, positive
    float32 weights mostly in (0, 3], some below 0.005 (they quantize to 0). Every
    empty_every-th doc has no terms at all."""
    indptr = [0]
    indices, data = [], []
    ranks = np.arange(1, vocab_size + 1, dtype=np.float64)
    p = 1.0 / ranks ** 1.1
    p /= p.sum()
    perm = rng.permutation(vocab_size)
    for d in range(n_docs):
        k = 0 if (empty_every and d % empty_every == 0) else int(rng.integers(1, 2 * terms_per_doc))
        k = min(k, vocab_size)
        ids = np.unique(perm[rng.choice(vocab_size, size=k, p=p)]) if k else np.zeros(0, int)
        w = rng.gamma(1.2, 0.6, size=len(ids)).astype(np.float32)
        tiny = rng.random(len(ids)) < 0.1
        w[tiny] = rng.random(int(tiny.sum())).astype(np.float32) * 0.006
        indices.append(ids)
        data.append(w)
        indptr.append(indptr[-1] + len(ids))
    indices = np.concatenate(indices) if indices else np.zeros(0, np.int32)
    data = np.concatenate(data) if data else np.zeros(0, np.float32)
    return sp.csr_matrix((data, indices.astype(np.int32), np.array(indptr, dtype=np.int64)),
                         shape=(n_docs, vocab_size), dtype=np.float32)


def quantized_vectors(matrix, vocab, scale=100):
    """{row: {term: int}} of the weights that quantize to >= 1, the export's reference."""
    m = sp.csr_matrix(matrix)
    out = []
    for d in range(m.shape[0]):
        a, b = m.indptr[d], m.indptr[d + 1]
        q = quantize(m.data[a:b], scale)
        out.append({vocab[int(v)]: int(x) for v, x in zip(m.indices[a:b], q) if x >= 1})
    return out
