"""Entity probabilities from the CRF against brute force: for small problems,
enumerate every tag sequence, and add up the probability of those that decode
to a given entity."""
import itertools

import numpy
import pytest
import torch

from spacy_bilstm_crf import confidence
from spacy_bilstm_crf.models.crf import constrain, forward_backward, marginals
from spacy_bilstm_crf.models.packing import pack_index, packed, unpacked
from spacy_bilstm_crf.tags import allowed_transitions, n_tags, tag_ids_to_spans


def problem(seed, lengths, n_labels, scheme):
    k = n_tags(n_labels, scheme)
    g = torch.Generator().manual_seed(seed)
    flat = torch.randn(sum(lengths), k, generator=g, dtype=torch.float64) * 2
    params = [torch.randn(k, k, generator=g, dtype=torch.float64), torch.randn(k, generator=g, dtype=torch.float64),
              torch.randn(k, generator=g, dtype=torch.float64)]
    allowed = [torch.from_numpy(a) for a in allowed_transitions(n_labels, scheme)]
    trans, start, end = (constrain(p, a) for p, a in zip(params, allowed))
    return flat, trans, start, end


def entity_probabilities_bf(em, trans, start, end):
    """{(start, end, label): p} over all tag sequences of one sequence."""
    T, K = em.shape
    paths = list(itertools.product(range(K), repeat=T))
    idx = torch.tensor(paths)
    scores = em[torch.arange(T), idx].sum(1) + start[idx[:, 0]] + end[idx[:, -1]]
    if T > 1:
        scores = scores + trans[idx[:, :-1], idx[:, 1:]].sum(1)
    probs = torch.softmax(scores, 0).numpy()
    return paths, probs


@pytest.mark.parametrize("scheme,n_labels", [("BILUO", 1), ("BIO", 2), ("BIO", 1)])
@pytest.mark.parametrize("lengths", [[1], [4], [3, 5, 2]])
def test_entity_probability_is_exact(scheme, n_labels, lengths, crf_path):
    flat, trans, start, end = problem(sum(lengths), lengths, n_labels, scheme)
    pack = pack_index(lengths)
    lat = confidence.lattice(flat, pack, numpy.array(lengths), trans, start, end)
    numpy.testing.assert_allclose(lat.marginals(), unpacked(marginals(packed(flat, pack), trans, start, end), pack).numpy(),
                                  atol=1e-9)
    offset = 0
    for n in lengths:
        paths, probs = entity_probabilities_bf(flat[offset:offset + n], trans, start, end)
        expected = {}
        for path, p in zip(paths, probs):
            for s, e, label in tag_ids_to_spans(numpy.array(path), scheme):
                expected[(s + offset, e + offset, label)] = expected.get((s + offset, e + offset, label), 0.0) + p
        every = [(s, e, label) for s in range(offset, offset + n) for e in range(s + 1, offset + n + 1)
                 for label in range(n_labels)]
        got = confidence.span_probabilities(lat, numpy.array(every), scheme)
        numpy.testing.assert_allclose(got, [expected.get(span, 0.0) for span in every], atol=1e-6)
        assert sum(expected.values()) > 0.05  # the test sees real entities, not only zeros
        # every span at or above the threshold is a candidate
        for threshold in (0.05, 0.3):
            candidates = set(map(tuple, confidence.candidate_spans(lat, n_labels, scheme, threshold).tolist()))
            assert {span for span, p in expected.items() if p >= threshold} <= candidates
        offset += n


def test_forward_backward_log_z_and_order(crf_path):
    lengths = [2, 6, 1, 4]
    flat, trans, start, end = problem(3, lengths, 2, "BILUO")
    pack = pack_index(lengths)
    alpha, beta, log_z = forward_backward(packed(flat, pack), trans, start, end)
    log_z = unpacked(log_z, pack)
    offset = 0
    for n in lengths:
        # every token of a sequence carries the same log Z
        assert torch.allclose(log_z[offset:offset + n], log_z[offset].expand(n))
        offset += n
    marg = torch.exp(unpacked(alpha + beta, pack) - log_z[:, None])
    assert torch.allclose(marg.sum(1), torch.ones(sum(lengths), dtype=marg.dtype))


# the component -------------------------------------------------------------

import spacy  # noqa: E402
from spacy.tokens import Doc, DocBin  # noqa: E402
from spacy.training import Example  # noqa: E402

