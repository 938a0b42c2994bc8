#!/usr/bin/env python3
"""Writes a sample corpus for the demo from real text in an installed package: the WordNet
glosses of Debian's `wordnet-base` (/usr/share/wordnet/data.{noun,verb,adj,adv}), grouped into
passage-sized records with ids, as MS MARCO-style TSV (`id<TAB>text`).

Each synset becomes "lemma, lemma (pos): gloss"; consecutive synsets of one data file are joined
until a passage has at least --words words; a passage's id is "wn-<pos>-<offset>" of its first
synset. With --docs N, N passages are taken evenly spaced over the whole lexicon (so a small
sample still covers every part of speech and topic). Deterministic: the same package version and
arguments always give the same bytes.

usage: make_sample_corpus.py OUT.tsv [--docs N] [--words W] [--wordnet DIR]
"""
import argparse
import os
import sys

POS = [("noun", "n"), ("verb", "v"), ("adj", "a"), ("adv", "r")]
POS_NAME = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}


def synsets(path):
    """(offset, pos letter, lemmas, gloss) of each synset line of a WordNet data file."""
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  ") or "|" not in line:
                continue  # license header
            head, gloss = line.split("|", 1)
            fields = head.split()
            offset, pos, count = fields[0], fields[2], int(fields[3], 16)
            lemmas = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
            lemmas = [w.split("(")[0] for w in lemmas]  # adjective markers like "(a)"
            yield offset, pos, lemmas, " ".join(gloss.split())


def passages(wordnet, min_words):
    for name, letter in POS:
        path = os.path.join(wordnet, "data." + name)
        if not os.path.exists(path):
            sys.exit("make_sample_corpus: %s is missing: apt-get install wordnet-base" % path)
        parts, words, first = [], 0, None
        for offset, pos, lemmas, gloss in synsets(path):
            text = "%s (%s): %s." % (", ".join(dict.fromkeys(lemmas)), POS_NAME.get(pos, pos),
                                     gloss.rstrip(" ;."))
            first = first or "wn-%s-%s" % (letter, offset)
            parts.append(text)
            words += len(text.split())
            if words >= min_words:
                yield first, " ".join(parts)
                parts, words, first = [], 0, None
        if parts:
            yield first, " ".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--docs", type=int, default=0, help="passages to keep (default: all)")
    ap.add_argument("--words", type=int, default=60, help="minimum words per passage (default 60)")
    ap.add_argument("--wordnet", default="/usr/share/wordnet")
    a = ap.parse_args()
    allp = list(passages(a.wordnet, a.words))
    if a.docs and a.docs < len(allp):
        allp = [allp[i * len(allp) // a.docs] for i in range(a.docs)]
    with open(a.out, "w", encoding="utf-8", newline="\n") as f:
        for doc_id, text in allp:
            f.write("%s\t%s\n" % (doc_id, text.replace("\t", " ")))
    print("make_sample_corpus: %d passages from WordNet glosses -> %s" % (len(allp), a.out),
          file=sys.stderr)


if __name__ == "__main__":
    main()
