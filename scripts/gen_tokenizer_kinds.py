#!/usr/bin/env python3
"""Trains the small WordPiece vocabularies of tests/py/test_tokenizer_kinds.py with HF tokenizers.

Cased and multilingual BERT tokenizers differ from bert-base-uncased in their vocabulary and in
their BertNormalizer settings (lowercase, strip_accents, handle_chinese_chars, clean_text). The
test needs vocabularies that hold cased pieces, accented pieces and CJK characters, so that each
setting changes the ids; the real ones are megabytes, these are trained here on local text:

  cased         English: the Python standard library's docstrings (gen_tokenizer_fixture.py's
                stdlib_corpus), BertWordPieceTokenizer(lowercase=False), 6,000 pieces
  multilingual  every translation (msgstr) of the gettext catalogs under /usr/share/locale
                (Debian's translated programs: de fr ru ja zh_CN ko el ar vi ... ), sampled by
                mo_corpus(), lowercase=False, 12,000 pieces

Only the vocabularies are committed (tests/fixtures/tokenizer/kinds/<name>/vocab.txt); the test
makes each normalizer setting's tokenizer.json from them with BertWordPieceTokenizer and compares
`spladex tokenize` with tokenizers run live, on the same regenerated text.

usage: gen_tokenizer_kinds.py
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import gen_tokenizer_fixture as gen  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "kinds")
LOCALE = "/usr/share/locale"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def mo_strings(path):
    """The translations (msgstr) of a GNU gettext .mo file, decoded as UTF-8 (others skipped)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 28:
        return []
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic == 0x950412DE else ">" if magic == 0xDE120495 else None
    if end is None:
        return []
    n, _, trans = struct.unpack(end + "III", data[8:20])
    out = []
    for i in range(n):
        length, offset = struct.unpack(end + "II", data[trans + 8 * i:trans + 8 * i + 8])
        raw = data[offset:offset + length]
        if i == 0 and raw.startswith(b"Project-Id") or not raw:
            continue  # the header entry
        for part in raw.split(b"\0"):  # plural forms
            try:
                text = part.decode("utf-8")
            except UnicodeDecodeError:
                continue
            text = " ".join(text.split())
            if len(text) >= 12:
                out.append(text)
    return out


def mo_corpus(max_lines=9000):
    """Lines of translated text from every .mo under /usr/share/locale: files in sorted order,
    duplicates dropped, then an even sample of max_lines (every k-th) so that every language
    the catalogs hold is in it. Returns [] when there are none."""
    files = []
    for d, dirs, names in os.walk(LOCALE):
        dirs.sort()
        files += sorted(os.path.join(d, n) for n in names if n.endswith(".mo"))
    seen, lines = set(), []
    for f in files:
        for text in mo_strings(f):
            if text not in seen:
                seen.add(text)
                lines.append(text)
    if len(lines) > max_lines:
        step = len(lines) / max_lines
        lines = [lines[int(i * step)] for i in range(max_lines)]
    return lines


def english_corpus():
    return [b.decode("utf-8", errors="replace") for b in gen.stdlib_corpus()[0]]


KINDS = {
    "cased": (english_corpus, 6000),
    "multilingual": (mo_corpus, 12000),
}


def train(lines, vocab_size):
    import tokenizers
    tk = tokenizers.BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True,
                                           strip_accents=False, lowercase=False)
    tk.train_from_iterator(lines, vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIALS,
                           limit_alphabet=3000, show_progress=False)
    vocab = tk.get_vocab()
    pieces = [None] * len(vocab)
    for piece, i in vocab.items():
        pieces[i] = piece
    assert None not in pieces and pieces[:5] == SPECIALS
    return pieces


def main():
    for name, (corpus, size) in KINDS.items():
        lines = corpus()
        if len(lines) < gen.MIN_CORPUS_LINES:
            sys.exit(f"{name}: only {len(lines)} lines of text")
        pieces = train(lines, size)
        os.makedirs(os.path.join(OUT, name), exist_ok=True)
        with open(os.path.join(OUT, name, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("".join(p + "\n" for p in pieces))
        print(f"{name}: {len(lines)} lines, {len(pieces)} pieces")
    return 0


if __name__ == "__main__":
    sys.exit(main())
