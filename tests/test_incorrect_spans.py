"""Negative annotation, as spaCy's ner has it (`incorrect_spans_key`): spans
in doc.spans[key] of a reference doc are known not to be entities. The loss
is checked against brute force: enumerate every tag sequence, keep those that
agree with the gold and do not tag exactly the incorrect span."""
import numpy
import pytest
import spacy
import torch
from spacy.tokens import Span
from spacy.training import Example
from spacy.util import fix_random_seed

from spacy_bilstm_crf.confidence import entity_scores

from .helpers import TRAIN_DATA, make_examples, randomize_params
from .test_partial import ANNOTATIONS, LABELS, MISS, all_paths, consistent, make_reference

KEY = "incorrect_spans"
# one incorrect span (start, end, label) per annotation of test_partial; None: none
INCORRECT = [
    (0, 3, "LOC"),  # the gold entity may go on into the missing tokens: possible
    (2, 4, "LOC"),  # over the missing tokens
    (3, 4, "LOC"),  # a missing token after the entity
    (1, 2, "PER"),  # nothing known
    (1, 2, "LOC"),  # the gold says PER there: impossible, no loss
    None,
]


def tags_exactly(names, start, end, label, scheme):
    """Whether a tag sequence (tag names) has exactly this entity."""
    n = end - start
    if scheme == "BILUO":
        chain = [f"U-{label}"] if n == 1 else [f"B-{label}"] + [f"I-{label}"] * (n - 2) + [f"L-{label}"]
        return list(names[start:end]) == chain
    chain = [f"B-{label}"] + [f"I-{label}"] * (n - 1)
    return list(names[start:end]) == chain and (end == len(names) or names[end] != f"I-{label}")


def add_incorrect(example, span):
    if span is not None:
        example.reference.spans[KEY] = [Span(example.reference, span[0], span[1], span[2])]
    return example


def make_examples_with_incorrect(nlp):
    return [add_incorrect(Example(nlp.make_doc(" ".join(f"w{i}" for i in range(len(a)))), make_reference(nlp, a)),
                          span)
            for a, span in zip(ANNOTATIONS, INCORRECT)]


def make_ner(scheme, use_crf=True):
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bilstm_crf_ner", config={"scheme": scheme, "incorrect_spans_key": KEY,
                                                  "model": {"use_crf": use_crf}})
    for label in LABELS:
        ner.add_label(label)
    nlp.initialize()
    randomize_params(ner, scale=1.5, seed=3)
    return nlp, ner


@pytest.mark.parametrize("scheme", ["BILUO", "BIO"])
def test_incorrect_span_loss_is_brute_force(scheme):
    nlp, ner = make_ner(scheme)
    examples = make_examples_with_incorrect(nlp)
    scores = ner.model.predict([eg.predicted for eg in examples])
    loss, _ = ner.get_loss(examples, scores)

    total = 0.0
    for em, tokens, span in zip(scores, ANNOTATIONS, INCORRECT):
        paths, s = all_paths(ner, em)
        keep = [consistent(p, ner.tags, tokens) for p in paths]
        if span is not None:
            keep = [k and not tags_exactly([ner.tags[t] for t in p], *span, scheme) for k, p in zip(keep, paths)]
        total += float(torch.logsumexp(s, 0) - torch.logsumexp(s[torch.tensor(keep)], 0))
    assert loss == pytest.approx(total / sum(map(len, ANNOTATIONS)), rel=1e-4)
    # and the incorrect spans did change it: without them the loss is lower
    plain = [Example(eg.predicted, make_reference(nlp, a)) for eg, a in zip(examples, ANNOTATIONS)]
    assert ner.get_loss(plain, scores)[0] < loss - 1e-3


