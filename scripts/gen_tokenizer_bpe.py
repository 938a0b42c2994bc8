#!/usr/bin/env python3
"""Trains RoBERTa-style byte-level BPE tokenizers with HF tokenizers on local text.

  fuzz   tests/fixtures/tokenizer/bpe/tokenizer.json: 1,000 tokens (the 256 byte characters,
         RoBERTa's five specials, ~740 merges) trained on the stdlib's docstrings
         (gen_tokenizer_fixture.py's stdlib_corpus) and the gettext translations under
         /usr/share/locale (gen_tokenizer_kinds.py's mo_corpus); the tokenizer that
         tests/fuzz/fuzz_tokenizer_bpe.c loads. Also tests/fuzz/corpus/tokenizer_bpe/json-tiny:
         a 300-token one (a seed for the harness's loader mode, where the fuzz input is the
         tokenizer.json itself; it starts with '{').
  bench  OUT/tokenizer.json (default benchmarks/out/roberta-bpe): 50,265 tokens, like
         roberta-base's (256 bytes + 5 specials + ~50,000 merges), trained on the stdlib's
         docstrings, the gettext translations and Debian's documentation under /usr/share/doc
         (copyright files, READMEs and changelogs, gzipped or not, capped at 40 MB), so that the
         merges are realistic; the tokenizer of benchmarks/bench_tokenizer.py --tokenizer.
         Not committed (a minute to train); its ranks need not be reproducible, as spladex and
         the reference read the same file.

Each is RoBERTa's layout: ByteLevel pre-tokenizer without prefix space, <s> 0, <pad> 1, </s> 2,
<unk> 3, <mask> (lstrip), RobertaProcessing (<s> text </s>).

usage: gen_tokenizer_bpe.py fuzz | bench [OUT_DIR]
"""
import gzip
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import gen_tokenizer_fixture as gen  # noqa: E402
import gen_tokenizer_kinds as kinds  # noqa: E402

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def train(texts, vocab_size):
    from tokenizers import AddedToken, ByteLevelBPETokenizer, processors
    tk = ByteLevelBPETokenizer(add_prefix_space=False)
    tk.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIALS,
                           show_progress=False)
    tk.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tk.add_special_tokens([AddedToken("<mask>", lstrip=True)])
    return tk


def debian_docs(cap_bytes):
    """Lines of the text files under /usr/share/doc (sorted; .gz decompressed), up to cap_bytes."""
    files = []
    for d, dirs, names in os.walk("/usr/share/doc"):
        dirs.sort()
        files += sorted(os.path.join(d, n) for n in names)
    out, total = [], 0
    for f in files:
        base = os.path.basename(f)
        if not (base == "copyright" or base.startswith(("README", "changelog", "NEWS"))):
            continue
        try:
            with (gzip.open(f, "rb") if f.endswith(".gz") else open(f, "rb")) as fh:
                data = fh.read(2 << 20)
        except (OSError, EOFError):
            continue
        text = data.decode("utf-8", errors="replace")
        for line in text.split("\n"):
            line = line.strip()
            if line:
                out.append(line)
                total += len(line)
        if total >= cap_bytes:
            break
    return out


def save(tk, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tk.save(path)
    print(f"{path}: {tk.get_vocab_size()} tokens, {os.path.getsize(path)} bytes")


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    english = [b.decode("utf-8", errors="replace") for b in gen.stdlib_corpus()[0]]
    multi = kinds.mo_corpus()
    if what == "fuzz":
        save(train(english + multi, 1000), os.path.join(ROOT, "tests", "fixtures", "tokenizer", "bpe",
                                                        "tokenizer.json"))
        tiny = train(english[:2000], 300)
        path = os.path.join(ROOT, "tests", "fuzz", "corpus", "tokenizer_bpe", "json-tiny")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(tiny.to_str())  # compact JSON: a smaller seed
        print(f"{path}: {tiny.get_vocab_size()} tokens, {os.path.getsize(path)} bytes")
    elif what == "bench":
        out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "benchmarks", "out", "roberta-bpe")
        texts = english + kinds.mo_corpus(max_lines=10 ** 9) + debian_docs(40 << 20)
        print(f"training on {len(texts)} lines, {sum(len(t) for t in texts) / 1e6:.1f} M characters")
        save(train(texts, 50265), os.path.join(out, "tokenizer.json"))
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
