"""A word embedding over the training data's vocabulary, with an UNK row.

Words seen in training get a row each (the most frequent first, up to
max_rows); every other word shares row 0, UNK. In training, words seen only
once are replaced by UNK at rate unk_rate (Lample et al. 2016's singleton
replacement), so the model learns what to do with words it has never seen:
rely on their characters and shape. With unk_alpha, every word may be
replaced, the rarer the likelier (Kiperwasser & Goldberg 2016's word
dropout), so names seen a few times are not memorized either. Lookups are one
vectorized binary search.
"""
from collections import Counter
from typing import Callable, Iterable, List, Optional, Tuple

import numpy
from spacy.attrs import intify_attr
from spacy.tokens import Doc
from thinc.api import Model, uniform_init
from thinc.types import Floats2d

NAME = "word_vocab_embed"


def WordVocabEmbed(width: int, attr: str, max_rows: int, unk_rate: float,
                   unk_alpha: Optional[float] = None) -> Model[List[Doc], List[Floats2d]]:
    """unk_rate: the rate singletons are replaced at (set by each update's
    drop, like every dropout rate). unk_alpha: replace each word seen c times
    in training at 2 * rate * alpha / (alpha + c) instead: at the default drop
    of 0.5, alpha / (alpha + c), so with alpha = 1 a singleton is replaced half
    the time, as before, and a word seen three times a quarter of the time."""
    return Model(
        NAME,
        _forward,
        init=_init,
        params={"E": None},
        dims={"nO": width},
        attrs={"attr": attr, "max_rows": max_rows, "dropout_rate": unk_rate, "unk_alpha": unk_alpha, "keys": None,
               "singletons": None, "counts": None},
    )


def count_words(model: Model, docs: Iterable[Doc], counts: Optional[Counter] = None) -> Counter:
    """Add the counts of the model's attribute over the docs to counts."""
    counts = counts if counts is not None else Counter()
    attr = intify_attr(model.attrs["attr"])
    for doc in docs:
        keys, n = numpy.unique(doc.to_array(attr), return_counts=True)
        counts.update(dict(zip(keys.tolist(), n.tolist())))
    return counts


def set_vocabulary(model: Model, counts: Counter) -> None:
    """Fix the vocabulary (call before initialization)."""
    kept = counts.most_common(max(0, model.attrs["max_rows"] - 1))
    keys = numpy.array(sorted(k for k, _ in kept), dtype="uint64")
    model.attrs["keys"] = keys
    model.attrs["singletons"] = numpy.array([counts[int(k)] == 1 for k in keys], dtype=bool)
    model.attrs["counts"] = numpy.array([counts[int(k)] for k in keys], dtype="float32")


def _init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> None:
    if model.attrs["keys"] is None:
        set_vocabulary(model, count_words(model, X or []))
    width = model.get_dim("nO")
    E = model.ops.alloc2f(len(model.attrs["keys"]) + 1, width)
    bound = numpy.sqrt(3.0 / width)
    model.set_param("E", uniform_init(model.ops, E.shape, lo=-bound, hi=bound))


def _rows(model: Model, docs: List[Doc], is_train: bool) -> numpy.ndarray:
    keys, singletons = model.attrs["keys"], model.attrs["singletons"]
    attr = intify_attr(model.attrs["attr"])
    tokens = numpy.concatenate([doc.to_array(attr) for doc in docs]).astype("uint64")
    if not len(keys):
        return numpy.zeros(len(tokens), dtype="int64")
    pos = numpy.minimum(numpy.searchsorted(keys, tokens), len(keys) - 1)
    found = keys[pos] == tokens
    rows = numpy.where(found, pos + 1, 0)
    rate = model.attrs["dropout_rate"]
    if is_train and rate:
        alpha = model.attrs["unk_alpha"]
        if alpha is None:
            p_unk = numpy.where(singletons[pos], rate, 0.0)
        else:
            p_unk = 2 * rate * alpha / (alpha + model.attrs["counts"][pos])
        rows[found & (numpy.random.random(len(rows)) < p_unk)] = 0
    return rows


def _forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    E = model.get_param("E")
    lengths = [len(doc) for doc in docs]
    if not sum(lengths):
        return [model.ops.alloc2f(0, E.shape[1]) for _ in docs], lambda dY: []
    rows = model.ops.asarray1i(_rows(model, docs, is_train))
    output = E[rows]

    def backprop(dY: List[Floats2d]) -> List:
        dE = model.ops.alloc2f(*E.shape)
        model.ops.scatter_add(dE, rows, model.ops.flatten(dY))
        model.inc_grad("E", dE)
        return []

    return model.ops.unflatten(output, lengths), backprop
