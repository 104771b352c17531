"""What examples and docs say about the tags of their tokens: the gold tag
ids of training examples, the tags a token may take (given the gold, or when
predicting around the entities already on a doc), and the incorrect spans of
examples with the loss that keeps them out of the predictions."""
from typing import Collection, List, Optional, Sequence, Tuple

import numpy
import torch
from spacy.attrs import ENT_IOB, ENT_TYPE, IS_SPACE, ORTH
from spacy.strings import StringStore
from spacy.tokens import Doc, Span
from spacy.training import Example

from .errors import Errors
from .models import crf
from .models.packing import pack_index, packed
from .tags import (IOB_B, IOB_I, MISSING, NO_LABEL, UNKNOWN_LABEL, entity_chains, iob_to_tag_ids, n_tags,
                   split_entities_at, tag_names, tag_prefix_and_label)


def label_index(types: numpy.ndarray, labels: Sequence[str], strings: StringStore) -> numpy.ndarray:
    """Label index per token: NO_LABEL for no type, UNKNOWN_LABEL for types
    that are not among the labels."""
    index = {strings[label]: i for i, label in enumerate(labels)}
    uniq, inverse = numpy.unique(types, return_inverse=True)
    mapped = numpy.array([NO_LABEL if t == 0 else index.get(int(t), UNKNOWN_LABEL) for t in uniq])
    return mapped[inverse.reshape(-1)] if len(uniq) else numpy.zeros((0,), dtype=numpy.int64)


def gold_tags(examples: List[Example], labels: Sequence[str], scheme: str, strings: StringStore) -> numpy.ndarray:
    """Gold tag ids of every token of the predicted docs, MISSING where
    the annotation is missing or does not align."""
    tag_of = {name: i for i, name in enumerate(tag_names(labels, scheme))}
    if scheme == "BIO":
        tag_of.update({f"L-{label}": tag_of[f"I-{label}"] for label in labels})
        tag_of.update({f"U-{label}": tag_of[f"B-{label}"] for label in labels})
    golds = []
    for eg in examples:
        x, y = eg.predicted, eg.reference
        if len(x) == len(y) and (x.to_array(ORTH) == y.to_array(ORTH)).all():
            iob, types, space = y.to_array([ENT_IOB, ENT_TYPE, IS_SPACE]).astype(numpy.uint64).T
            ids = iob_to_tag_ids(iob, label_index(types, labels, strings), scheme)
            if y.has_annotation("ENT_IOB"):  # as Example.get_aligned_ner: spaces are O
                ids[(ids == MISSING) & (iob == 0) & (space == 1)] = 0
        else:
            ids = numpy.array([tag_of.get(t, MISSING) for t in eg.get_aligned_ner()], dtype=numpy.int64)
        golds.append(ids)
    return numpy.concatenate(golds) if golds else numpy.zeros((0,), dtype=numpy.int64)


def gold_allowed(gold: numpy.ndarray, lengths: numpy.ndarray, scheme: str, n: int) -> numpy.ndarray:
    """(tokens, n) bool: the tags each token may take given the gold. A token
    annotated as the last of an entity (L, U) whose next token is missing
    may also be its B or I: the entity may go on into the missing tokens."""
    allowed = one_hot(gold, n)
    if scheme == "BILUO" and len(gold):
        next_missing = numpy.append(gold[1:] == MISSING, False)
        next_missing[numpy.cumsum(lengths) - 1] = False
        offset = (gold - 1) % 4
        rows = numpy.flatnonzero(next_missing & (gold > 0) & (offset >= 2))
        allowed[rows, gold[rows] - numpy.where(offset[rows] == 3, 3, 1)] = True
    return allowed


def one_hot(ids: numpy.ndarray, n: int) -> numpy.ndarray:
    """(tokens, n) bool: the tag each token must take; all True where MISSING."""
    allowed = numpy.zeros((len(ids), n), dtype=bool)
    known = ids != MISSING
    allowed[numpy.flatnonzero(known), ids[known]] = True
    allowed[~known] = True
    return allowed


def forced_tags(docs: List[Doc], lengths: numpy.ndarray, labels: Sequence[str], scheme: str, strings: StringStore,
                untrained: Collection[str] = (), presets: bool = True) -> Optional[torch.Tensor]:
    """Which tags each token may take when predicting, or None when all may:
    entities on the doc keep their tags and blocked tokens stay O (unless
    not presets), no entity starts on a whitespace token (as in spaCy's
    ner), and no untrained label is predicted."""
    arrays = [doc.to_array([ENT_IOB, ENT_TYPE, IS_SPACE]).astype(numpy.uint64) for doc in docs if len(doc)]
    iob, types, space = numpy.concatenate(arrays).T
    preset = ((iob == IOB_B) | (iob == IOB_I)) & presets
    untrained = set(untrained)
    if not preset.any() and not space.any() and not untrained:
        return None
    ids = iob_to_tag_ids(iob, label_index(types, labels, strings), scheme)
    ids = numpy.where(preset, ids, MISSING)
    ids = split_entities_at(ids, numpy.cumsum(lengths) - lengths, scheme)
    allowed = one_hot(ids, n_tags(len(labels), scheme))
    prefix, label = tag_prefix_and_label(len(labels), scheme)
    allowed[(space == 1) & ~preset] &= ~numpy.isin(prefix, ["B", "U"])
    if untrained:
        untrained_ids = [i for i, name in enumerate(labels) if name in untrained]
        allowed[~preset] &= ~numpy.isin(label, untrained_ids)
    return torch.from_numpy(allowed)


