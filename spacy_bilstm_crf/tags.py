"""Tag schemes (BILUO, BIO): tag inventories, allowed transitions, and
conversions between spaCy's entity annotation, tag ids and spans.

Tag ids are laid out as ``O = 0`` followed by one block per label, so adding a
label appends tags and never renumbers the existing ones:

    BILUO: 1 + 4 * label + (B, I, L, U)      BIO: 1 + 2 * label + (B, I)

Everything here works on whole arrays; no Python loop over tokens.
"""
from typing import List, Sequence, Tuple

import numpy

SCHEMES = {"BILUO": "BILU", "BIO": "BI"}
MISSING = -1  # tag id of a token whose gold label is unknown
NO_LABEL, UNKNOWN_LABEL = -1, -2  # label indices of untyped and unknown-typed tokens
# spaCy's token.ent_iob codes
IOB_MISSING, IOB_I, IOB_O, IOB_B = 0, 1, 2, 3


def check_scheme(scheme: str) -> str:
    if scheme not in SCHEMES:
        from .errors import Errors

        raise ValueError(Errors.E001.format(scheme=scheme, schemes=", ".join(SCHEMES)))
    return scheme


def tag_names(labels: Sequence[str], scheme: str) -> List[str]:
    """The tag inventory: ["O", "B-PER", "I-PER", ...]."""
    prefixes = SCHEMES[check_scheme(scheme)]
    return ["O"] + [f"{p}-{label}" for label in labels for p in prefixes]


def n_tags(n_labels: int, scheme: str) -> int:
    return 1 + len(SCHEMES[check_scheme(scheme)]) * n_labels


def tag_prefix_and_label(n_labels: int, scheme: str) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """For each tag id: its prefix letter ("O", "B", ...) and label index (-1 for O)."""
    prefixes = SCHEMES[check_scheme(scheme)]
    prefix = numpy.array(["O"] + list(prefixes) * n_labels)
    label = numpy.array([-1] + [i for i in range(n_labels) for _ in prefixes])
    return prefix, label


