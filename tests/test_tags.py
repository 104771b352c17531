import numpy
import pytest
from spacy.tokens import Doc, Span
from spacy.training import biluo_tags_to_spans, biluo_to_iob, iob_to_biluo
from spacy.vocab import Vocab

from spacy_bilstm_crf.formats.conll import tags_to_spans
from spacy_bilstm_crf.tags import (
    MISSING, NO_LABEL, UNKNOWN_LABEL, allowed_transitions, iob_to_tag_ids, is_valid,
    split_entities_at, tag_ids_to_spans, tag_names,
)

LABELS = ["PER", "LARGE-ANIMAL"]


def allowed_pairs(scheme):
    names = tag_names(LABELS, scheme)
    trans, start, end = allowed_transitions(len(LABELS), scheme)
    pairs = {(names[a], names[b]) for a, b in zip(*numpy.nonzero(trans))}
    return pairs, {names[i] for i in numpy.flatnonzero(start)}, {names[i] for i in numpy.flatnonzero(end)}


def test_tag_names():
    assert tag_names(["PER"], "BILUO") == ["O", "B-PER", "I-PER", "L-PER", "U-PER"]
    assert tag_names(["LARGE-ANIMAL"], "BIO") == ["O", "B-LARGE-ANIMAL", "I-LARGE-ANIMAL"]
    with pytest.raises(ValueError, match="IOBES"):
        tag_names(["PER"], "IOBES")


def test_allowed_transitions_biluo_exact():
    pairs, start, end = allowed_pairs("BILUO")
    P, A = "PER", "LARGE-ANIMAL"
    outside = ["O", f"B-{P}", f"U-{P}", f"B-{A}", f"U-{A}"]  # what may follow a closed state
    expected = {(prev, nxt) for prev in ["O", f"L-{P}", f"U-{P}", f"L-{A}", f"U-{A}"] for nxt in outside}
    for label in (P, A):
        expected |= {(f"{p}-{label}", f"{n}-{label}") for p in "BI" for n in "IL"}
    assert pairs == expected
    assert start == set(outside)
    assert end == {"O", f"L-{P}", f"U-{P}", f"L-{A}", f"U-{A}"}


def test_allowed_transitions_bio_exact():
    pairs, start, end = allowed_pairs("BIO")
    P, A = "PER", "LARGE-ANIMAL"
    names = tag_names(LABELS, "BIO")
    expected = {(prev, nxt) for prev in names for nxt in ["O", f"B-{P}", f"B-{A}"]}
    expected |= {(f"{p}-{label}", f"I-{label}") for p in "BI" for label in (P, A)}
    assert pairs == expected
    assert start == {"O", f"B-{P}", f"B-{A}"}
    assert end == set(names)


def ids(tags, scheme):
    names = tag_names(LABELS, scheme)
    return numpy.array([names.index(t) for t in tags])


@pytest.mark.parametrize("scheme", ["BILUO", "BIO"])
def test_spans_from_tag_ids(scheme):
    biluo = ["U-PER", "O", "B-LARGE-ANIMAL", "I-LARGE-ANIMAL", "L-LARGE-ANIMAL", "B-PER", "L-PER", "U-PER"]
    tags = biluo if scheme == "BILUO" else biluo_to_iob(biluo)
    assert tag_ids_to_spans(ids(tags, scheme), scheme) == [(0, 1, 0), (2, 5, 1), (5, 7, 0), (7, 8, 0)]
    assert tag_ids_to_spans(numpy.array([], dtype=int), scheme) == []


@pytest.mark.parametrize("scheme", ["BILUO", "BIO"])
def test_iob_to_tag_ids(scheme):
    # token.ent_iob: 3=B 1=I 2=O 0=missing; a B with no type is blocked
    iob = numpy.array([3, 1, 1, 2, 3, 0, 3, 3, 1])
    label = numpy.array([1, 1, 1, NO_LABEL, 0, NO_LABEL, NO_LABEL, UNKNOWN_LABEL, UNKNOWN_LABEL])
    biluo = ["B-LARGE-ANIMAL", "I-LARGE-ANIMAL", "L-LARGE-ANIMAL", "O", "U-PER"]
    tags = biluo if scheme == "BILUO" else biluo_to_iob(biluo)
    expected = list(ids(tags, scheme)) + [MISSING, 0, MISSING, MISSING]
    assert iob_to_tag_ids(iob, label, scheme).tolist() == expected


def test_split_entities_at_segment_starts():
    tags = ["B-PER", "I-PER", "I-PER", "L-PER", "O", "U-PER"]
    out = split_entities_at(ids(tags, "BILUO"), numpy.array([0, 2, 3]), "BILUO")
    names = tag_names(LABELS, "BILUO")
    assert [names[i] for i in out] == ["B-PER", "L-PER", "U-PER", "U-PER", "O", "U-PER"]
    assert is_valid(out[:2], 2, "BILUO") and is_valid(out[2:3], 2, "BILUO")
    bio = split_entities_at(ids(["B-PER", "I-PER", "I-PER"], "BIO"), numpy.array([0, 1]), "BIO")
    assert [tag_names(LABELS, "BIO")[i] for i in bio] == ["B-PER", "B-PER", "I-PER"]
    assert split_entities_at(numpy.array([MISSING, MISSING]), numpy.array([0, 1]), "BILUO").tolist() == [MISSING, MISSING]


def test_matches_spacy_iob_to_biluo():
    """IOB2 tags read as the CoNLL reader reads them (an I- after O or after
    another type starts an entity), then turned into BILUO tag ids from the
    doc's entities as in training, are the tags of spaCy's iob_to_biluo."""
    iob = ["B-PER", "I-PER", "O", "I-LARGE-ANIMAL", "B-LARGE-ANIMAL", "I-PER", "I-PER", "B-PER", "B-PER"]
    biluo = iob_to_biluo(iob)
    assert biluo == ["B-PER", "L-PER", "O", "U-LARGE-ANIMAL", "U-LARGE-ANIMAL", "B-PER", "L-PER", "U-PER", "U-PER"]
    doc = Doc(Vocab(), words=[f"w{i}" for i in range(len(iob))])
    spans, _ = tags_to_spans(iob, "IOB2")
    doc.ents = [Span(doc, start, end, label) for start, end, label in spans]
    assert [(e.start, e.end, e.label_) for e in biluo_tags_to_spans(doc, biluo)] == spans
    label = [LABELS.index(t.ent_type_) if t.ent_type_ else NO_LABEL for t in doc]
    names = tag_names(LABELS, "BILUO")
    assert [names[i] for i in iob_to_tag_ids(doc.to_array("ENT_IOB"), label, "BILUO")] == biluo