from .helpers import read_conll, train  # noqa: E402


@pytest.fixture(scope="module")
def conll_model():
    """Trained briefly on 500 CoNLL-2003 sentences; 300 more held out."""
    from .helpers import DATASETS

    path = DATASETS / "conll2003" / "train.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner")
    docs = read_conll(path, 800, nlp.vocab)
    examples = [Example(Doc(nlp.vocab, words=[t.text for t in d]), d) for d in docs[:500]]
    train(nlp, examples, n_iter=8, drop=0.5, batch_size=16)
    return nlp, docs[500:]


def test_entity_scores_are_probabilities_higher_on_correct_entities(conll_model):
    nlp, held_out = conll_model
    right, wrong = [], []
    for gold, doc in zip(held_out, nlp.pipe(Doc(nlp.vocab, words=[t.text for t in g]) for g in held_out)):
        group = doc.spans["bilstm_crf_ner"]
        scores = group.attrs["scores"]
        assert len(scores) == len(group) == len(doc.ents)
        assert [(s.start, s.end, s.label_) for s in group] == [(e.start, e.end, e.label_) for e in doc.ents]
        assert ((scores >= 0) & (scores <= 1)).all()
        truth = {(e.start, e.end, e.label_) for e in gold.ents}
        for span, score in zip(group, scores):
            (right if (span.start, span.end, span.label_) in truth else wrong).append(score)
    assert len(right) > 50 and len(wrong) > 10
    assert numpy.mean(right) > numpy.mean(wrong) + 0.15, (numpy.mean(right), numpy.mean(wrong))


def test_alternatives_above_a_threshold(conll_model):
    nlp, held_out = conll_model
    ner = nlp.get_pipe("bilstm_crf_ner")
    ner.cfg["alternatives_threshold"] = 0.1
    try:
        docs = list(nlp.pipe(Doc(nlp.vocab, words=[t.text for t in g]) for g in held_out[:100]))
    finally:
        ner.cfg["alternatives_threshold"] = None
    n_alternatives = 0
    for doc in docs:
        group = doc.spans["bilstm_crf_ner"]
        scores = group.attrs["scores"]
        keys = [(s.start, s.end, s.label_) for s in group]
        assert len(set(keys)) == len(keys) == len(scores)
        n_ents = len(doc.ents)
        assert keys[:n_ents] == [(e.start, e.end, e.label_) for e in doc.ents]
        assert (scores[n_ents:] >= 0.1).all()
        n_alternatives += len(keys) - n_ents
    assert n_alternatives > 0
    # the probabilities of disjoint alternatives of one start never add up past 1
    for doc in docs:
        by_start = {}
        for span, score in zip(doc.spans["bilstm_crf_ner"], doc.spans["bilstm_crf_ner"].attrs["scores"]):
            by_start[span.start] = by_start.get(span.start, 0.0) + score
        assert max(by_start.values(), default=0.0) <= 1.0 + 1e-4


def test_scores_survive_docbin_and_skip_preset_entities(conll_model):
    nlp, held_out = conll_model
    words = [t.text for t in held_out[0]]
    doc = Doc(nlp.vocab, words=words)
    doc.set_ents([spacy.tokens.Span(doc, 0, 1, label="MISC")], default="missing")
    doc = nlp(doc)
    group = doc.spans["bilstm_crf_ner"]
    assert all(span.start > 0 for span in group)  # the preset entity is kept and not scored
    assert doc.ents[0].label_ == "MISC" and doc.ents[0].start == 0
    back = list(DocBin(docs=[doc], store_user_data=True).get_docs(nlp.vocab))[0]
    assert list(back.spans["bilstm_crf_ner"].attrs["scores"]) == pytest.approx(list(group.attrs["scores"]))


def test_no_spans_key_writes_no_span_group(conll_model):
    nlp, held_out = conll_model
    ner = nlp.get_pipe("bilstm_crf_ner")
    ner.cfg["spans_key"] = None
    try:
        doc = nlp(Doc(nlp.vocab, words=[t.text for t in held_out[1]]))
    finally:
        ner.cfg["spans_key"] = "bilstm_crf_ner"
    assert "bilstm_crf_ner" not in doc.spans


def test_bad_threshold_is_refused():
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="alternatives_threshold"):
        nlp.add_pipe("bilstm_crf_ner", config={"alternatives_threshold": 1.5})
