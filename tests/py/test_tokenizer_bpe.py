"""Byte-level BPE (RoBERTa's tokenizer.json) parity: `spladex tokenize` must give exactly the ids
of HF tokenizers (run live), 100% of lines.

The tokenizer is trained here, now, with tokenizers' ByteLevelBPETokenizer on local text (the
stdlib's docstrings and the gettext translations under /usr/share/locale, as
scripts/gen_tokenizer_kinds.py reads them), and given RoBERTa's specials and post-processor
(<s> 0, <pad> 1, </s> 2, <unk> 3, <mask> with lstrip; RobertaProcessing), once with ByteLevel's
add_prefix_space off (RoBERTa's) and once on (the same file edited). Its vocabulary and
merge ranks do not have to be reproducible: spladex and the reference read the same file.
Lines: >= 5,000 of real English and >= 5,000 of multilingual text, the adversarial set of
gen_tokenizer_fixture.py, seeded random mixes (contractions, digits, emoji, CJK, combining
marks, odd whitespace, <mask> with spaces before it, invalid UTF-8), and one line of a
megabyte; at max_length 0, 256 and 7.
"""
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


@pytest.fixture(scope="module")
def corpus():
    english = gen.stdlib_corpus()[0]
    multi = [t.encode() for t in kinds.mo_corpus()]
    assert len(english) >= gen.MIN_CORPUS_LINES and len(multi) >= gen.MIN_CORPUS_LINES, \
        f"{len(english)} English, {len(multi)} multilingual lines: the test needs 5,000 of each"
    return english, multi


@pytest.fixture(scope="module", params=[False, True], ids=["no_prefix_space", "add_prefix_space"])
def bpe(request, corpus, tmp_path_factory):
    from tokenizers import AddedToken, ByteLevelBPETokenizer, processors
    english, multi = corpus
    tk = ByteLevelBPETokenizer(add_prefix_space=False)
    texts = [b.decode("utf-8", errors="replace") for b in english + multi]
    tk.train_from_iterator(texts, vocab_size=4000, min_frequency=2,
                           special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    tk.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tk.add_special_tokens([AddedToken("<mask>", lstrip=True)])
    d = tmp_path_factory.mktemp("bpe")
    path = os.path.join(str(d), "tokenizer.json")
    tk.save(path)
    if request.param:  # the same vocabulary and merges, ByteLevel's add_prefix_space on
        import json
        conf = json.load(open(path, encoding="utf-8"))
        assert conf["pre_tokenizer"]["type"] == "ByteLevel"
        conf["pre_tokenizer"]["add_prefix_space"] = True
        with open(path, "w", encoding="utf-8") as f:
            json.dump(conf, f, ensure_ascii=False)
    import tokenizers
    ref = tokenizers.Tokenizer.from_file(path)
    ref.no_padding()
    return str(d), ref


def random_lines(seed, n):
    rng = random.Random(seed)
    alphabet = ([chr(c) for c in range(0x20, 0x7F)] * 3
                + list("\t\x00\x0b\x0c\x1c\x85\xa0\u1680\u2000\u2007\u200b\u2028\u3000\ufeff\ufffd")
                + list("\u0301\u0308\u0327\u05b0\u0941\u093f\u0e34\u0345")
                + list("ÉéßİıΣσςДж٣۴०১²½ⅣⅫ①")
                + ["\U0001F600", "\U0001F44D\U0001F3FD", "\u4e2d\u6587", "\uac00", "\u3042\u30ab", "\U00020000",
                   "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "''", " <mask>", "  <mask>", "\t<mask>",
                   "<mask>", "<s>", "</s>", "<pad>", "<unk>", "<mas", "  ", "   ", "\n".replace("\n", " "),
                   "the", " the", "Hello", "123", "3.14", "\r"])
    bad = [b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf0\x9f\x98", b"\xc0\xaf", b"\x80"]
    return gen.random_mix(rng, n, alphabet, bad, 50, 0.01,
                          lambda rng: rng.choice([b"a", b"1", b" ", b"!"]) * rng.randint(20, 300))


def compare(name, model, ref, lines, max_length):
    texts = gen.line_texts(lines)
    gen.assert_same_ids(f"{name}, max_length {max_length}", texts, gen.spladex_ids(BIN, model, lines, max_length),
                        gen.hf_ids(ref, texts, max_length))


@pytest.mark.parametrize("max_length", [0, 256, 7])
def test_bpe_parity(corpus, bpe, max_length):
    model, ref = bpe
    english, multi = corpus
    compare("english", model, ref, english, max_length)
    compare("multilingual", model, ref, multi, max_length)
    compare("adversarial + random", model, ref, list(gen.ADVERSARIAL) + random_lines(7, 5000), max_length)


def test_bpe_long_line(bpe):
    model, ref = bpe
    lines = [("The quick brown fox's 12 naïve cafés 中文 <mask> " * 20000).encode(), b"a" * 300000]
    compare("long lines", model, ref, lines, 0)


def test_bpe_refusals(bpe, tmp_path):
    import json
    model, _ = bpe
    original = json.load(open(os.path.join(model, "tokenizer.json")))
    for key, value, needle in [("normalizer", {"type": "NFC"}, "NFC"),
                               ("pre_tokenizer", {"type": "ByteLevel", "use_regex": False}, "use_regex"),
                               ("pre_tokenizer", {"type": "Metaspace"}, "Metaspace"),
                               ("post_processor", None, "post_processor")]:
        broken = dict(original)
        broken[key] = value
        d = tmp_path / key
        d.mkdir(exist_ok=True)
        (d / "tokenizer.json").write_text(json.dumps(broken))
        p = subprocess.run([BIN, "tokenize", "--model", str(d)], input=b"x\n", capture_output=True)
        assert p.returncode != 0 and needle in p.stderr.decode(), (key, p.stderr)