def incorrect_spans(examples: List[Example], labels: Sequence[str], key: Optional[str],
                    lengths: numpy.ndarray) -> numpy.ndarray:
    """Rows (start, end, label index, sequence) in flat token indices of
    the spans in each reference's doc.spans[key], aligned to the predicted
    tokens; spans of labels not among the labels, or that cross a sequence
    boundary, can never be predicted and are left out. A span that is also
    a gold entity is an error."""
    found: List[Tuple[int, int, int]] = []
    if key is None:
        return numpy.zeros((0, 4), dtype=numpy.int64)
    index = {label: i for i, label in enumerate(labels)}
    offset = 0
    for eg in examples:
        spans = eg.reference.spans.get(key, [])
        if len(spans):
            iob, types = eg.reference.to_array([ENT_IOB, ENT_TYPE]).astype(numpy.uint64).T
            for span in spans:
                if _is_entity(iob, types, span):
                    raise ValueError(Errors.E010.format(key=key, text=span.text, label=span.label_,
                                                        start=span.start_char, end=span.end_char))
            found.extend((offset + span.start, offset + span.end, index[span.label_])
                         for span in eg.get_aligned_spans_y2x(spans, allow_overlap=True)
                         if span.label_ in index)
        offset += len(eg.predicted)
    rows = numpy.array(found, dtype=numpy.int64).reshape(-1, 3)
    seq_starts = numpy.cumsum(lengths) - lengths
    seq = numpy.searchsorted(seq_starts, rows[:, 0], side="right") - 1
    inside = (rows[:, 1] <= (seq_starts + lengths)[seq]) & (rows[:, 1] > rows[:, 0])
    return numpy.concatenate([rows, seq[:, None]], axis=1)[inside]


def _is_entity(iob: numpy.ndarray, types: numpy.ndarray, span: Span) -> bool:
    """Whether the doc's entity annotation (ent_iob and ent_type arrays) has
    exactly this span with its label."""
    s, e = span.start, span.end
    return bool(e > s and iob[s] == IOB_B and (iob[s + 1:e] == IOB_I).all() and (types[s:e] == span.label).all()
                and (e == len(iob) or iob[e] != IOB_I))


def incorrect_spans_loss(emissions: torch.Tensor, trans: Tuple[torch.Tensor, ...], allowed_by_gold: torch.Tensor,
                         log_z_gold: torch.Tensor, lengths: numpy.ndarray, spans: numpy.ndarray,
                         scheme: str) -> torch.Tensor:
    """-log(1 - p(span | gold)) summed over the incorrect spans: the loss of
    the event "the tags agree with the gold and the span is not this entity"
    is -log p(gold) - log(1 - p(span | gold)), exactly for one span per
    sequence (and the product of the spans' terms for several). p(span | gold)
    is the sum over the paths consistent with the gold that tag exactly this
    entity, over log_z_gold: one forward pass over a copy of the span's
    sequence constrained to both. A span the gold annotation itself forces
    (p = 1, a contradiction short of the span being a gold entity) adds a
    constant, -log(1e-4), and no gradient."""
    seq_starts = numpy.cumsum(lengths) - lengths
    seq = spans[:, 3]
    size = lengths[seq]
    piece_starts = numpy.cumsum(size) - size
    # the rows of the span's sequence, one copy per span
    rows = numpy.repeat(seq_starts[seq] - piece_starts, size) + numpy.arange(int(size.sum()))
    allowed = allowed_by_gold[torch.from_numpy(rows)]
    positions, tags, entity = entity_chains(spans[:, 0], spans[:, 1], spans[:, 2], scheme)
    at = torch.from_numpy(positions - seq_starts[seq][entity] + piece_starts[entity])
    keep = allowed[at, torch.from_numpy(tags)]
    allowed[at] = False
    allowed[at, torch.from_numpy(tags)] = keep
    if scheme == "BIO":  # exactly this span: the next token does not continue it
        open_ = spans[:, 1] < seq_starts[seq] + size
        after = spans[open_, 1] - seq_starts[seq][open_] + piece_starts[open_]
        allowed[torch.from_numpy(after), torch.from_numpy(1 + 2 * spans[open_, 2] + 1)] = False
    log_z_span = crf.log_partition(packed(crf.constrain(emissions[torch.from_numpy(rows)], allowed),
                                          pack_index(size)), *trans)
    p = torch.exp(log_z_span - log_z_gold[torch.from_numpy(seq)]).clamp(max=1.0 - 1e-4)
    return -torch.log1p(-p).sum()
