"""The component with enough labels for the CRF's many-tag computations
(`crf.MANY_TAGS`: the transition matrix split by the scheme's constraints):
it learns, decodes around preset and blocked entities, gives valid tag
sequences from a random model, and predicts what the small-tag computations
predict."""
import numpy
import pytest
import spacy
from spacy.tokens import Span

from spacy_bilstm_crf.models import crf
from spacy_bilstm_crf.tags import is_valid, n_tags

from .helpers import TRAIN_DATA, make_examples, randomize_params, train

EXTRA = [f"EXTRA{i}" for i in range(20)]  # with LOC, ORG, PERSON: 23 labels, 93 BILUO tags
TEXTS = [text for text, _ in TRAIN_DATA] + ["Shaka Khan flew to London and Berlin.", "Rome met Paris.", ""]


def ents(doc):
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]


@pytest.fixture(scope="module")
def many():
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bilstm_crf_ner")
    for label in EXTRA:
        ner.add_label(label)
    losses = train(nlp, make_examples(nlp))
    return nlp, losses


def test_many_labels_learn(many):
    nlp, losses = many
    ner = nlp.get_pipe("bilstm_crf_ner")
    assert n_tags(len(ner.labels), ner.scheme) >= crf.MANY_TAGS
    assert losses["bilstm_crf_ner"] < 0.05
    for text, gold in TRAIN_DATA:
        assert ents(nlp(text)) == gold


def test_many_labels_predict_as_few(many, monkeypatch):
    """The same entities, and the same probabilities, as the computations
    used below MANY_TAGS tags."""
    nlp, _ = many
    split = list(nlp.pipe(TEXTS))
    monkeypatch.setattr(crf, "MANY_TAGS", 10**9)
    broadcast = list(nlp.pipe(TEXTS))
    assert [ents(d) for d in split] == [ents(d) for d in broadcast]
    assert sum(len(d.ents) for d in split) >= 8
    for a, b in zip(split, broadcast):
        group_a, group_b = a.spans["bilstm_crf_ner"], b.spans["bilstm_crf_ner"]
        assert [(s.start, s.end, s.label_) for s in group_a] == [(s.start, s.end, s.label_) for s in group_b]
        numpy.testing.assert_allclose(group_a.attrs["scores"], group_b.attrs["scores"], atol=1e-4)


def test_many_labels_decode_around_preset_and_blocked(many):
    nlp, _ = many
    ner = nlp.get_pipe("bilstm_crf_ner")
    doc = nlp.make_doc("Angela Merkel flew to Paris on Monday.")
    doc.set_ents([Span(doc, 3, 5, "EXTRA7")], default="unmodified")
    assert ents(ner(doc)) == [(0, 13, "PERSON"), (19, 27, "EXTRA7")]
    doc = nlp.make_doc("Angela Merkel flew to Paris on Monday.")
    doc.set_ents([], blocked=[doc[1:5]], default="unmodified")
    doc = ner(doc)
    assert [t.ent_type_ for t in doc][1:5] == ["", "", "", ""]
    assert all(e.end <= 1 or e.start >= 5 for e in doc.ents)


def test_many_labels_untrained_and_random_models():
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bilstm_crf_ner")
    for label in EXTRA:
        ner.add_label(label)
    nlp.initialize()
    docs = [nlp.make_doc(" ".join(f"w{i}" for i in range(n))) for n in [1, 2, 3, 7, 30]]
    assert not any(doc.ents for doc in nlp.pipe(d.text for d in docs))  # no noise before training
    randomize_params(ner, scale=5, seed=0)
    predictions = ner.predict(docs)
    for pred in predictions:
        assert is_valid(pred.tags, len(EXTRA), "BILUO")
    assert any((numpy.asarray(pred.tags) != 0).any() for pred in predictions)  # entities, not only O
