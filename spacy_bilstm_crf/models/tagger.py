"""The composed architecture: token vectors -> BiLSTM -> emission scores, plus
the CRF's transition scores. Model[List[Doc], List[Floats2d]]: one
(tokens, tags) array of emission scores per doc."""
from typing import Callable, List, Optional, Tuple

import numpy
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Dropout, Linear, Model, noop, zero_init
from thinc.types import Floats2d, Ragged

from ..errors import Errors
from .encoder import BiLSTMEncoder

O_BIAS = 1.0  # an untrained model prefers O: it predicts no entities, not noise


@registry.architectures("spacy_bilstm_crf.BiLSTMCRF.v1")
def build_bilstm_crf_v1(
    tok2vec: Model[List[Doc], List[Floats2d]],
    hidden_width: int = 100,
    depth: int = 1,
    dropout: float = 0.5,
    use_crf: bool = True,
    max_length: int = 512,
    nO: Optional[int] = None,
) -> Model[List[Doc], List[Floats2d]]:
    """A BiLSTM-CRF tagger head (Lample et al. 2016) over any token-vector layer.

    tok2vec (Model[List[Doc], List[Floats2d]]): The token vectors, e.g.
        spacy_bilstm_crf.CharWordEmbed.v1, spaCy's tok2vec or a listener.
    hidden_width (int): LSTM units per direction.
    depth (int): Stacked BiLSTM layers; 0 puts the CRF directly on the tok2vec.
    dropout (float): Dropout on the BiLSTM's output (and between its layers).
    use_crf (bool): Decode with a linear-chain CRF; false makes a per-token
        softmax tagger (still decoded under the tag scheme's constraints).
    max_length (int): Sequences (sentences where the doc has them, else docs)
        longer than this are cut into pieces of this many tokens.
    nO (Optional[int]): Number of tags; set by the component from its labels.
    """
    encoder = BiLSTMEncoder(hidden_width, depth, dropout) if depth > 0 else noop()
    output = Linear(nO=nO)
    crf = _crf_params(nO)
    model = Model(
        "bilstm_crf",
        _forward,
        init=_init,
        layers=[tok2vec, encoder, Dropout(dropout), output, crf],
        dims={"nO": nO},
        attrs={"use_crf": use_crf, "max_length": max_length},
    )
    for name, layer in zip(["tok2vec", "encoder", "dropout", "output", "crf"], model.layers):
        model.set_ref(name, layer)
    return model


def sequence_lengths(docs: List[Doc], max_length: int) -> numpy.ndarray:
    """Lengths of the sequences the BiLSTM and the CRF run over, in doc order:
    each doc's sentences if it has sentence boundaries, else the whole doc,
    cut every max_length tokens. Empty docs contribute nothing."""
    lengths = []
    for doc in docs:
        if len(doc) == 0:
            continue
        if doc.has_annotation("SENT_START"):
            pieces = [len(sent) for sent in doc.sents]
        else:
            pieces = [len(doc)]
        for n in pieces:
            full, rest = divmod(n, max_length)
            lengths.extend([max_length] * full + ([rest] if rest else []))
    return numpy.asarray(lengths, dtype=numpy.int64)


def _forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    tok2vec, encoder, dropout, output = model.layers[:4]
    vectors, backprop_tok2vec = tok2vec(docs, is_train)
    doc_lengths = [len(doc) for doc in docs]
    lengths = sequence_lengths(docs, model.attrs["max_length"])
    if not sum(doc_lengths):
        nO = model.get_dim("nO")
        return [model.ops.alloc2f(0, nO) for _ in docs], lambda dY: backprop_tok2vec(
            [model.ops.alloc2f(0, v.shape[1]) for v in vectors]
        )
    flat = model.ops.flatten(vectors)
    hidden, backprop_encoder = encoder(Ragged(flat, model.ops.asarray1i(lengths)), is_train)
    dropped, backprop_dropout = dropout(hidden.data, is_train)
    scores, backprop_output = output(dropped, is_train)

    def backprop(d_scores: List[Floats2d]) -> List:
        d_hidden = backprop_dropout(backprop_output(model.ops.flatten(d_scores)))
        d_flat = backprop_encoder(Ragged(d_hidden, hidden.lengths)).data
        return backprop_tok2vec(model.ops.unflatten(d_flat, doc_lengths))

    return model.ops.unflatten(scores, doc_lengths), backprop


def _init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> None:
    tok2vec, encoder, _, output, crf = model.layers
    tok2vec.initialize(X=X)
    if X is None or not sum(len(doc) for doc in X):
        raise ValueError("BiLSTMCRF.v1 needs a sample of docs with tokens to initialize")
    flat = model.ops.flatten(tok2vec.predict(X))
    lengths = sequence_lengths(X, model.attrs["max_length"])
    encoder.initialize(X=Ragged(flat, model.ops.asarray1i(lengths)))
    nI = encoder.get_dim("nO") if encoder.has_dim("nO") else flat.shape[1]
    nO = model.get_dim("nO")
    output.set_dim("nI", nI, force=True)
    output.set_dim("nO", nO, force=True)
    output.initialize()
    b = output.get_param("b")
    b[0] = O_BIAS
    output.set_param("b", b)
    crf.set_dim("nO", nO, force=True)
    crf.initialize()


def _crf_params(nO: Optional[int]) -> Model:
    """The CRF's parameters: transitions[prev, next], start and end scores. The
    pipe computes the CRF itself (models/crf.py); this layer only holds them,
    so that they are optimized and serialized with the rest of the model."""
    return Model(
        "crf",
        _hold_params,
        init=_init_crf,
        params={"transitions": None, "start": None, "end": None},
        dims={"nO": nO},
    )


def _hold_params(model: Model, X, is_train: bool):
    """The parameter holder's forward: the identity (a named function, so that
    the model pickles, e.g. for nlp.pipe(n_process=2) under spawn)."""
    return X, _identity


def _identity(dY):
    return dY


def _init_crf(model: Model, X=None, Y=None) -> None:
    nO = model.get_dim("nO")
    model.set_param("transitions", model.ops.alloc2f(nO, nO))
    model.set_param("start", model.ops.alloc1f(nO))
    model.set_param("end", model.ops.alloc1f(nO))


def resize_output(model: Model, new_nO: int) -> Model:
    """Grow the number of tags, keeping every learned score. New tags start
    with zero weights; fresh layers replace the old ones so no optimizer state
    of the old shapes lingers."""
    output, crf = model.get_ref("output"), model.get_ref("crf")
    old_nO = model.get_dim("nO") if model.has_dim("nO") else None
    if old_nO == new_nO:
        return model
    if old_nO is not None and new_nO < old_nO:
        raise ValueError(Errors.E007.format(name=model.name, old=old_nO, new=new_nO))
    model.set_dim("nO", new_nO, force=True)
    if not output.has_param("W"):
        output.set_dim("nO", new_nO, force=True)
        crf.set_dim("nO", new_nO, force=True)
        return model
    new_output = Linear(nO=new_nO, nI=output.get_dim("nI"), init_W=zero_init)
    new_output.initialize()
    new_crf = _crf_params(new_nO)
    new_crf.initialize()
    for layer, new_layer in ((output, new_output), (crf, new_crf)):
        for name in layer.param_names:
            old, new = layer.get_param(name), new_layer.get_param(name)
            new[tuple(slice(0, n) for n in old.shape)] = old
            new_layer.set_param(name, new)
        model.replace_node(layer, new_layer)
    return model