@pytest.mark.parametrize("scheme", ["BILUO", "BIO"])
def test_incorrect_span_loss_without_crf(scheme):
    """Independent tags: an incorrect span over unannotated tokens adds
    -log(1 - the product of its tags' probabilities)."""
    nlp, ner = make_ner(scheme, use_crf=False)
    examples = make_examples_with_incorrect(nlp)
    scores = ner.model.predict([eg.predicted for eg in examples])
    plain = [Example(eg.predicted, make_reference(nlp, a)) for eg, a in zip(examples, ANNOTATIONS)]
    for i, (s, e, label) in [(1, INCORRECT[1]), (3, INCORRECT[3])]:  # spans on missing tokens only
        probs = numpy.exp(scores[i] - scores[i].max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        if scheme == "BILUO":
            chain = ["U-" + label] if e - s == 1 else ["B-" + label] + ["I-" + label] * (e - s - 2) + ["L-" + label]
        else:
            chain = ["B-" + label] + ["I-" + label] * (e - s - 1)
        p = numpy.prod([probs[s + k, ner.tags.index(tag)] for k, tag in enumerate(chain)])
        if scheme == "BIO" and e < len(ANNOTATIONS[i]) and ANNOTATIONS[i][e][0] == MISS:
            p *= 1 - probs[e, ner.tags.index("I-" + label)]  # and the next token does not go on with it
        extra = (ner.get_loss([examples[i]], scores[i:i + 1])[0] - ner.get_loss([plain[i]], scores[i:i + 1])[0])
        assert extra * len(ANNOTATIONS[i]) == pytest.approx(-numpy.log1p(-p), rel=1e-3, abs=2e-6)


def test_incorrect_spans_of_unknown_labels_or_not_aligned_are_ignored():
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bilstm_crf_ner", config={"incorrect_spans_key": KEY})
    ner.add_label("LOC")
    nlp.initialize()
    text = "Who is Shaka Khan?"
    example = Example(nlp.make_doc(text), nlp.make_doc(text))
    scores = ner.model.predict([example.predicted])
    example.reference.spans[KEY] = [Span(example.reference, 2, 4, "PERSON")]
    assert ner.get_loss([example], scores)[0] == pytest.approx(0.0, abs=1e-6)
    example.reference.spans[KEY] = [Span(example.reference, 2, 4, "LOC")]
    assert ner.get_loss([example], scores)[0] > 0.0
    # tokenized differently: "Shaka" has no tokens of its own in the prediction
    reference = spacy.tokens.Doc(nlp.vocab, words=["Who", "is", "Shaka", "Khan", "?"])
    predicted = spacy.tokens.Doc(nlp.vocab, words=["Who", "is", "Sha", "kaKhan", "?"])
    example = Example(predicted, reference)
    scores = ner.model.predict([predicted])
    loss_without, _ = ner.get_loss([example], scores)
    example.reference.spans[KEY] = [Span(reference, 2, 3, "LOC")]
    assert ner.get_loss([example], scores)[0] == pytest.approx(loss_without, abs=1e-6)
    example.reference.spans[KEY] = [Span(reference, 2, 4, "LOC")]  # "Shaka Khan" does
    assert ner.get_loss([example], scores)[0] > loss_without + 1e-6


def test_conflicting_incorrect_span_is_a_clear_error():
    """As spaCy's test_neg_annotation_conflict: a span that is both gold and
    incorrect raises a ValueError naming it."""
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner", config={"incorrect_spans_key": KEY})
    example = Example.from_dict(nlp.make_doc("Who is Shaka Khan?"), {"entities": [(7, 17, "PERSON")]})
    example.reference.spans[KEY] = [Span(example.reference, 2, 4, "PERSON")]
    optimizer = nlp.initialize(get_examples=lambda: [example])
    with pytest.raises(ValueError, match="Shaka Khan"):
        nlp.update([example], sgd=optimizer)


def test_neg_annotation_updates():
    """As spaCy's test_neg_annotation: incorrect spans of another label, or
    overlapping the gold entity, train. The gold entity already rules them
    out, so they add nothing to its loss; on the same text without entity
    annotation they add to it."""
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bilstm_crf_ner", config={"incorrect_spans_key": KEY})
    ner.add_label("PERSON")
    ner.add_label("ORG")
    text = "Who is Shaka Khan?"
    annotated = Example.from_dict(nlp.make_doc(text), {"entities": [(7, 17, "PERSON")]})
    unannotated = Example(nlp.make_doc(text), nlp.make_doc(text))
    optimizer = nlp.initialize()
    scores = ner.model.predict([annotated.predicted])
    before = [ner.get_loss([eg], scores)[0] for eg in (annotated, unannotated)]
    for eg in (annotated, unannotated):
        eg.reference.spans[KEY] = [Span(eg.reference, 2, 4, "ORG"), Span(eg.reference, 2, 3, "PERSON"),
                                   Span(eg.reference, 1, 4, "PERSON")]
    assert ner.get_loss([annotated], scores)[0] == pytest.approx(before[0], abs=1e-6)
    assert before[1] == 0.0 and ner.get_loss([unannotated], scores)[0] > 0.01
    for _ in range(2):
        losses = {}
        nlp.update([annotated, unannotated], sgd=optimizer, losses=losses)
        assert numpy.isfinite(losses["bilstm_crf_ner"]) and losses["bilstm_crf_ner"] > 0


REJECTED_TEXT = "I like Paris and Rome."  # both LOC in TRAIN_DATA


def train_and_score(rejected: bool) -> float:
    """p("Paris" is LOC in REJECTED_TEXT) after training on TRAIN_DATA, and
    for the last half of the updates also on REJECTED_TEXT without entity
    annotation and, if rejected, with "Paris" LOC marked incorrect."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner", config={"incorrect_spans_key": KEY, "alternatives_threshold": 1e-6})
    examples = make_examples(nlp)
    optimizer = nlp.initialize(get_examples=lambda: examples)
    unannotated = Example(nlp.make_doc(REJECTED_TEXT), nlp.make_doc(REJECTED_TEXT))
    if rejected:
        unannotated.reference.spans[KEY] = [Span(unannotated.reference, 2, 3, "LOC")]
    for i in range(60):
        nlp.update(examples + ([unannotated] if i >= 30 else []), sgd=optimizer)
    for text, gold in TRAIN_DATA:  # the gold entities are still learnt
        assert [(e.start_char, e.end_char, e.label_) for e in nlp(text).ents] == gold
    return entity_scores(nlp(REJECTED_TEXT)).get((7, 12, "LOC"), 0.0)


def test_rejected_span_is_unlearnt():
    """A span the training data makes likely becomes unlikely once it is
    marked incorrect, and the same training without the mark keeps it."""
    p_plain = train_and_score(rejected=False)
    p_rejected = train_and_score(rejected=True)
    assert p_plain > 0.5
    assert p_rejected < 0.5 * p_plain
