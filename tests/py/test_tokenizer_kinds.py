"""Tokenizer parity beyond bert-base-uncased: cased and multilingual WordPiece vocabularies under
every BertNormalizer setting that tokenizer.json / tokenizer_config.json express.

`spladex tokenize` must give exactly the ids of HF tokenizers (run live), 100% of lines, on
>= 5,000 lines of real text per kind plus the adversarial set of gen_tokenizer_fixture.py and
seeded random mixes of hard characters (accents, combining marks, CJK, Hangul, emoji, controls,
case pairs such as İ/ß/Σ, invalid UTF-8). The vocabularies (tests/fixtures/tokenizer/kinds/)
were trained by scripts/gen_tokenizer_kinds.py; the text is regenerated now: English from the
stdlib's docstrings, multilingual from the gettext catalogs under /usr/share/locale (the test
fails, saying so, when the machine has fewer than 5,000 such lines).

Each case writes a model directory in one of three layouts:
  json       tokenizer.json saved by BertWordPieceTokenizer(vocab, <settings>)
  txt+config vocab.txt and tokenizer_config.json (do_lower_case, strip_accents,
             tokenize_chinese_chars), as transformers' BertTokenizer reads them
  txt+json   vocab.txt, the tokenizer.json and an agreeing tokenizer_config.json
and the reference is BertWordPieceTokenizer(vocab, <settings>).
"""
import json
import os
import random
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import gen_tokenizer_fixture as gen  # noqa: E402
import gen_tokenizer_kinds as kinds  # noqa: E402

BIN = os.environ.get("SPLADEX_BIN", os.path.join(ROOT, "build", "spladex"))

# name: (vocabulary, text, BertNormalizer settings, layout)
CASES = {
    "cased": ("cased", "english", dict(lowercase=False, strip_accents=None), "json"),
    "cased-config": ("cased", "english", dict(lowercase=False, strip_accents=None), "txt+config"),
    "multilingual-cased": ("multilingual", "mo", dict(lowercase=False, strip_accents=None), "json"),
    "multilingual-uncased": ("multilingual", "mo", dict(lowercase=True, strip_accents=None), "txt+json"),
    "lowercase-keep-accents": ("multilingual", "mo", dict(lowercase=True, strip_accents=False), "json"),
    "cased-strip-accents": ("multilingual", "mo", dict(lowercase=False, strip_accents=True), "txt+config"),
    "no-cjk-padding": ("multilingual", "mo", dict(lowercase=False, strip_accents=None,
                                                   handle_chinese_chars=False), "json"),
    "no-clean-text": ("multilingual", "mo", dict(lowercase=True, strip_accents=None, clean_text=False), "json"),
    "no-clean-text-cased": ("multilingual", "mo", dict(lowercase=False, strip_accents=None,
                                                        clean_text=False), "json"),
}


def vocab_path(name):
    return os.path.join(ROOT, "tests", "fixtures", "tokenizer", "kinds", name, "vocab.txt")


def reference(vocab, settings):
    import tokenizers
    tk = tokenizers.BertWordPieceTokenizer(vocab_path(vocab), **settings)
    tk.no_padding()
    tk.no_truncation()
    return tk


def write_case(tmp, name):
    vocab, _, settings, layout = CASES[name]
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    if layout in ("json", "txt+json"):
        reference(vocab, settings).save(os.path.join(d, "tokenizer.json"))
    if layout in ("txt+config", "txt+json"):
        with open(vocab_path(vocab), "rb") as src, open(os.path.join(d, "vocab.txt"), "wb") as dst:
            dst.write(src.read())
        config = {"tokenizer_class": "BertTokenizer", "do_lower_case": settings["lowercase"],
                  "strip_accents": settings["strip_accents"],
                  "tokenize_chinese_chars": settings.get("handle_chinese_chars", True)}
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(config, f)
    return d


_text = {}


def text_lines(kind):
    """>= 5,000 lines of real text (bytes) of the kind, then the adversarial and random lines."""
    if kind not in _text:
        if kind == "english":
            real = gen.stdlib_corpus()[0]
        else:
            real = [t.encode() for t in kinds.mo_corpus()]
        if len(real) < gen.MIN_CORPUS_LINES:
            pytest.fail(f"only {len(real)} lines of {kind} text on this machine "
                        f"({'/usr/share/locale' if kind == 'mo' else 'stdlib'}); the test needs 5,000")
        _text[kind] = real + list(gen.ADVERSARIAL) + random_lines(20261203, 3000)
    return _text[kind]