def allowed_transitions(
    n_labels: int, scheme: str
) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Boolean masks of the transitions a scheme allows.

    Returns (transitions[prev, next], start[tag], end[tag]). A sequence is valid
    iff its first tag is allowed at start, every consecutive pair is allowed and
    its last tag is allowed at the end.
    """
    prefix, label = tag_prefix_and_label(n_labels, scheme)
    same = label[:, None] == label[None, :]
    prev, nxt = prefix[:, None], prefix[None, :]
    if scheme == "BILUO":
        closed = numpy.isin(prev, ["O", "L", "U"])  # no entity open after prev
        opens = numpy.isin(nxt, ["O", "B", "U"])  # next starts outside an entity
        continues = numpy.isin(prev, ["B", "I"]) & numpy.isin(nxt, ["I", "L"]) & same
        trans = (closed & opens) | continues
        start = numpy.isin(prefix, ["O", "B", "U"])
        end = numpy.isin(prefix, ["O", "L", "U"])
    else:
        continues = numpy.isin(prev, ["B", "I"]) & (nxt == "I") & same
        trans = numpy.isin(nxt, ["O", "B"]) | continues
        start = numpy.isin(prefix, ["O", "B"])
        end = numpy.ones(len(prefix), dtype=bool)
    return trans, start, end


def iob_to_tag_ids(iob: numpy.ndarray, label: numpy.ndarray, scheme: str) -> numpy.ndarray:
    """Tag ids from spaCy's per-token entity codes.

    iob: token.ent_iob per token (0 missing, 1 I, 2 O, 3 B).
    label: label index per token; NO_LABEL where the token has no entity type,
        UNKNOWN_LABEL where its type is not one of the labels.
    Missing tokens and entities of an unknown label get MISSING; a blocked
    token (B with no type, see `Doc.set_ents(blocked=...)`) gets O.
    """
    iob = numpy.asarray(iob)
    label = numpy.asarray(label, dtype=numpy.int64)
    width = len(SCHEMES[check_scheme(scheme)])
    begin = iob == IOB_B
    inside = iob == IOB_I
    next_inside = numpy.append(inside[1:], False)
    if scheme == "BILUO":
        offset = numpy.where(begin, numpy.where(next_inside, 0, 3), numpy.where(next_inside, 1, 2))
    else:
        offset = numpy.where(begin, 0, 1)
    ids = 1 + width * label + offset
    ids = numpy.where(iob == IOB_O, 0, ids)
    ids = numpy.where(begin & (label == NO_LABEL), 0, ids)
    unknown = (begin | inside) & (label < 0) & ~(begin & (label == NO_LABEL))
    ids = numpy.where(unknown | (iob == IOB_MISSING), MISSING, ids)
    return ids.astype(numpy.int64)


def split_entities_at(ids: numpy.ndarray, starts: numpy.ndarray, scheme: str) -> numpy.ndarray:
    """Make each segment beginning at `starts` a valid sequence on its own, by
    cutting entities that cross a segment boundary (I-X at a start becomes
    B-X, and so on). Missing tags stay missing."""
    ids = ids.copy()
    if len(ids) == 0:
        return ids
    width = len(SCHEMES[check_scheme(scheme)])
    starts = numpy.asarray(starts, dtype=numpy.int64)
    ends = numpy.append(starts[1:], len(ids)) - 1
    for pos, fix in ((starts, {1: 0, 2: 3}), (ends, {0: 3, 1: 2})):
        tags = ids[pos]
        inside = tags > 0
        offset = (tags - 1) % width
        new = tags.copy()
        for old, to in fix.items():
            if scheme == "BIO" and to >= width:
                continue
            hit = inside & (offset == old)
            new[hit] = tags[hit] - old + to
        ids[pos] = new
    return ids


def tag_ids_to_spans(ids: numpy.ndarray, scheme: str) -> List[Tuple[int, int, int]]:
    """(start, end, label index) of the entities in a valid tag sequence."""
    ids = numpy.asarray(ids, dtype=numpy.int64)
    width = len(SCHEMES[check_scheme(scheme)])
    offset = numpy.where(ids > 0, (ids - 1) % width, -1)
    label = (ids - 1) // width
    if scheme == "BILUO":
        starts = numpy.flatnonzero((offset == 0) | (offset == 3))
        ends = numpy.flatnonzero((offset == 2) | (offset == 3)) + 1
    else:
        starts = numpy.flatnonzero(offset == 0)
        next_inside = numpy.append(offset[1:] == 1, False)
        ends = numpy.flatnonzero((offset >= 0) & ~next_inside) + 1
    return [(int(s), int(e), int(label[s])) for s, e in zip(starts, ends)]


def is_valid(ids: Sequence[int], n_labels: int, scheme: str) -> bool:
    """Whether a tag id sequence is allowed by the scheme (empty is valid)."""
    if len(ids) == 0:
        return True
    trans, start, end = allowed_transitions(n_labels, scheme)
    ids = numpy.asarray(ids)
    return bool(start[ids[0]] and end[ids[-1]] and trans[ids[:-1], ids[1:]].all())


def entity_chains(
    starts: numpy.ndarray, ends: numpy.ndarray, labels: numpy.ndarray, scheme: str
) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """The tags each entity puts on its tokens, as flat (positions, tag ids,
    entity index) arrays: B, I..., L or U in BILUO; B, I... in BIO."""
    starts, ends, labels = (numpy.asarray(a, dtype=numpy.int64) for a in (starts, ends, labels))
    lengths = ends - starts
    entity = numpy.repeat(numpy.arange(len(starts)), lengths)
    k = numpy.arange(int(lengths.sum())) - numpy.repeat(numpy.cumsum(lengths) - lengths, lengths)
    n = lengths[entity]
    if check_scheme(scheme) == "BILUO":
        offset = numpy.where(n == 1, 3, numpy.where(k == 0, 0, numpy.where(k == n - 1, 2, 1)))
    else:
        offset = numpy.where(k == 0, 0, 1)
    width = len(SCHEMES[scheme])
    return starts[entity] + k, 1 + width * labels[entity] + offset, entity
