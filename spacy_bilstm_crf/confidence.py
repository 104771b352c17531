"""Entity confidences from the CRF: the exact probability that a span with a
label is one entity, under the same constraints as the Viterbi decode.

For an entity on tokens s..e-1 the tags are fixed (B, I..., L or U), so its
probability is one product of forward message, chain score and backward
message (`crf.chain_log_probs`). In BIO, "exactly this span" also means the
next token does not continue it: p(B I...) - p(B I... I). Plain arrays, no
spaCy.
"""
from typing import List, NamedTuple, Optional, Tuple

import numpy
import torch

from .models import crf
from .models.packing import PackIndex, packed, unpacked
from .tags import SCHEMES, entity_chains


class Lattice(NamedTuple):
    """Everything the probability of a tag chain needs, in flat token order."""

    emissions: torch.Tensor  # (tokens, tags), constrained as in the decode
    transitions: torch.Tensor  # (tags, tags), constrained
    alpha: torch.Tensor
    beta: torch.Tensor
    log_z: torch.Tensor  # (tokens,) log Z of each token's sequence
    seq_end: numpy.ndarray  # (tokens,) flat index one past the token's sequence

    def marginals(self) -> numpy.ndarray:
        return torch.exp(self.alpha + self.beta - self.log_z[:, None]).numpy()


def lattice(flat: torch.Tensor, pack: PackIndex, lengths: numpy.ndarray,
            transitions: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> Lattice:
    """Run forward-backward over constrained emissions (flat order)."""
    alpha, beta, log_z = crf.forward_backward(packed(flat, pack), transitions, start, end)
    ends = numpy.cumsum(lengths)
    return Lattice(flat, transitions, unpacked(alpha, pack), unpacked(beta, pack), unpacked(log_z, pack),
                   numpy.repeat(ends, lengths))


def span_probabilities(lat: Lattice, spans: numpy.ndarray, scheme: str) -> numpy.ndarray:
    """p(exactly this entity) for (start, end, label index) rows in flat token
    indices; every span must lie inside one sequence."""
    spans = numpy.asarray(spans, dtype=numpy.int64).reshape(-1, 3)
    if not len(spans):
        return numpy.zeros((0,), dtype=numpy.float32)
    log_p = _chains(lat, spans, scheme)
    probs = numpy.exp(log_p)
    if scheme == "BIO":  # minus the paths where the next token continues the entity
        starts, ends, labels = spans.T
        open_ = ends < lat.seq_end[starts]
        if open_.any():
            longer = numpy.stack([starts[open_], ends[open_] + 1, labels[open_]], axis=1)
            probs[open_] -= numpy.exp(_chains(lat, longer, scheme))  # B I... I
    return numpy.clip(probs, 0.0, 1.0).astype(numpy.float32)


def _chains(lat: Lattice, spans: numpy.ndarray, scheme: str) -> numpy.ndarray:
    positions, tags, entity = entity_chains(spans[:, 0], spans[:, 1], spans[:, 2], scheme)
    log_p = crf.chain_log_probs(
        lat.emissions, lat.transitions, lat.alpha, lat.beta, lat.log_z,
        torch.from_numpy(positions), torch.from_numpy(tags), torch.from_numpy(entity), len(spans),
    )
    return log_p.numpy().astype(numpy.float64)


def candidate_spans(lat: Lattice, n_labels: int, scheme: str, threshold: float) -> numpy.ndarray:
    """Spans that may have p >= threshold: a span's probability is at most the
    marginal of each of its tags, so only starts, insides and ends whose
    marginals reach the threshold are combined. Rows (start, end, label)."""
    marg = lat.marginals()
    width = len(SCHEMES[scheme])
    found: List[Tuple[int, int, int]] = []
    for label in range(n_labels):
        base = 1 + width * label
        p_b, p_i = marg[:, base], marg[:, base + 1]
        if scheme == "BILUO":
            p_l, p_u = marg[:, base + 2], marg[:, base + 3]
            found.extend((int(t), int(t) + 1, label) for t in numpy.flatnonzero(p_u >= threshold))
            closes = p_l >= threshold
        else:
            closes = numpy.ones(len(marg), dtype=bool)
            found.extend((int(t), int(t) + 1, label) for t in numpy.flatnonzero(p_b >= threshold))
        for s in numpy.flatnonzero(p_b >= threshold):
            for t in range(s + 1, int(lat.seq_end[s])):
                if closes[t] and (scheme == "BILUO" or p_i[t] >= threshold):
                    found.append((int(s), t + 1, label))
                if p_i[t] < threshold:
                    break
    return numpy.array(found, dtype=numpy.int64).reshape(-1, 3)


def scored_spans(lat: Lattice, decoded: numpy.ndarray, n_labels: int, scheme: str,
                 threshold: Optional[float]) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """The decoded spans (rows start, end, label) and their probabilities,
    then, with a threshold, the other spans at least that probable."""
    if threshold is None:
        return decoded, span_probabilities(lat, decoded, scheme)
    others = candidate_spans(lat, n_labels, scheme, threshold)
    seen = set(map(tuple, decoded.tolist()))
    others = others[[tuple(row) not in seen for row in others.tolist()]].reshape(-1, 3)
    spans = numpy.concatenate([decoded, others])
    probs = span_probabilities(lat, spans, scheme)
    keep = (numpy.arange(len(spans)) < len(decoded)) | (probs >= threshold)
    return spans[keep], probs[keep]


def entity_scores(doc) -> dict:
    """{(start_char, end_char, label): probability} from every span group of
    the doc that carries "scores" (spancat's convention, which the component
    follows in doc.spans[spans_key])."""
    found = {}
    for group in doc.spans.values():
        scores = group.attrs.get("scores")
        if scores is None or len(scores) != len(group):
            continue
        for span, score in zip(group, scores):
            found.setdefault((span.start_char, span.end_char, span.label_), float(score))
    return found


def entity_rows(doc) -> List[dict]:
    """The doc's entities as JSON rows (character offsets, label, text), each
    with its score from entity_scores, or None where no group scores it."""
    scores = entity_scores(doc)
    return [{"start": e.start_char, "end": e.end_char, "label": e.label_, "text": e.text,
             "score": scores.get((e.start_char, e.end_char, e.label_))} for e in doc.ents]
