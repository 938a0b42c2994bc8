"""Interop of the HDF5 shard format (DESIGN.md section 4) with the Python tools that read it.

A shard written by the C writer (`test_shard --write PATH`, which also prints the rows it wrote
as JSON) must read back with plain h5py + scipy.sparse and with anndata's `read_elem`, with no
custom code: same rows, doc ids and vocab as str, the documented attributes. The other way round,
a shard written here with h5py in the documented layout must be accepted by `spladex info`.

Needs the build: SPLADEX_BUILD_DIR (scripts/test.sh sets it) or build/ under the repo root.
"""

import json
import os
import pathlib
import subprocess

import h5py
import numpy as np
import pytest
import scipy.sparse

ROOT = pathlib.Path(__file__).resolve().parents[2]


def build_dir():
    d = pathlib.Path(os.environ.get("SPLADEX_BUILD_DIR", ROOT / "build"))
    if not (d / "test_shard").exists():
        pytest.fail(f"{d}/test_shard not found: build first (cmake --build build) or set SPLADEX_BUILD_DIR")
    return d


def write_sample(tmp_path, float16=False):
    path = tmp_path / "shard-00000.h5"
    cmd = [str(build_dir() / "test_shard"), "--write", str(path)] + (["--float16"] if float16 else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return path, json.loads(out)


def expected_matrix(sample):
    indptr, indices, data = [0], [], []
    for row_indices, row_values in sample["rows"]:
        indices += row_indices
        data += row_values
        indptr.append(len(indices))
    return scipy.sparse.csr_matrix(
        (np.array(data, dtype=np.float32), np.array(indices, dtype=np.int32), np.array(indptr, dtype=np.int64)),
        shape=(sample["n_docs"], sample["vocab_size"]),
    )


def assert_same_csr(got, want):
    assert got.shape == want.shape
    got = got.tocsr()
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, want.data)


def test_h5py_scipy_reads_c_shard(tmp_path):
    path, sample = write_sample(tmp_path)
    want = expected_matrix(sample)
    assert sum(1 for r in sample["rows"] if not r[0]) > 0, "the sample must contain empty rows"
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert a["format"] == "spladex-shard" and isinstance(a["format"], str)
        assert a["format_version"] == 1
        assert a["model"] == sample["model"]
        for key in ("max_length", "top_k", "first_doc", "n_docs", "input_start", "input_end"):
            assert a[key] == sample[key], key
        assert a["threshold"] == np.float32(sample["threshold"])
        v = f["vectors"]
        assert v.attrs["encoding-type"] == "csr_matrix"
        assert v.attrs["encoding-version"] == "0.1.0"
        assert v.attrs["shape"].dtype == np.int64
        assert list(v.attrs["shape"]) == [sample["n_docs"], sample["vocab_size"]]
        assert v["data"].dtype == np.float32
        assert v["indices"].dtype == np.int32
        assert v["indptr"].dtype == np.int64
        for name in ("vectors/data", "vectors/indices", "vectors/indptr", "doc_ids", "vocab"):
            d = f[name]
            assert d.chunks is not None and d.compression == "gzip" and d.shuffle, name
            assert d.maxshape == (None,), name
        m = scipy.sparse.csr_matrix((v["data"][:], v["indices"][:], v["indptr"][:]), shape=tuple(v.attrs["shape"]))
        assert_same_csr(m, want)
        for row in range(m.shape[0]):  # ascending within each row
            idx = m.indices[m.indptr[row] : m.indptr[row + 1]]
            assert np.all(np.diff(idx) > 0)
        ids = list(f["doc_ids"].asstr()[:])
        vocab = list(f["vocab"].asstr()[:])
        assert ids == sample["doc_ids"]
        assert vocab == sample["vocab"]
        assert any(not s.isascii() for s in ids) and any(not s.isascii() for s in vocab)
        assert h5py.check_string_dtype(f["doc_ids"].dtype).encoding == "utf-8"
        assert h5py.check_string_dtype(f["vocab"].dtype).length is None  # variable length


