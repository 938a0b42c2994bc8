#!/usr/bin/env python3
"""Generates host/tokenizer_tables.h: where HF tokenizers' BERT normalizer and pre-tokenizer
disagree with what libutf8proc's Unicode data predicts, code point by code point.

Why: HF tokenizers (Rust) mixes Unicode versions. Its accent stripping and its punctuation and
control-character tests come from old crates (unicode-normalization-alignments,
unicode_categories), while lowercasing and whitespace come from a recent Rust std. libutf8proc
follows one (newer) version. The C tokenizer uses utf8proc and then applies these exceptions,
so that every code point behaves exactly as in the installed `tokenizers`.

How: for every Unicode scalar value c it asks the real reference
  - BertNormalizer(clean_text, handle_chinese_chars=False, strip_accents, lowercase).normalize_str(c)
    for each of the 8 settings of clean_text, strip_accents and lowercase
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


def predict(lib, c, buf, boundclass, clean, strip, lower):
    """What tokenizer.c computes for code point c from utf8proc alone (no exceptions), under
    BertNormalizer(clean_text=clean, handle_chinese_chars=False, strip_accents=strip,
    lowercase=lower); whitespace as " " (the pre-tokenizer splits there whatever it is)."""
    cat = lib.utf8proc_category(c)
    if clean and (c == 0 or c == 0xFFFD or (cat in (CAT_CC, CAT_CF, CAT_CS, CAT_CO) and c not in (0x9, 0xA, 0xD))):
        return ""
    if c in WHITESPACE:
        return " "
    if strip:
        boundclass.value = 0
        n = lib.utf8proc_decompose_char(c, buf, 8, UTF8PROC_DECOMPOSE, ctypes.byref(boundclass))
        chars = [buf[i] for i in range(n) if lib.utf8proc_category(buf[i]) != CAT_MN]
    else:
        chars = [c]
    if lower:
        return "".join("i\u0307" if d == 0x130 else chr(lib.utf8proc_tolower(d)) for d in chars)
    return "".join(chr(d) for d in chars)


def as_pretokenizer_sees(s):
    """HF's output with every whitespace character as " " (split there either way)."""
    return "".join(" " if ord(x) in WHITESPACE else x for x in s)


def predict_punct(lib, c):
    return (c < 128 and chr(c) in string.punctuation) or lib.utf8proc_category(c) in CAT_PUNCT


# The normalizer settings a table is made for, in the order of tok_norm_tables[]: index
# clean_text * 4 + strip_accents * 2 + lowercase (handle_chinese_chars is applied by the C code
# around whatever a table says, so the tables are made without it).
MODES = [(clean, strip, lower) for clean in (0, 1) for strip in (0, 1) for lower in (0, 1)]


def generate():
    lib = load_utf8proc()
    pre = pre_tokenizers.BertPreTokenizer()
    buf = (ctypes.c_int32 * 8)()
    boundclass = ctypes.c_int(0)
    norms = [normalizers.BertNormalizer(clean_text=bool(clean), handle_chinese_chars=False,
                                        strip_accents=bool(strip), lowercase=bool(lower))
             for clean, strip, lower in MODES]
    norm_exc, punct_exc = [[] for _ in MODES], []
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        ch = chr(c)
        for k, (clean, strip, lower) in enumerate(MODES):
            hf = norms[k].normalize_str(ch)
            if as_pretokenizer_sees(hf) != predict(lib, c, buf, boundclass, clean, strip, lower):
                if len(hf) > 3:
                    sys.exit(f"U+{c:04X}: HF output longer than 3 characters, extend the table")
                norm_exc[k].append((c, [ord(x) for x in hf]))
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
        " * tok_norm_tables[clean_text * 4 + strip_accents * 2 + lowercase]: for each setting of",
        " * BertNormalizer (handle_chinese_chars off: tokenizer.c pads CJK itself), the normalized",
        " * output HF produces for the code point alone, at most 3 code points.",
        " * tok_punct_exceptions: code points whose punctuation class is the opposite of",
        " * (ASCII punctuation or utf8proc category P*). All sorted by code point.",
        " */",
        "#ifndef SPLADEX_TOKENIZER_TABLES_H",
        "#define SPLADEX_TOKENIZER_TABLES_H",
        "",
        "#include <stddef.h>",
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
    ]
    for k, (clean, strip, lower) in enumerate(MODES):
        exc = norm_exc[k]
        lines.append(f"/* clean_text {clean}, strip_accents {strip}, lowercase {lower} */")
        lines.append(f"static const tok_norm_exception tok_norm_exceptions_{k}[{max(len(exc), 1)}] = {{")
        for c, out in exc:
            vals = ", ".join(f"0x{x:X}" for x in out) or "0"
            lines.append(f"    {{0x{c:X}, {len(out)}, {{{vals}}}}},")
        if not exc:
            lines.append("    {0x110000, 0, {0}}, /* none: a sentinel above every code point */")
        lines.append("};")
        lines.append("")
    lines.append("static const struct {")
    lines.append("  const tok_norm_exception *entries;")
    lines.append("  size_t n;")
    lines.append(f"}} tok_norm_tables[{len(MODES)}] = {{")
    for k in range(len(MODES)):
        lines.append(f"    {{tok_norm_exceptions_{k}, {len(norm_exc[k])}}},")
    lines.append("};")
    lines.append("")
    lines.append(f"static const uint32_t tok_punct_exceptions[{len(punct_exc)}] = {{")
    for i in range(0, len(punct_exc), 8):
        lines.append("    " + ", ".join(f"0x{c:X}" for c in punct_exc[i:i + 8]) + ",")
    lines.append("};")
    lines.append("")
    lines.append("#endif")
    return "\n".join(lines) + "\n", sum(len(e) for e in norm_exc), len(punct_exc), uver


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
