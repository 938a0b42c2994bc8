#!/usr/bin/env python3
"""Helpers for the expand shell tests (not a test by itself).

  shards.py corpus OUT N SEED            write a deterministic synthetic TSV corpus of N passages
  shards.py compare REF DIR CORPUS       DIR's shards equal REF's: same shard files, no .tmp left,
                                         doc_ids equal to the corpus ids in order (no duplicate,
                                         no gap), same attrs, same sparse rows (weights within
                                         1e-5 + 1e-4 * |w|: the CPU encoder's sums depend slightly
                                         on how a batch was cut, which a resume changes)
  shards.py check-clean DIR              no file with a final shard name is incomplete (a DIR that
                                         does not exist is clean)
  shards.py same-rows A B                A and B hold the same doc_ids and rows (attrs ignored)
  shards.py same-row DIR ID1 ID2         docs ID1 and ID2 of DIR have the same vector
  shards.py near-rows REF DIR REL        DIR holds REF's doc_ids, and each row's weights within
                                         REL x the REF row's largest weight of REF's (the GPU
                                         test's fp16 / bf16 rule; prints the largest ratio)
  shards.py ids DIR                      print every doc id, one per line (Python ascii())
Exit status 0 when the check holds; the reason on stderr otherwise.
"""
import os
import random
import sys

WORDS = ("the of and a to in is was for on as with by he at from his an were are which this be "
         "search engine sparse vector retrieval neural passage query document index ranking "
         "model token lexical expansion weight corpus shard resume kill worker batch").split()


def make_corpus(path, n, seed):
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            k = 0 if i % 97 == 13 else rng.randint(1, 60)  # a few empty passages
            f.write(f"doc{i}\t" + " ".join(rng.choice(WORDS) for _ in range(k)) + "\n")


def corpus_ids(path):
    with open(path, "rb") as f:
        return [line.split(b"\t", 1)[0].decode("utf-8") for line in f if line.strip()]


def shard_names(d):
    return sorted(x for x in os.listdir(d) if x.startswith("shard-"))


def load(path):
    import h5py
    import numpy as np
    with h5py.File(path, "r") as f:
        v = f["vectors"]
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
        ids = [x.decode("utf-8") if isinstance(x, bytes) else x for x in f["doc_ids"][:]]
        return attrs, ids, v["indptr"][:], v["indices"][:], np.asarray(v["data"][:], dtype=np.float64)


def compare(ref, d, corpus):
    import numpy as np
    a, b = shard_names(ref), shard_names(d)
    if any(x.endswith(".tmp") for x in b):
        return f"{d}: leftover .tmp files: {[x for x in b if x.endswith('.tmp')]}"
    if a != b:
        return f"shard files differ: {ref}: {a} vs {d}: {b}"
    all_ids = []
    worst = 0.0
    for name in a:
        ra, rids, rp, ri, rv = load(os.path.join(ref, name))
        da, dids, dp, di, dv = load(os.path.join(d, name))
        if ra != da:
            return f"{name}: attrs differ: {ra} vs {da}"
        if rids != dids:
            return f"{name}: doc_ids differ"
        all_ids += dids
        n = len(rids)
        for r in range(n):
            x = dict(zip(ri[rp[r]:rp[r + 1]].tolist(), rv[rp[r]:rp[r + 1]].tolist()))
            y = dict(zip(di[dp[r]:dp[r + 1]].tolist(), dv[dp[r]:dp[r + 1]].tolist()))
            for t in set(x) | set(y):
                wx, wy = x.get(t, 0.0), y.get(t, 0.0)
                diff = abs(wx - wy)
                worst = max(worst, diff)
                if diff > 1e-5 + 1e-4 * abs(wx):
                    return f"{name} row {r} ({rids[r]}) term {t}: {wx} vs {wy}"
    want = corpus_ids(corpus)
    if all_ids != want:
        dup = len(all_ids) - len(set(all_ids))
        return f"doc ids are not the corpus in order: {len(all_ids)} vs {len(want)} ({dup} duplicates)"
    print(f"shards.py: {len(a)} shards, {len(all_ids)} docs equal (max weight difference {worst:.3g})")
    return None


def rows(d):
    out = []
    for name in shard_names(d):
        if name.endswith(".tmp"):
            continue
        _, ids, p, i, v = load(os.path.join(d, name))
        for r, doc in enumerate(ids):
            out.append((doc, dict(zip(i[p[r]:p[r + 1]].tolist(), v[p[r]:p[r + 1]].tolist()))))
    return out


def same_vector(x, y):
    return all(abs(x.get(t, 0.0) - y.get(t, 0.0)) <= 1e-5 + 1e-4 * abs(x.get(t, 0.0))
               for t in set(x) | set(y))


def same_rows(a, b):
    ra, rb = rows(a), rows(b)
    if [x[0] for x in ra] != [x[0] for x in rb]:
        return f"doc ids differ: {[x[0] for x in ra][:5]}... vs {[x[0] for x in rb][:5]}..."
    for (doc, x), (_, y) in zip(ra, rb):
        if not same_vector(x, y):
            return f"doc {doc!r}: vectors differ"
    print(f"shards.py: {len(ra)} docs with the same rows")
    return None


def near_rows(ref, d, rel):
    ra, rb = rows(ref), rows(d)
    if [x[0] for x in ra] != [x[0] for x in rb]:
        return f"doc ids differ: {[x[0] for x in ra][:5]}... vs {[x[0] for x in rb][:5]}..."
    worst, bound = 0.0, float(rel)
    for (doc, x), (_, y) in zip(ra, rb):
        top = max(x.values(), default=0.0)
        err = max((abs(x.get(t, 0.0) - y.get(t, 0.0)) for t in set(x) | set(y)), default=0.0)
        ratio = err / top if top > 0 else (0.0 if err == 0 else float("inf"))
        worst = max(worst, ratio)
        if ratio > bound:
            return f"doc {doc!r}: weights differ by {err:.3g}, {ratio:.3g} of its largest (bound {bound})"
    print(f"shards.py: {len(ra)} docs within {bound} (largest {worst:.3g})")
    return None


def same_row(d, id1, id2):
    r = dict(rows(d))
    if id1 not in r or id2 not in r:
        return f"{id1!r} or {id2!r} missing"
    if not r[id1]:
        return f"{id1!r} has an empty vector"
    return None if same_vector(r[id1], r[id2]) else f"{id1!r} and {id2!r} differ"


def check_clean(d):
    import h5py
    if not os.path.isdir(d):  # killed before it made the directory: nothing half-written
        return None
    for name in shard_names(d):
        if name.endswith(".tmp"):
            continue
        try:
            with h5py.File(os.path.join(d, name), "r") as f:
                n = int(f.attrs["n_docs"])
                if len(f["doc_ids"]) != n or len(f["vectors/indptr"]) != n + 1:
                    return f"{name}: incomplete"
        except Exception as e:  # noqa: BLE001
            return f"{name}: unreadable: {e}"
    return None


def main():
    cmd = sys.argv[1]
    if cmd == "corpus":
        make_corpus(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return 0
    if cmd == "ids":
        for doc, _ in rows(sys.argv[2]):
            print(ascii(doc))
        return 0
    funcs = {"compare": compare, "check-clean": check_clean, "same-rows": same_rows,
             "same-row": same_row, "near-rows": near_rows}
    err = funcs[cmd](*sys.argv[2:])
    if err:
        print(f"shards.py {cmd}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
