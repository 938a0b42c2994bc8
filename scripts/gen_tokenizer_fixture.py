#!/usr/bin/env python3
"""Generates the tokenizer parity fixtures in tests/fixtures/tokenizer/ with HF tokenizers.

Two text sets:
  * real English text, taken at generation time from installed files: every docstring (module,
    class, function) of the running Python's standard library, one docstring per line, read with
    `ast` (nothing is imported), files in sorted order, nodes in ast.walk order. The text is NOT
    committed (it is the PSF's prose): its sha256 is, with the ids, and stdlib_corpus() below
    regenerates it.
  * an adversarial set we wrote (ADVERSARIAL below): accents, CJK, emoji, control and zero-width
    characters, long words, punctuation runs, odd whitespace, scripts, invalid UTF-8. Committed as
    adversarial.txt (raw bytes, one text per line).
The reference is HF tokenizers: Tokenizer.from_file(<splade-tiny>/tokenizer.json) without
padding, with truncation to max_length when asked (BertTokenizerFast uses the same Rust
tokenizer). The script also checks that tokenizers' BertWordPieceTokenizer(vocab.txt) and, when
transformers is installed, transformers' BertTokenizerFast (from vocab.txt and from the model
directory) give the very same ids.

Line rule (the same as `spladex tokenize`): the input bytes are split at b"\\n", one trailing
b"\\r" is removed, and HF gets each line decoded with errors="replace".

Usage:
    python3 scripts/gen_tokenizer_fixture.py [--model models/splade-tiny]
Outputs (tests/fixtures/tokenizer/):
    vocab.txt                      bert-base-uncased vocabulary (checked equal to the model's)
    adversarial.txt                the adversarial texts (bytes)
    adversarial.ids                HF ids per line, no truncation
    adversarial.256.ids            HF ids per line, max_length 256
    stdlib_docstrings.ids.xz       HF ids per corpus line, no truncation (xz)
    stdlib_docstrings.256.diff.xz  "line<TAB>ids" for the corpus lines that max_length 256 changes
    unit_cases.tsv                 cases for tests/test_tokenizer.c: max_length, hex text, ids
    mini/vocab.txt, mini/tokenizer.json   a small vocabulary in both formats, saved by HF
    manifest.json                  versions, sha256 of the corpus and of the model tokenizer.json
"""
import argparse
import ast
import hashlib
import json
import lzma
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
SHARED_VOCAB = os.path.join(os.path.dirname(ROOT), "shared", "data", "bert-base-uncased-vocab.txt")
MIN_CORPUS_LINES = 5000


# --------------------------------------------------------------------------------------------
# text sets

def stdlib_corpus():
    """Every docstring of the running Python's standard library, one per line, as UTF-8 bytes.

    Deterministic for a given Python installation: files sorted, ast.walk order, "\\r" and "\\n"
    inside a docstring become spaces. Test suites, idlelib, lib2to3 and site-packages are left
    out. Lone surrogates (escapes in a few docstrings) are kept as their surrogatepass bytes,
    i.e. invalid UTF-8. Returns (lines, description).
    """
    root = sysconfig.get_paths()["stdlib"]
    files = []
    for d, dirs, names in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(d, root)
        parts = [] if rel == "." else rel.split(os.sep)
        if parts and (parts[0] in ("site-packages", "dist-packages", "idlelib", "lib2to3")
                      or "test" in parts or "tests" in parts):
            dirs[:] = []
            continue
        files += [os.path.join(rel, n) for n in names if n.endswith(".py")]
    files.sort()
    lines = []
    for f in files:
        with open(os.path.join(root, f), "rb") as fh:
            source = fh.read()
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=True)
                if doc:
                    text = doc.replace("\r", " ").replace("\n", " ")
                    lines.append(text.encode("utf-8", errors="surrogatepass"))
    desc = (f"docstrings of the Python {platform.python_version()} standard library at {root} "
            f"({len(files)} files), via scripts/gen_tokenizer_fixture.py:stdlib_corpus()")
    return lines, desc


def corpus_sha256(lines):
    return hashlib.sha256(b"\n".join(lines) + b"\n").hexdigest()


