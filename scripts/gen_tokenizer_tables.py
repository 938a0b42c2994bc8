#!/usr/bin/env python3
"""Generates host/tokenizer_tables.h: where HF tokenizers' BERT normalizer and pre-tokenizer
disagree with what libutf8proc's Unicode data predicts, code point by code point.

Why: HF tokenizers (Rust) mixes Unicode versions. Its accent stripping and its punctuation and
control-character tests come from old crates (unicode-normalization-alignments,
unicode_categories), while lowercasing and whitespace come from a recent Rust std. libutf8proc
follows one (newer) version. The C tokenizer uses utf8proc and then applies these exceptions,
so that every code point behaves exactly as in the installed `tokenizers`.

How: for every Unicode scalar value c it asks the real reference
  - BertNormalizer(clean_text, handle_chinese_chars, strip_accents=None, lowercase).normalize_str(c)
  - BertPreTokenizer().pre_tokenize_str("a" + c + "a")  (split in 3 = punctuation)
and compares with the prediction the C code makes from utf8proc (category, canonical
decomposition, simple lowercase), which this script computes through ctypes on the same
libutf8proc the build links. Rerun it when `tokenizers` or libutf8proc changes:

    python3 scripts/gen_tokenizer_tables.py            # writes host/tokenizer_tables.h
    python3 scripts/gen_tokenizer_tables.py --check    # exit 1 if the committed file is stale
"""
import argparse
import ctypes
import ctypes.util
import os
import string
import sys

import tokenizers
from tokenizers import normalizers, pre_tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "host", "tokenizer_tables.h")

# utf8proc_category_t values
CAT_MN, CAT_CC, CAT_CF, CAT_CS, CAT_CO = 6, 26, 27, 28, 29
CAT_PUNCT = set(range(12, 19))  # Pc Pd Ps Pe Pi Pf Po
UTF8PROC_DECOMPOSE = 1 << 3
# Rust char::is_whitespace (Unicode White_Space); must equal tok_is_whitespace() in tokenizer.c.
WHITESPACE = {0x9, 0xA, 0xB, 0xC, 0xD, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
              0x2028, 0x2029, 0x202F, 0x205F, 0x3000}
# tokenizers' is_chinese_char; must equal tok_is_chinese() in tokenizer.c.
CHINESE = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
           (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]


def load_utf8proc():
    name = ctypes.util.find_library("utf8proc") or "libutf8proc.so.2"
    lib = ctypes.CDLL(name)
    lib.utf8proc_category.restype = ctypes.c_int
    lib.utf8proc_category.argtypes = [ctypes.c_int32]
    lib.utf8proc_tolower.restype = ctypes.c_int32
    lib.utf8proc_tolower.argtypes = [ctypes.c_int32]
    lib.utf8proc_decompose_char.restype = ctypes.c_ssize_t
    lib.utf8proc_decompose_char.argtypes = [ctypes.c_int32, ctypes.POINTER(ctypes.c_int32),
                                            ctypes.c_ssize_t, ctypes.c_int,
                                            ctypes.POINTER(ctypes.c_int)]
    lib.utf8proc_unicode_version.restype = ctypes.c_char_p
    return lib


def predict(lib, c, buf, boundclass):
    """What tokenizer.c computes for code point c from utf8proc alone (no exceptions)."""
    if c in (0x9, 0xA, 0xD):
        return " "
    cat = lib.utf8proc_category(c)
    if c == 0 or c == 0xFFFD or cat in (CAT_CC, CAT_CF, CAT_CS, CAT_CO):
        return ""
    if c in WHITESPACE:
        return " "
    boundclass.value = 0
    n = lib.utf8proc_decompose_char(c, buf, 8, UTF8PROC_DECOMPOSE, ctypes.byref(boundclass))
    out = []
    for d in (buf[i] for i in range(n)):
        if lib.utf8proc_category(d) == CAT_MN:
            continue
        out.append("i\u0307" if d == 0x130 else chr(lib.utf8proc_tolower(d)))
    s = "".join(out)
    if any(lo <= c <= hi for lo, hi in CHINESE):
        s = " " + s + " "
    return s


