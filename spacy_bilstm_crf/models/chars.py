"""Character encoders: Model[List[Doc], List[Floats2d]], one vector per token
computed from its characters. The encoder runs once per batch over the batch's
unique words, not once per token."""
from typing import Callable, List, Sequence, Tuple

import numpy
from spacy.attrs import ORTH
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Model, torch2xp, xp2torch
from thinc.types import Floats2d

from .torch_layer import torch_layer
from .torch_modules import CharCNN, CharLSTM, deserialize, serialize


@registry.architectures("spacy_bilstm_crf.CharLSTM.v1")
def build_char_lstm_v1(
    char_width: int = 25, hidden_width: int = 25, rows: int = 4096, max_length: int = 32
) -> Model[List[Doc], List[Floats2d]]:
    """A BiLSTM over each word's characters; the word's vector joins the final
    states of both directions (Lample et al. 2016; NeuroNER).

    char_width (int): Width of the character embeddings.
    hidden_width (int): LSTM units per direction; the output width is twice this.
    rows (int): Character embedding rows; characters are bucketed by Unicode
        code point modulo rows - 1, so scripts below U+{rows} never collide.
    max_length (int): Longer words keep their first and last max_length / 2
        characters.
    """
    module = CharLSTM(rows, char_width, hidden_width)
    return _char_encoder("char_lstm", module, 2 * hidden_width, rows, max_length)


@registry.architectures("spacy_bilstm_crf.CharCNN.v1")
def build_char_cnn_v1(
    char_width: int = 25, filters: int = 50, window: int = 1, rows: int = 4096, max_length: int = 32
) -> Model[List[Doc], List[Floats2d]]:
    """A convolution over each word's characters, max-pooled over the word
    (Ma & Hovy 2016; NLP Architect).

    char_width (int): Width of the character embeddings.
    filters (int): Number of convolution filters: the output width.
    window (int): Characters on each side of the convolution's centre.
    rows (int): Character embedding rows (see CharLSTM.v1).
    max_length (int): Longer words keep their first and last max_length / 2
        characters.
    """
    module = CharCNN(rows, char_width, filters, window)
    return _char_encoder("char_cnn", module, filters, rows, max_length)


def _char_encoder(name: str, module, nO: int, rows: int, max_length: int) -> Model:
    torch_model = torch_layer(
        module,
        convert_inputs=_ids_to_torch,
        convert_outputs=_torch_to_array,
        serialize_model=serialize,
        deserialize_model=deserialize,
    )
    return Model(
        name,
        _forward,
        init=_init,
        layers=[torch_model],
        dims={"nO": nO},
        attrs={"rows": rows, "max_length": max_length},
    )


def _init(model: Model, X=None, Y=None) -> None:
    shim = model.layers[0].shims[0]
    device = shim.device  # no parameters yet: the current ops' device (CUDA under CupyOps)
    shim._model.build().to(device)


def _forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    if not docs:
        return [], lambda dY: []
    keys = [doc.to_array(ORTH) for doc in docs]
    lengths = [len(k) for k in keys]
    flat_keys = numpy.concatenate(keys) if keys else numpy.zeros((0,), dtype="uint64")
    uniq, inverse = numpy.unique(flat_keys, return_inverse=True)
    strings = docs[0].vocab.strings
    words = [strings[int(key)] for key in uniq]
    ids, word_lengths = char_ids(words, model.attrs["rows"], model.attrs["max_length"])
    Yu, backprop_chars = model.layers[0]((ids, word_lengths), is_train)
    inverse = model.ops.asarray1i(inverse.reshape(-1))
    Y = model.ops.unflatten(Yu[inverse], lengths)

    def backprop(dY: List[Floats2d]) -> List:
        dYu = model.ops.alloc2f(*Yu.shape)
        model.ops.scatter_add(dYu, inverse, model.ops.flatten(dY))
        backprop_chars(dYu)
        return []

    return Y, backprop


def char_ids(words: Sequence[str], rows: int, max_length: int) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """(words, longest) character ids, 0 for padding, and each word's length."""
    half = max(1, max_length // 2)
    clipped = [w if len(w) <= max_length else w[:half] + w[-half:] for w in words]
    lengths = numpy.array([max(1, len(w)) for w in clipped], dtype=numpy.int64)
    text = "".join(w or " " for w in clipped)
    points = numpy.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=numpy.uint32)
    ids = numpy.zeros((len(clipped), int(lengths.max()) if len(clipped) else 1), dtype=numpy.int64)
    rows_of = numpy.repeat(numpy.arange(len(clipped)), lengths)
    cols = numpy.arange(len(points)) - numpy.repeat(numpy.cumsum(lengths) - lengths, lengths)
    ids[rows_of, cols] = 1 + points.astype(numpy.int64) % (rows - 1)
    return ids, lengths


def _ids_to_torch(model: Model, inputs, is_train: bool):
    ids, lengths = inputs
    args = (xp2torch(model.ops.asarray(ids)), xp2torch(lengths).cpu())
    return ArgsKwargs(args=args, kwargs={}), lambda d: []


def _torch_to_array(model: Model, X_Ytorch, is_train: bool):
    _, Ytorch = X_Ytorch

    def backprop(dY: Floats2d) -> ArgsKwargs:
        return ArgsKwargs(args=(Ytorch,), kwargs={"grad_tensors": xp2torch(dY)})

    return torch2xp(Ytorch), backprop
