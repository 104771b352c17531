"""Shared test data and readers."""
from pathlib import Path

import spacy
from spacy.tokens import Doc, DocBin
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


def gold_docs(nlp, repeat=1):
    """TRAIN_DATA as Docs with their entities, `repeat` times over."""
    docs = []
    for text, annots in TRAIN_DATA * repeat:
        doc = nlp.make_doc(text)
        doc.ents = [doc.char_span(s, e, label=label) for s, e, label in annots]
        docs.append(doc)
    return docs


def train(nlp, examples, n_iter=60, drop=0.3, seed=0, batch_size=2):
    """Seeded initialize, then n_iter shuffled passes; the last pass's losses."""
    import random

    from spacy.util import fix_random_seed, minibatch

    fix_random_seed(seed)
    optimizer = nlp.initialize(get_examples=lambda: examples)
    examples = list(examples)
    losses = {}
    for _ in range(n_iter):
        random.shuffle(examples)
        losses = {}
        for batch in minibatch(examples, size=batch_size):
            nlp.update(batch, sgd=optimizer, losses=losses, drop=drop)
    return losses


def train_small_pipeline(path, n_iter=80, sentencizer=True):
    """A pipeline trained on TRAIN_DATA (seeded), saved to `path`; returns path."""
    from spacy.util import fix_random_seed

    fix_random_seed(0)
    nlp = spacy.blank("en")
    if sentencizer:
        nlp.add_pipe("sentencizer")
    nlp.add_pipe("bilstm_crf_ner")
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(n_iter):
        nlp.update(examples, sgd=optimizer)
    nlp.to_disk(path)
    return path


def randomize_params(ner, scale, seed):
    """Random output and CRF parameters, so decoding sees real choices; every
    label counts as trained (untrained labels are never predicted)."""
    import numpy

    ner.cfg["untrained_labels"] = []

    rng = numpy.random.default_rng(seed)
    for layer in (ner.model.get_ref("output"), ner.model.get_ref("crf")):
        for name in layer.param_names:
            p = layer.get_param(name)
            layer.set_param(name, rng.normal(0, scale, p.shape).astype("f"))


def write_gold_corpus(path: Path) -> Path:
    """train.spacy (TRAIN_DATA five times) and dev.spacy (once) in `path`."""
    docs = gold_docs(spacy.blank("en"), repeat=5)
    DocBin(docs=docs).to_disk(path / "train.spacy")
    DocBin(docs=docs[:4]).to_disk(path / "dev.spacy")
    return path