def random_lines(seed, n):
    """Lines mixing the characters each normalizer setting treats differently."""
    rng = random.Random(seed)
    alphabet = ([chr(c) for c in range(0x20, 0x7F)] * 2
                + list("\t\x00\x01\x0b\x0c\x1f\x7f\x85\xa0\u3000\u200b\u200d\ufeff\ufffd\u00ad")
                + list("\u0301\u0308\u0327\u0316\u05b0\u0941\u093f\u0f39\u0f71\u0f72\u0345\u0323")
                + list("\u0130\u0131\u03a3\u03c3\u03c2\u0414\u00df\u1e9e\u212b\u00c5\u01c5\ufb01\u0149")
                + list("ÉéÈèÊêËëÀàÂâÄäÇçÑñÖöÜüÅåØøÆæ")
                + ["\U0001D165", "\U0001D16D", "\uac00", "\u1100\u1161", "\u4e2d", "\u6587", "\uf900",
                   "\u3042", "\u30ab", "\uff21", "\U0001F600", "\U0001F44D\U0001F3FD", "\u1734", "\u0898",
                   "\U00020000", "\U0002B740", "\u0627\u0644", "\u2028", "\u0e01\u0e34", "\u0928\u093f",
                   "[MASK]", "[SEP]", "[CLS", "##", "ing", "Der", "The", "la", "\r"])
    bad_bytes = [b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf0\x9f\x98", b"\xc0\xaf", b"\x80"]
    return gen.random_mix(rng, n, alphabet, bad_bytes, 60, 0.01, lambda rng: b"X" * rng.randint(95, 105))


@pytest.mark.parametrize("name", sorted(CASES))
def test_kind_parity(tmp_path, name):
    vocab, kind, settings, _ = CASES[name]
    model = write_case(str(tmp_path), name)
    lines = text_lines(kind)
    texts = gen.line_texts(lines)
    tk = reference(vocab, settings)
    for max_length in (0, 256):
        expected = gen.hf_ids(tk, texts, max_length)
        gen.assert_same_ids(f"{name}, max_length {max_length}", texts,
                            gen.spladex_ids(BIN, model, lines, max_length), expected)


def test_cased_is_never_lowercased(tmp_path):
    model = write_case(str(tmp_path), "cased-config")
    upper, lower = gen.spladex_ids(BIN, model, [b"The", b"the"], 0)
    assert upper != lower
    # the same vocabulary with a config that says lowercase: both become "the"
    with open(os.path.join(model, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True}, f)
    upper, lower = gen.spladex_ids(BIN, model, [b"The", b"the"], 0)
    assert upper == lower


def refusal(model):
    proc = subprocess.run([BIN, "tokenize", "--model", model], input=b"x\n", capture_output=True)
    assert proc.returncode != 0
    return proc.stderr.decode()


def test_refused_settings(tmp_path):
    model = write_case(str(tmp_path), "multilingual-uncased")  # vocab.txt + tokenizer.json + config
    # a tokenizer_config.json that contradicts tokenizer.json's normalizer
    with open(os.path.join(model, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": False}, f)
    msg = refusal(model)
    assert "tokenizer_config.json" in msg and "tokenizer.json" in msg and "agree" in msg, msg
    # a cased tokenizer.json beside a config without do_lower_case: transformers lowercases
    # (BertTokenizer's default), HF tokenizers does not: refused
    cased = write_case(str(tmp_path), "cased")
    with open(os.path.join(cased, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "BertTokenizer"}, f)
    assert "agree" in refusal(cased)
    with open(os.path.join(cased, "tokenizer_config.json"), "w") as f:  # the generic class: as is
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast"}, f)
    assert gen.spladex_ids(BIN, cased, [b"The"], 0) != gen.spladex_ids(BIN, cased, [b"the"], 0)
    os.remove(os.path.join(model, "tokenizer_config.json"))
    tj = os.path.join(model, "tokenizer.json")
    original = json.load(open(tj))
    for key, value, needle in [
        ("normalizer", {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "Lowercase"}]}, "Sequence"),
        ("normalizer", {"type": "BertNormalizer", "lowercase": "yes"}, "lowercase"),
        ("pre_tokenizer", {"type": "Whitespace"}, "Whitespace"),
        ("pre_tokenizer", None, "pre_tokenizer"),
    ]:
        broken = dict(original)
        broken[key] = value
        with open(tj, "w") as f:
            json.dump(broken, f)
        msg = refusal(model)
        assert needle in msg and "tokenizer.json" in msg, (key, value, msg)