def _adversarial():
    """Our adversarial texts (bytes; no b"\\n" inside a text)."""
    s = []
    add = lambda *texts: s.extend(t if isinstance(t, bytes) else t.encode("utf-8") for t in texts)
    # accents and combining marks
    add("Crème brûlée à la carte, café au lait", "NAÏVE façade, Ångström, Ærøskøbing",
        "Łódź, São Paulo, Dvořák, Ça va? Señor Niño", "e\u0301 E\u0301 a\u030a A\u0308\u0304",
        "a\u0301\u0302\u0303\u0304\u0305\u0306 stacked marks",
        "Z\u0351\u0352\u0353a\u0354\u0355l\u0356\u0357g\u0358\u0359o\u035a zalgo " + "o" + "\u0336" * 120,
        "résumé RÉSUMÉ re\u0301sume\u0301", "ǅemal ǈ ǋ titlecase digraphs", "ẞ straße STRASSE")
    # CJK and east Asian
    add("中文字符测试，标点符号。", "日本語のテキスト、カタカナ、ひらがな", "한국어 텍스트 안녕하세요",
        "豈 更 車 compatibility ideographs", "𠀀𠀁𪜀 extension B and C", "\U0002B820\U0002B81F gap",
        "mixed中文english混合text", "ＦＵＬＬＷＩＤＴＨ ｆｕｌｌ １２３", "｡｢｣､ halfwidth punctuation")
    # emoji and symbols
    add("😀 👍🏽 👨\u200d👩\u200d👧\u200d👦 🇫🇷 ❤️ 1️⃣", "🥰🫠🫨 newer emoji", "☃ ★ ♥ ✓ → ⇒ ∀x∈ℝ",
        "€100 £50 ¥1000 ₹ ₿ $5", "© ® ™ ° ± × ÷ § ¶", "Ⅻ ① ½ ² ³")
    # control and zero-width characters
    add("\x00nul\x01soh\x7fdel", "zero\u200bwidth\u200cnon\u200djoiner", "\ufeffbyte order mark",
        "soft\u00adhyphen", "word\u2060joiner", "bidi\u202eoverride\u202cend", "\u0085next line",
        "\x0bvertical\x0cform feed", "\x1b[31mansi red\x1b[0m", "tab\tseparated\tvalues",
        "a\rb carriage return inside", "private \ue000 use \U000F0000", "tags \U000E0041\U000E007F",
        "\ufffd replacement \ufffd char", "\u180e mongolian vowel separator", "\u061c arabic letter mark")
    # long words (limit: 100 characters after normalization)
    add("a" * 99, "a" * 100, "a" * 101, "x" * 250, "supercalifragilistic" * 6,
        "é" * 100, "é" * 101, "e" + "\u0301" * 150, "İ" * 100 + " " + "İ" * 101,
        "antidisestablishmentarianism " * 3, "pneumonoultramicroscopicsilicovolcanoconiosis",
        "x" * 100 + "\u0301", "中" * 150, "ß" * 101, "\U0001D165" * 101,
        "http://" + "a" * 120 + ".com")
    # punctuation runs and specials
    add("!!!???...,,,;;;:::", "--==++__**&&^^%%$$##@@", "«quoted» „German“ ‘single’ “double”",
        "… — – ‐ ‑ ‒ ― ⁂", "¿Qué? ¡Sí!", "#hashtag @user $100 50% a+b=c x^2 `code` ~tilde |pipe|",
        "##ing ## #", "(parens) [brackets] {braces} <angles>", "C++ C# F# .NET node.js",
        "e.g. i.e. etc. U.S.A. Ph.D.", "don't won't it's rock'n'roll", "\\backslash\\path/slash/",
        "\u2e55\u2e56 \u2e5d \U00010ead \u166d \U000111c9 \u061d punctuation by unicode version")
    # added tokens and lookalikes
    add("[MASK]", "hello [MASK] world", "[mask] [Mask]", "[ MASK ]", "[MASK][MASK][SEP]",
        "x[CLS]y", "[SEP", "[[MASK]]", "[UNK] [PAD]", "[CLS] [SEP] at both ends [SEP]",
        b"[MA\xffSK] split by an invalid byte", "[MAS\u200bK] zero width inside")
    # whitespace
    add("a\u00a0b no-break", "a\u3000b ideographic", "a\tb\t\tc", "a\u2003b\u2009c\u200ad",
        "\u1680ogham", "a\u2028b\u2029c", "   leading and trailing   ", "   ", "", "\t",
        "a\u202fb\u205fc", "multiple     spaces")
    # scripts
    add("Ελληνικά ΣΟΦΙΑ σοφίας ς Σ", "ἀρχὴ ᾅδης ῼ polytonic", "Русский ЯЗЫК Ёлка ё Й й",
        "Українська ЇЖАК ґ", "İstanbul IĞDIR ıi Iı i̇", "العربية مرحبا بالعالم",
        "مَرْحَبًا بِكُمْ harakat", "हिन्दी नमस्ते दुनिया", "தமிழ் மொழி", "ภาษาไทย สวัสดี",
        "שָׁלוֹם עולם", "ქართული", "Հայերեն", "አማርኛ", "ᏣᎳᎩ", "ꦗꦮ", "한글 자모 ㄱㄴㄷ ᄀ ᅡ",
        "Tiếng Việt có dấu", "ﬁnance ﬂow ﬀ ligatures", "Kelvin \u212a Ohm \u2126 Angstrom \u212b")
    # astral (no surrogates) and Unicode-version corners
    add("𝐁𝐨𝐥𝐝 𝔉𝔯𝔞𝔨𝔱𝔲𝔯 𝟙𝟚𝟛", "𐍈 gothic 𓂀 hieroglyph", "\U0001D165\U0001D16D\U0001D16E reorder",
        "\u0f39\u0f71\u0f72 tibetan", "\u0898\u1734\U00011938\ua7cb\u1c89 version corners",
        "a\u0316\u0301\u0327\u0300b combining classes", "\u0941\u093f\u0902 indic marks")
    # numbers, urls
    add("3.14159 1,000,000 2023-01-01 12:30pm v1.2.3 0x1F 1e-10",
        "https://example.com/path?q=1&x=y#frag", "user.name+tag@example.co.uk",
        "C:\\Program Files\\x", "<html><body class=\"x\">hi</body></html>", '{"json": [1, 2.5, null]}')
    # invalid UTF-8
    add(b"ab\xffcd", b"\xc3( truncated two-byte", b"\xe2\x82 truncated three-byte",
        b"caf\xc3", b"\xed\xa0\x80surrogate", b"\xed\xbf\xbf low surrogate",
        b"\xf0\x9f\x98 emoji cut", b"\xc0\xaf overlong slash", b"\xe0\x80\xaf overlong 3",
        b"\xf4\x90\x80\x80 above U+10FFFF", b"\x80\x80 stray continuation", b"\xf8\x88\x80\x80\x80 five",
        b"\xfe\xff bom bytes", b"valid \xc3\xa9 then \xc3 invalid \xc3\xa9", b"\xe2\x28\xa1",
        b"mid\xe2\x82word", b"\xf0\x90\x28\xbc", b"\xc2", b"\xef\xbf\xbd encoded U+FFFD")
    # line endings: the CLI removes one trailing "\r"
    add(b"crlf line\r", b"two carriage returns\r\r", b"\r")
    # long texts: past 256 tokens
    add(" ".join(f"word{i}" for i in range(400)),
        "The quick brown fox jumps over the lazy dog. " * 40,
        "".join(chr(0x4E00 + i) for i in range(300)))
    return s


