"""Learning from partial annotation: tokens whose gold label is missing are
summed over in the CRF loss. The component's loss is checked against brute
force: enumerate every tag sequence, keep those that agree with spaCy's
per-token annotation wherever it is given."""
import itertools

import numpy
import pytest
import spacy
import torch
from spacy.attrs import ENT_IOB, ENT_TYPE
from spacy.tokens import Doc
from spacy.training import Example

from spacy_bilstm_crf.models.crf import constrain

from .helpers import randomize_params
from spacy_bilstm_crf.tags import allowed_transitions

B, I, O, MISS = 3, 1, 2, 0  # spaCy's ent_iob codes
# (iob, label) per token; label index into LABELS
ANNOTATIONS = [
    [(B, 0), (MISS, 0), (MISS, 0), (O, 0)],  # an entity that may go on into missing tokens
    [(B, 0), (I, 0), (MISS, 0), (MISS, 0), (B, 1)],
    [(MISS, 0), (I, 1), (O, 0), (MISS, 0)],  # inside an entity that began in missing tokens
    [(MISS, 0), (MISS, 0), (MISS, 0)],  # nothing known
    [(O, 0), (B, 1), (O, 0), (MISS, 0), (B, 0)],  # nothing missing near an entity
    [(B, 1)],
]
LABELS = ["LOC", "PER"]


def make_reference(nlp, tokens):
    doc = Doc(nlp.vocab, words=[f"w{i}" for i in range(len(tokens))])
    types = [nlp.vocab.strings.add(LABELS[lab]) if iob in (B, I) else 0 for iob, lab in tokens]
    doc.from_array([ENT_IOB, ENT_TYPE], numpy.array([[iob, t] for (iob, _), t in zip(tokens, types)], dtype="uint64"))
    return doc


def consistent(path, tags, tokens):
    for tag_id, (iob, label) in zip(path, tokens):
        if iob == MISS:
            continue
        name = tags[tag_id]
        got = O if name == "O" else (B if name[0] in "BU" else I)
        if got != iob or (got != O and name[2:] != LABELS[label]):
            return False
    return True


def all_paths(ner, emissions):
    """Every tag sequence of a doc and its score under the component's CRF
    (float64), forbidden transitions scored NEG as in the component."""
    crf_layer = ner.model.get_ref("crf")
    allowed = allowed_transitions(len(ner.labels), ner.scheme)
    trans, start, end = (constrain(torch.tensor(crf_layer.get_param(n), dtype=torch.float64), torch.from_numpy(a))
                         for n, a in zip(("transitions", "start", "end"), allowed))
    em = torch.tensor(emissions, dtype=torch.float64)
    n = len(em)
    paths = list(itertools.product(range(len(ner.tags)), repeat=n))
    idx = torch.tensor(paths)
    s = em[torch.arange(n), idx].sum(1) + start[idx[:, 0]] + end[idx[:, -1]]
    if n > 1:
        s = s + trans[idx[:, :-1], idx[:, 1:]].sum(1)
    return paths, s


@pytest.mark.parametrize("scheme", ["BILUO", "BIO"])
def test_partial_label_loss_is_brute_force_marginalization(scheme):
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bilstm_crf_ner", config={"scheme": scheme})
    for label in LABELS:
        ner.add_label(label)
    nlp.initialize()
    randomize_params(ner, scale=1.5, seed=7)
    examples = [Example(nlp.make_doc(" ".join(f"w{i}" for i in range(len(a)))), make_reference(nlp, a))
                for a in ANNOTATIONS]
    scores = ner.model.predict([eg.predicted for eg in examples])
    loss, _ = ner.get_loss(examples, scores)

    total = 0.0
    for em, tokens in zip(scores, ANNOTATIONS):
        paths, s = all_paths(ner, em)
        keep = torch.tensor([consistent(p, ner.tags, tokens) for p in paths])
        total += float(torch.logsumexp(s, 0) - torch.logsumexp(s[keep], 0))
    assert loss == pytest.approx(total / sum(map(len, ANNOTATIONS)), rel=1e-4)


def test_unannotated_docs_give_no_gradient_and_annotated_ones_do():
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bilstm_crf_ner")
    ner.add_label("LOC")
    nlp.initialize()
    examples = [Example(nlp.make_doc("w0 w1 w2"), make_reference(nlp, ANNOTATIONS[3]))]
    _, d_scores = ner.get_loss(examples, ner.model.predict([eg.predicted for eg in examples]))
    assert numpy.abs(d_scores[0]).max() < 1e-6
    examples = [Example(nlp.make_doc("w0 w1"), make_reference(nlp, [(B, 0), (MISS, 0)]))]
    _, d_scores = ner.get_loss(examples, ner.model.predict([eg.predicted for eg in examples]))
    assert numpy.abs(d_scores[0]).max() > 1e-4
