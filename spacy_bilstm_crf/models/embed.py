"""Token features: Model[List[Doc], List[Floats2d]] layers that embed each token
from its word, its shape, its characters and optional pretrained vectors."""
from typing import Callable, List, Optional, Tuple

import numpy
from spacy.attrs import intify_attr
from spacy.ml.featureextractor import FeatureExtractor
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Dropout, HashEmbed, Model, chain, concatenate, list2ragged, ragged2list, with_array
from thinc.types import Floats2d

from ..errors import Errors
from .vocab_embed import WordVocabEmbed


@registry.architectures("spacy_bilstm_crf.CharWordEmbed.v1")
def build_char_word_embed_v1(
    char_encoder: Optional[Model[List[Doc], List[Floats2d]]],
    word_width: int = 100,
    word_rows: int = 20000,
    word_attr: str = "NORM",
    word_vocab: bool = True,
    unk_rate: float = 0.5,
    shape_width: int = 16,
    shape_rows: int = 1000,
    include_static_vectors: bool = False,
    fine_tune_vectors: bool = False,
    vectors_attr: Optional[str] = None,
    dropout: float = 0.5,
) -> Model[List[Doc], List[Floats2d]]:
    """CharWordEmbed.v2 with unk_alpha = null: only singletons are replaced
    by UNK in training. See v2 for the arguments."""
    return build_char_word_embed_v2(
        char_encoder, word_width=word_width, word_rows=word_rows, word_attr=word_attr, word_vocab=word_vocab,
        unk_rate=unk_rate, unk_alpha=None, shape_width=shape_width, shape_rows=shape_rows,
        include_static_vectors=include_static_vectors, fine_tune_vectors=fine_tune_vectors,
        vectors_attr=vectors_attr, dropout=dropout,
    )


@registry.architectures("spacy_bilstm_crf.CharWordEmbed.v2")
def build_char_word_embed_v2(
    char_encoder: Optional[Model[List[Doc], List[Floats2d]]],
    word_width: int = 100,
    word_rows: int = 20000,
    word_attr: str = "NORM",
    word_vocab: bool = True,
    unk_rate: float = 0.5,
    unk_alpha: Optional[float] = None,
    shape_width: int = 16,
    shape_rows: int = 1000,
    include_static_vectors: bool = False,
    fine_tune_vectors: bool = False,
    vectors_attr: Optional[str] = None,
    dropout: float = 0.5,
) -> Model[List[Doc], List[Floats2d]]:
    """The classic BiLSTM-CRF token representation: a trained word embedding,
    joined with a character encoding, a word-shape embedding (capitalization,
    digits, punctuation, which lowercased vectors lose) and, optionally,
    pretrained static vectors from nlp.vocab.vectors. Dropout is applied once,
    to the joined vector (Lample et al. 2016).

    char_encoder (Optional[Model]): A character encoder, e.g.
        spacy_bilstm_crf.CharLSTM.v1 or spacy_bilstm_crf.CharCNN.v1; None for none.
    word_width (int): Width of the trained word embedding; 0 disables it
        (with pretrained vectors, the words are then known only by their
        vectors, characters and shape).
    word_rows (int): Rows of the word embedding table: the most frequent
        training words when word_vocab, else hashed buckets (spaCy's HashEmbed).
    word_attr (str): Token attribute to embed: "NORM", "LOWER" or "ORTH".
    word_vocab (bool): Embed the training data's words, with one UNK row for
        all others (see vocab_embed.py); false hashes every word instead.
    unk_rate (float): With word_vocab, the rate at which words seen once in
        training are replaced by UNK during training; like all dropout rates,
        it is set by the `drop` of each update ([training] dropout).
    unk_alpha (Optional[float]): With word_vocab, replace every word, not
        only singletons: a word seen c times in training at
        2 * rate * unk_alpha / (unk_alpha + c), i.e. unk_alpha / (unk_alpha + c)
        at drop 0.5 (word dropout, Kiperwasser & Goldberg 2016). 20.0 (the
        component's default) scored 0.5-2 dev F1 above 1.0 on CoNLL-2003 and
        NCBI-disease, and 1.0 scored 0.25-0.6 above null. null: singletons
        only, at the rate.
    shape_width (int): Width of the word-shape embedding; 0 disables it.
    shape_rows (int): Rows of the word-shape embedding table.
    include_static_vectors (bool): Join the vectors of nlp.vocab.vectors, set by
        `[initialize] vectors`.
    fine_tune_vectors (bool): Update the static vectors in training (a copy is
        kept in the model); otherwise they stay frozen.
    vectors_attr (Optional[str]): Token attribute to look the vectors up by,
        e.g. "LOWER" for GloVe; None for the vectors' own setting (which spaCy
        does not save with default-mode vectors, so set it for saved ones).
    dropout (float): Dropout rate on the joined vector.
    """
    parts = []
    if word_width:
        if word_vocab:
            parts.append(WordVocabEmbed(word_width, word_attr, word_rows, unk_rate, unk_alpha))
        else:
            parts.append(_hashed([word_attr], [word_width], [word_rows]))
    if shape_width:
        parts.append(_hashed(["SHAPE"], [shape_width], [shape_rows]))
    if char_encoder is not None:
        parts.append(char_encoder)
    if include_static_vectors:
        parts.append(build_pretrained_vectors_v1(fine_tune=fine_tune_vectors, attr=vectors_attr))
    if not parts:
        raise ValueError(Errors.E009)
    return chain(concatenate(*parts), Dropout(dropout))