ADVERSARIAL = _adversarial()


# --------------------------------------------------------------------------------------------
# HF reference

def hf_tokenizer(spec):
    """A tokenizers.Tokenizer with BertTokenizerFast semantics: spec is a model directory or a
    tokenizer.json (Tokenizer.from_file) or a vocab.txt (BertWordPieceTokenizer)."""
    import tokenizers
    path = spec
    if os.path.isdir(spec):
        path = os.path.join(spec, "tokenizer.json")
        if not os.path.exists(path):
            path = os.path.join(spec, "vocab.txt")
    if path.endswith(".json"):
        tk = tokenizers.Tokenizer.from_file(path)
    else:
        tk = tokenizers.BertWordPieceTokenizer(path)._tokenizer
    tk.no_padding()
    tk.no_truncation()
    return tk


def line_texts(lines):
    """What HF gets for each line (bytes): one trailing \\r removed, decoded with replace."""
    out = []
    for b in lines:
        if b.endswith(b"\r"):
            b = b[:-1]
        out.append(b.decode("utf-8", errors="replace"))
    return out


def hf_ids(tk, texts, max_length):
    if max_length:
        tk.enable_truncation(max_length)
    else:
        tk.no_truncation()
    try:
        return [e.ids for e in tk.encode_batch(texts)]
    finally:
        tk.no_truncation()


def format_ids(rows):
    return "".join(" ".join(map(str, r)) + "\n" for r in rows)


def parse_ids(text):
    return [[int(x) for x in line.split()] for line in text.splitlines()]


# ---- shared by the tokenizer tests (tests/py/test_tokenizer_{parity,kinds,bpe}.py) -----------