def predict_punct(lib, c):
    return (c < 128 and chr(c) in string.punctuation) or lib.utf8proc_category(c) in CAT_PUNCT


def generate():
    lib = load_utf8proc()
    norm = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                      strip_accents=None, lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    buf = (ctypes.c_int32 * 8)()
    boundclass = ctypes.c_int(0)
    norm_exc, punct_exc = [], []
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        ch = chr(c)
        hf = norm.normalize_str(ch)
        if hf != predict(lib, c, buf, boundclass):
            if len(hf) > 3:
                sys.exit(f"U+{c:04X}: HF output longer than 3 characters, extend the table")
            norm_exc.append((c, [ord(x) for x in hf]))
        parts = pre.pre_tokenize_str("a" + ch + "a")
        if c in WHITESPACE:
            if len(parts) != 2:
                sys.exit(f"U+{c:04X}: expected whitespace in HF pre-tokenizer, got {parts}")
            continue
        hf_punct = len(parts) == 3
        if len(parts) not in (1, 3):
            sys.exit(f"U+{c:04X}: unexpected pre-tokenization {parts}")
        if hf_punct != predict_punct(lib, c):
            punct_exc.append(c)
    uver = lib.utf8proc_unicode_version().decode()
    lines = [
        "/* tokenizer_tables: GENERATED by scripts/gen_tokenizer_tables.py, do not edit.",
        " *",
        " * Code points where HF tokenizers' BERT normalizer or pre-tokenizer disagree with the",
        " * prediction tokenizer.c makes from libutf8proc's Unicode data (see that script for why).",
        " * tok_norm_exceptions: the normalized output HF produces for the code point alone",
        " * (clean text, CJK padding, NFD accent strip, lowercase), at most 3 code points.",
        " * tok_punct_exceptions: code points whose punctuation class is the opposite of",
        " * (ASCII punctuation or utf8proc category P*). Both sorted by code point.",
        " */",
        "#ifndef SPLADEX_TOKENIZER_TABLES_H",
        "#define SPLADEX_TOKENIZER_TABLES_H",
        "",
        "#include <stdint.h>",
        "",
        f'#define TOK_TABLES_TOKENIZERS_VERSION "{tokenizers.__version__}"',
        f'#define TOK_TABLES_UTF8PROC_UNICODE "{uver}"',
        "",
        "typedef struct {",
        "  uint32_t cp;",
        "  uint32_t n;",
        "  uint32_t out[3];",
        "} tok_norm_exception;",
        "",
        f"static const tok_norm_exception tok_norm_exceptions[{len(norm_exc)}] = {{",
    ]
    for c, out in norm_exc:
        vals = ", ".join(f"0x{x:X}" for x in out) or "0"
        lines.append(f"    {{0x{c:X}, {len(out)}, {{{vals}}}}},")
    lines.append("};")
    lines.append("")
    lines.append(f"static const uint32_t tok_punct_exceptions[{len(punct_exc)}] = {{")
    for i in range(0, len(punct_exc), 8):
        lines.append("    " + ", ".join(f"0x{c:X}" for c in punct_exc[i:i + 8]) + ",")
    lines.append("};")
    lines.append("")
    lines.append("#endif")
    return "\n".join(lines) + "\n", len(norm_exc), len(punct_exc), uver


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed file")
    args = ap.parse_args()
    text, n_norm, n_punct, uver = generate()
    if args.check:
        with open(OUT) as f:
            same = f.read() == text
        print(f"tokenizers {tokenizers.__version__}, utf8proc Unicode {uver}: "
              f"{n_norm} normalization and {n_punct} punctuation exceptions; "
              f"{'up to date' if same else 'STALE: rerun scripts/gen_tokenizer_tables.py'}")
        sys.exit(0 if same else 1)
    with open(OUT, "w") as f:
        f.write(text)
    print(f"wrote {OUT}: {n_norm} normalization and {n_punct} punctuation exceptions "
          f"(tokenizers {tokenizers.__version__}, utf8proc Unicode {uver})")


if __name__ == "__main__":
    main()