def _hashed(attrs: List[str], widths: List[int], rows: List[int]) -> Model[List[Doc], List[Floats2d]]:
    tables = [_hash_embed(w, n, column=i, seed=7 + i) for i, (w, n) in enumerate(zip(widths, rows))]
    return chain(FeatureExtractor(attrs), list2ragged(), with_array(concatenate(*tables)), ragged2list())


def _hash_embed(width: int, rows: int, column: int, seed: int) -> Model:
    embed = HashEmbed(width, rows, column=column, seed=seed)
    # dropout is applied once, after concatenation; keep spaCy's
    # set_dropout_rate from also dropping embedding columns here
    for node in embed.walk():
        node.attrs.pop("dropout_rate", None)
    return embed


@registry.architectures("spacy_bilstm_crf.PretrainedVectors.v1")
def build_pretrained_vectors_v1(
    fine_tune: bool = False, attr: Optional[str] = None
) -> Model[List[Doc], List[Floats2d]]:
    """The rows of nlp.vocab.vectors for each token, zeros for words without a
    vector. Frozen, the table is read from the vocab (saved once, with it);
    fine-tuned, it is copied into the model at initialization and trained.

    fine_tune (bool): Whether training updates the vectors.
    attr (Optional[str]): Token attribute to look vectors up by; by default the
        vectors' own (`spacy init vectors --attr`, e.g. LOWER for GloVe).
    """
    return Model(
        "pretrained_vectors",
        _vectors_forward,
        init=_vectors_init,
        params={"E": None} if fine_tune else {},
        dims={"nO": None},
        attrs={"fine_tune": fine_tune, "attr": attr},
    )


def _table(docs_or_vocab) -> "numpy.ndarray":
    vectors = docs_or_vocab.vectors
    if vectors.mode != "default":
        raise ValueError(Errors.E006.format(mode=vectors.mode))
    if vectors.shape[0] == 0 or vectors.shape[1] == 0:
        raise ValueError(Errors.E005)
    return vectors


def _vectors_init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> None:
    if not X:
        return
    vectors = _table(X[0].vocab)
    model.set_dim("nO", vectors.shape[1])
    if model.attrs["fine_tune"]:
        model.set_param("E", model.ops.asarray2f(vectors.data, dtype="float32").copy())


def _vectors_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    if not docs:
        return [], lambda dY: []
    vectors = _table(docs[0].vocab)
    attr = intify_attr(model.attrs["attr"] or vectors.attr)
    keys = numpy.concatenate([doc.to_array(attr) for doc in docs]).astype("uint64")
    rows = model.ops.asarray1i(vectors.find(keys=keys))  # a cupy array where the vectors are on the GPU
    known = (rows >= 0)[:, None]
    table = model.get_param("E") if model.attrs["fine_tune"] else model.ops.asarray2f(vectors.data)
    flat = table[model.ops.xp.maximum(rows, 0)] * known
    lengths = [len(doc) for doc in docs]

    def backprop(dY: List[Floats2d]) -> List:
        if model.attrs["fine_tune"]:
            dE = model.ops.alloc2f(*table.shape)
            model.ops.scatter_add(dE, rows[known[:, 0]], model.ops.flatten(dY)[known[:, 0]])
            model.inc_grad("E", dE)
        return []

    return model.ops.unflatten(flat, lengths), backprop
