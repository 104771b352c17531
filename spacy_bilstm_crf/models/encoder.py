"""Thinc glue for the context BiLSTM: Model[Ragged, Ragged] over sequences."""
from typing import Callable, Tuple, cast

from thinc.api import ArgsKwargs, Model, torch2xp, xp2torch
from thinc.types import Ragged

from .packing import pack_index
from .torch_layer import torch_layer
from .torch_modules import BiLSTM, deserialize, serialize


def BiLSTMEncoder(hidden_width: int, depth: int, dropout: float) -> Model[Ragged, Ragged]:
    """A BiLSTM over each sequence of a Ragged batch (one call per batch, packed,
    no padding). Its input width is inferred at initialization."""
    torch_model = torch_layer(
        BiLSTM(hidden_width, depth, dropout),
        convert_inputs=_ragged_to_torch,
        convert_outputs=_torch_to_ragged,
        serialize_model=serialize,
        deserialize_model=deserialize,
    )
    return Model(
        "bilstm",
        _forward,
        init=_init,
        layers=[torch_model],
        dims={"nI": None, "nO": 2 * hidden_width},
    )


def _init(model: Model, X=None, Y=None) -> None:
    if X is not None:
        model.set_dim("nI", X.data.shape[1])
    # the module creates its weights now, from the seeded RNG, on the shim's
    # device (the shim moved the module there while it had no weights)
    shim = model.layers[0].shims[0]
    device = shim.device
    cast(BiLSTM, shim._model).build(model.get_dim("nI")).to(device)


def _forward(model: Model, X: Ragged, is_train: bool) -> Tuple[Ragged, Callable]:
    return model.layers[0](X, is_train)


def _ragged_to_torch(model: Model, X: Ragged, is_train: bool):
    pack = pack_index(model.ops.to_numpy(X.lengths))
    flat = xp2torch(X.data, requires_grad=is_train)

    def backprop(d_inputs: ArgsKwargs) -> Ragged:
        return Ragged(torch2xp(d_inputs.args[0]), X.lengths)

    return ArgsKwargs(args=(flat, pack), kwargs={}), backprop


def _torch_to_ragged(model: Model, X_Ytorch, is_train: bool):
    X, Ytorch = X_Ytorch

    def backprop(dY: Ragged) -> ArgsKwargs:
        return ArgsKwargs(args=(Ytorch,), kwargs={"grad_tensors": xp2torch(dY.data)})

    return Ragged(torch2xp(Ytorch), X.lengths), backprop