def test_anndata_read_elem(tmp_path):
    anndata = pytest.importorskip("anndata")
    try:
        from anndata.io import read_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import read_elem
    path, sample = write_sample(tmp_path)
    with h5py.File(path, "r") as f:
        m = read_elem(f["vectors"])
        assert isinstance(m, scipy.sparse.csr_matrix) or getattr(m, "format", None) == "csr", type(m)
        assert m.dtype == np.float32
        assert_same_csr(m, expected_matrix(sample))
        ids = read_elem(f["doc_ids"])
        vocab = read_elem(f["vocab"])
        assert [str(x) for x in ids] == sample["doc_ids"] and all(isinstance(x, str) for x in ids)
        assert [str(x) for x in vocab] == sample["vocab"]
    assert anndata is not None


def test_float16_option(tmp_path):
    # float16 data (shard_meta.float16) reads with h5py; scipy.sparse has no float16, so a
    # reader casts: csr_matrix((data.astype(np.float32), ...)).
    path, sample = write_sample(tmp_path, float16=True)
    want = expected_matrix(sample)
    with h5py.File(path, "r") as f:
        v = f["vectors"]
        assert v["data"].dtype == np.float16
        data = v["data"][:]
        np.testing.assert_array_equal(data, want.data.astype(np.float16))  # round to nearest even
        m = scipy.sparse.csr_matrix((data.astype(np.float32), v["indices"][:], v["indptr"][:]), shape=tuple(v.attrs["shape"]))
        np.testing.assert_array_equal(m.indices, want.indices)


def spladex_bin():
    b = os.environ.get("SPLADEX_BIN")
    if b and os.path.exists(b):
        return b
    b = build_dir() / "spladex"
    if not b.exists():
        pytest.fail(f"{b} not found: build first or set SPLADEX_BIN")
    return str(b)


def test_spladex_info_reads_h5py_written_shard(tmp_path):
    """The reverse direction: a shard written by h5py in the documented layout is accepted."""
    rng = np.random.default_rng(7)
    n_docs, vocab_size = 40, 100
    rows = []
    for r in range(n_docs):
        k = 0 if r % 5 == 0 else int(rng.integers(1, 20))
        idx = np.sort(rng.choice(vocab_size, size=k, replace=False)).astype(np.int32)
        rows.append((idx, rng.random(k, dtype=np.float32) + 0.5))
    indptr = np.cumsum([0] + [len(i) for i, _ in rows]).astype(np.int64)
    str_t = h5py.string_dtype("utf-8")
    path = tmp_path / "shard-00000.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "spladex-shard"
        f.attrs["format_version"] = np.int32(1)
        f.attrs["model"] = "test/model"
        f.attrs["max_length"] = np.int32(128)
        f.attrs["threshold"] = np.float32(0)
        f.attrs["top_k"] = np.int32(0)
        for key in ("first_doc", "input_start", "input_end"):
            f.attrs[key] = np.int64(0)
        f.attrs["n_docs"] = np.int64(n_docs)
        g = f.create_group("vectors")
        g.attrs["encoding-type"] = "csr_matrix"
        g.attrs["encoding-version"] = "0.1.0"
        g.attrs["shape"] = np.array([n_docs, vocab_size], dtype=np.int64)
        g["data"] = np.concatenate([v for _, v in rows]).astype(np.float32)
        g["indices"] = np.concatenate([i for i, _ in rows]).astype(np.int32)
        g["indptr"] = indptr
        f.create_dataset("doc_ids", data=[f"d{r}-ü" for r in range(n_docs)], dtype=str_t)
        f.create_dataset("vocab", data=[f"w{v}" for v in range(vocab_size)], dtype=str_t)
    out = subprocess.run([spladex_bin(), "info", "--json", "--top", "3", str(path)], check=True, capture_output=True, text=True).stdout
    info = json.loads(out)
    df = np.zeros(vocab_size)
    for idx, _ in rows:
        df[idx] += 1
    assert info["docs"] == n_docs
    assert info["nnz"] == int(indptr[-1])
    assert info["empty_docs"] == sum(1 for i, _ in rows if len(i) == 0)
    assert info["flops"] == pytest.approx(float(np.sum((df / n_docs) ** 2)), rel=1e-12)
    assert info["top_terms"][0]["df"] == int(df.max())
    assert info["top_terms"][0]["term"] == f"w{info['top_terms'][0]['id']}"
    verify = subprocess.run([spladex_bin(), "verify", str(tmp_path)], capture_output=True, text=True)
    assert verify.returncode == 1 and "job.json: missing" in verify.stdout  # no job.json here