def spladex_tokenize(binary, args, data):
    """stdout of `spladex tokenize ARGS` fed data (bytes); fails on a missing binary or an error."""
    assert os.path.exists(binary), f"spladex binary not found at {binary} (build first, or set SPLADEX_BIN)"
    proc = subprocess.run([binary, "tokenize"] + args, input=data, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


def spladex_ids(binary, model, lines, max_length):
    """The ids `spladex tokenize` gives each line (bytes) with the model's tokenizer."""
    data = b"".join(line + b"\n" for line in lines)
    out = spladex_tokenize(binary, ["--model", model, "--max-length", str(max_length)], data)
    return parse_ids(out.decode("ascii"))


def assert_same_ids(name, texts, got, expected):
    """Asserts 100% identical rows; the message shows the first differences."""
    assert len(got) == len(expected), f"{name}: {len(got)} output lines for {len(expected)}"
    bad = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
    if bad:
        lines = [f"{name}: {len(bad)} of {len(expected)} lines differ"]
        for i in bad[:5]:
            lines.append(f"  line {i}: {texts[i][:120]!r}\n    spladex {got[i][:40]}\n"
                         f"    expected {expected[i][:40]}")
        raise AssertionError("\n".join(lines))
    print(f"{name}: {len(expected)} of {len(expected)} lines identical "
          f"({sum(len(r) for r in expected)} ids)")


def random_mix(rng, n, alphabet, bad_bytes, max_parts, p_long, long_piece):
    """n lines (bytes) of 0..max_parts pieces each: an invalid UTF-8 sequence of bad_bytes (3%),
    long_piece(rng) (p_long), else a string of alphabet; no newline."""
    lines = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(0, max_parts)):
            r = rng.random()
            if r < 0.03:
                parts.append(rng.choice(bad_bytes))
            elif r < 0.03 + p_long:
                parts.append(long_piece(rng))
            else:
                parts.append(rng.choice(alphabet).encode())
        lines.append(b"".join(parts).replace(b"\n", b" "))
    return lines


def read_fixture(name):
    path = os.path.join(FIXTURES, name)
    if name.endswith(".xz"):
        with lzma.open(path, "rt") as f:
            return f.read()
    with open(path) as f:
        return f.read()


def read_adversarial():
    with open(os.path.join(FIXTURES, "adversarial.txt"), "rb") as f:
        data = f.read()
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


def truncation_diff(full, truncated):
    return "".join(f"{i}\t{' '.join(map(str, t))}\n"
                   for i, (f, t) in enumerate(zip(full, truncated)) if f != t)


def apply_truncation_diff(full, diff_text):
    rows = [list(r) for r in full]
    for line in diff_text.splitlines():
        i, ids = line.split("\t")
        rows[int(i)] = [int(x) for x in ids.split()]
    return rows


# --------------------------------------------------------------------------------------------
# generation

def _unit_cases():
    """Cases for tests/test_tokenizer.c (max_length, text bytes)."""
    cases = [(0, b"Hello, World!"), (0, b""), (0, b"hello [MASK] world"), (0, b"x[SEP]y"),
             (0, "Crème Brûlée".encode()), (0, "中文字符".encode()), (0, b"ab\xffcd"),
             (0, b"a" * 100), (0, b"a" * 101), (0, "İstanbul ΣΟΦΙΑ".encode()),
             (0, "😀 emoji \u200b zero width".encode()), (0, b"unaffable playing ##ing"),
             (5, b"the quick brown fox jumps over the lazy dog"),
             (2, b"anything at all"), (3, b"one two"), (4, b"one two"),
             (256, (" ".join(f"tok{i}" for i in range(300))).encode())]
    return cases


