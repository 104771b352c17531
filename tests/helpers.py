"""Shared test data and readers."""
from pathlib import Path

import spacy
from spacy.tokens import Doc
from spacy.training import Example, biluo_tags_to_spans, iob_to_biluo

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"

TRAIN_DATA = [
    ("Who is Shaka Khan?", [(7, 17, "PERSON")]),
    ("I like London and Berlin.", [(7, 13, "LOC"), (18, 24, "LOC")]),
    ("Angela Merkel flew to Paris on Monday.", [(0, 13, "PERSON"), (22, 27, "LOC")]),
    ("The Large-Animal Society met in Rome.", [(4, 24, "ORG"), (32, 36, "LOC")]),
]


def make_examples(nlp, data=TRAIN_DATA):
    return [Example.from_dict(nlp.make_doc(text), {"entities": ents}) for text, ents in data]


def read_conll(path, n_sents, vocab):
    """The first n_sents sentences of a CoNLL-2003 file as gold Docs."""
    docs, words, tags = [], [], []
    for line in open(path, encoding="utf8"):
        line = line.strip()
        if not line or line.startswith("-DOCSTART-"):
            if words:
                doc = Doc(vocab, words=words)
                doc.ents = biluo_tags_to_spans(doc, iob_to_biluo(tags))
                docs.append(doc)
                words, tags = [], []
            if len(docs) >= n_sents:
                break
            continue
        cols = line.split()
        words.append(cols[0])
        tags.append(cols[-1])
    return docs
