"""Shards whose data / indices chunks were compressed by the writer's own threads (io/shard_writer.c,
shard_meta.compress_threads; H5Dwrite_chunk of chunks shuffled + deflated with zlib) read back
with plain h5py + scipy.sparse and anndata's read_elem exactly like shards written through HDF5's
own filters (compress_threads -1): the same rows, the same decoded datasets, the dataset keeps its
shuffle + gzip pipeline. h5py ships its own libhdf5 and zlib, so this also checks the chunks with
a decoder other than the one that wrote them.

Sizes: no rows, one row, the 50-row sample (one partial chunk), and 12000 rows (~150k entries:
two full chunks and a partial one). Chunk-boundary cases (exactly one chunk, one chunk + 1
entry) are in tests/test_shard.c, which also compares the stored chunk bytes.

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


def shard_test_binary():
    d = pathlib.Path(os.environ.get("SPLADEX_BUILD_DIR", ROOT / "build"))
    b = d / "test_shard"
    if not b.exists() and os.environ.get("SPLADEX_BIN"):
        b = pathlib.Path(os.environ["SPLADEX_BIN"]).parent / "test_shard"
    if not b.exists():
        pytest.fail(f"{b} not found: build first (cmake --build build) or set SPLADEX_BUILD_DIR")
    return str(b)


def write(tmp_path, name, threads, rows, float16=False):
    path = tmp_path / name
    cmd = [shard_test_binary(), "--write", str(path), "--threads", str(threads), "--rows", str(rows)]
    if float16:
        cmd.append("--float16")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return path, json.loads(out)


def expected(sample):
    indptr, indices, data = [0], [], []
    for row_indices, row_values in sample["rows"]:
        indices += row_indices
        data += row_values
        indptr.append(len(indices))
    return (np.array(data, dtype=np.float32), np.array(indices, dtype=np.int32),
            np.array(indptr, dtype=np.int64))


def read_h5py(path):
    with h5py.File(path, "r") as f:
        v = f["vectors"]
        for name in ("data", "indices"):
            d = v[name]
            assert d.compression == "gzip" and d.compression_opts == 4 and d.shuffle, name
            assert d.chunks == (65536,) and d.maxshape == (None,), name
        m = scipy.sparse.csr_matrix(
            (v["data"][:].astype(np.float32), v["indices"][:], v["indptr"][:]), shape=tuple(v.attrs["shape"])
        )
        return m, v["data"][:], list(f["doc_ids"].asstr()[:])


@pytest.mark.parametrize("rows", [0, 1, 50, 12000])
@pytest.mark.parametrize("float16", [False, True])
def test_parallel_shard_reads_like_sync(tmp_path, rows, float16):
    sync_path, sample = write(tmp_path, "sync.h5", -1, rows, float16)
    want_data, want_indices, want_indptr = expected(sample)
    if rows == 12000:
        assert len(want_data) > 2 * 65536, "the big sample must span several chunks"
    sync_m, sync_data, sync_ids = read_h5py(sync_path)
    for threads in (1, 3):
        path, sample2 = write(tmp_path, f"par{threads}.h5", threads, rows, float16)
        assert sample2 == sample
        m, data, ids = read_h5py(path)
        assert m.shape == (rows, sample["vocab_size"])
        np.testing.assert_array_equal(m.indptr, want_indptr)
        np.testing.assert_array_equal(m.indices, want_indices)
        if float16:
            np.testing.assert_array_equal(data, want_data.astype(np.float16))
        else:
            np.testing.assert_array_equal(m.data, want_data)
        assert ids == sample["doc_ids"]
        # identical to the shard HDF5's filters wrote, row by row
        assert data.dtype == sync_data.dtype and data.tobytes() == sync_data.tobytes()
        for r in range(rows):
            a, b = m.getrow(r), sync_m.getrow(r)
            if r < 200 or r % 97 == 0:
                np.testing.assert_array_equal(a.indices, b.indices)
                np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(m.indptr, sync_m.indptr)
        np.testing.assert_array_equal(m.indices, sync_m.indices)
        assert ids == sync_ids


def test_anndata_reads_parallel_shard(tmp_path):
    anndata = pytest.importorskip("anndata")
    try:
        from anndata.io import read_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import read_elem
    path, sample = write(tmp_path, "par.h5", 2, 12000)
    want_data, want_indices, want_indptr = expected(sample)
    with h5py.File(path, "r") as f:
        m = read_elem(f["vectors"])
        assert m.dtype == np.float32
        m = m.tocsr()
        np.testing.assert_array_equal(m.indptr, want_indptr)
        np.testing.assert_array_equal(m.indices, want_indices)
        np.testing.assert_array_equal(m.data, want_data)
        assert [str(x) for x in read_elem(f["doc_ids"])] == sample["doc_ids"]
    assert anndata is not None