def _check_same(name, a, b):
    if a != b:
        bad = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y) if len(a) == len(b) else -1
        sys.exit(f"{name}: references disagree (first differing line {bad})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "splade-tiny"),
                    help="model directory whose tokenizer.json is the reference")
    ap.add_argument("--vocab", default=SHARED_VOCAB, help="bert-base-uncased vocab.txt")
    args = ap.parse_args()
    import tokenizers

    os.makedirs(os.path.join(FIXTURES, "mini"), exist_ok=True)
    model_json = os.path.join(args.model, "tokenizer.json")
    tk = hf_tokenizer(model_json)
    vocab_path = os.path.join(FIXTURES, "vocab.txt")
    shutil.copyfile(args.vocab, vocab_path)
    tk_vocab = hf_tokenizer(vocab_path)
    if tk.get_vocab(with_added_tokens=True) != tk_vocab.get_vocab(with_added_tokens=True):
        sys.exit(f"{args.vocab} and {model_json} have different vocabularies")

    # optional third reference: transformers' BertTokenizerFast (from the model directory, and
    # from a directory that holds only vocab.txt)
    vocab_only_dir = tempfile.mkdtemp(prefix="spladex-vocab-")
    shutil.copyfile(vocab_path, os.path.join(vocab_only_dir, "vocab.txt"))
    try:
        from transformers import BertTokenizerFast
    except ImportError:
        BertTokenizerFast = None
        print("transformers not installed: BertTokenizerFast cross-check skipped")

    def all_refs(texts, max_length, name):
        ids = hf_ids(tk, texts, max_length)
        _check_same(name + " (vocab.txt)", ids, hf_ids(tk_vocab, texts, max_length))
        if BertTokenizerFast is not None:
            for src in (args.model, vocab_only_dir):
                bt = BertTokenizerFast.from_pretrained(src)
                kw = dict(truncation=True, max_length=max_length) if max_length else {}
                got = [bt(t, **kw)["input_ids"] for t in texts]
                _check_same(f"{name} (BertTokenizerFast {src})", ids, got)
        return ids

    # adversarial
    for t in ADVERSARIAL:
        assert b"\n" not in t
    with open(os.path.join(FIXTURES, "adversarial.txt"), "wb") as f:
        f.write(b"\n".join(ADVERSARIAL) + b"\n")
    adv = line_texts(ADVERSARIAL)
    for max_length, name in ((0, "adversarial.ids"), (256, "adversarial.256.ids")):
        with open(os.path.join(FIXTURES, name), "w") as f:
            f.write(format_ids(all_refs(adv, max_length, name)))

    # real text
    corpus, desc = stdlib_corpus()
    if len(corpus) < MIN_CORPUS_LINES:
        sys.exit(f"only {len(corpus)} corpus lines (< {MIN_CORPUS_LINES})")
    texts = line_texts(corpus)
    full = all_refs(texts, 0, "stdlib corpus")
    trunc = all_refs(texts, 256, "stdlib corpus, max_length 256")
    with lzma.open(os.path.join(FIXTURES, "stdlib_docstrings.ids.xz"), "wt",
                   preset=9 | lzma.PRESET_EXTREME) as f:
        f.write(format_ids(full))
    with lzma.open(os.path.join(FIXTURES, "stdlib_docstrings.256.diff.xz"), "wt",
                   preset=9 | lzma.PRESET_EXTREME) as f:
        f.write(truncation_diff(full, trunc))

    # unit cases for the C test: max_length <TAB> hex(text) <TAB> ids
    with open(os.path.join(FIXTURES, "unit_cases.tsv"), "w") as f:
        f.write("# generated by scripts/gen_tokenizer_fixture.py with HF tokenizers (vocab.txt)\n")
        for max_length, text in _unit_cases():
            ids = all_refs(line_texts([text]), max_length, "unit case")[0]
            f.write(f"{max_length}\t{text.hex()}\t{' '.join(map(str, ids))}\n")

    # a small vocabulary in both formats, saved by HF (tokenizer.json vs vocab.txt loading test)
    mini_tokens = (["[PAD]"] + [f"[unused{i}]" for i in range(3)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                   + list("!#,.abcdefghijklmnopqrstuvwxyz") + ["the", "un", "##aff", "##able", "hello",
                   "world", "##s", "##ing", "play", "中", "é"])
    mini_txt = os.path.join(FIXTURES, "mini", "vocab.txt")
    with open(mini_txt, "w") as f:
        f.write("".join(t + "\n" for t in mini_tokens))
    tokenizers.BertWordPieceTokenizer(mini_txt).save(os.path.join(FIXTURES, "mini", "tokenizer.json"))

    with open(model_json, "rb") as f:
        model_sha = hashlib.sha256(f.read()).hexdigest()
    manifest = {
        "generator": "scripts/gen_tokenizer_fixture.py",
        "tokenizers_version": tokenizers.__version__,
        "python_version": platform.python_version(),
        "reference": "tokenizers.Tokenizer.from_file(tokenizer.json), no padding, "
                     "truncation to max_length when nonzero",
        "model_tokenizer_json_sha256": model_sha,
        "corpus": {
            "description": desc,
            "regenerate": "python3 -c 'import sys; sys.path.insert(0, \"scripts\"); "
                          "import gen_tokenizer_fixture as g; "
                          "sys.stdout.buffer.write(b\"\\n\".join(g.stdlib_corpus()[0]) + b\"\\n\")'",
            "lines": len(corpus),
            "bytes": sum(len(x) + 1 for x in corpus),
            "sha256": corpus_sha256(corpus),
            "tokens_no_truncation": sum(len(r) for r in full),
            "lines_truncated_at_256": sum(1 for r in full if len(r) > 256),
        },
        "adversarial_lines": len(ADVERSARIAL),
    }
    with open(os.path.join(FIXTURES, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
