"""A PyTorch module as a Thinc layer: Thinc's own wrapper, with one fix so that
parameter averaging (`[training.optimizer] use_averages`) reaches the module."""
import contextlib
from typing import Callable

from thinc.api import Model, PyTorchShim, xp2torch
from thinc.layers.pytorchwrapper import forward
from torch import nn


class AveragingPyTorchShim(PyTorchShim):
    """Thinc's optimizer keeps its moving averages of a torch parameter under
    (shim id, parameter name), but PyTorchShim.use_params looks them up under
    "pytorch_<id>_<name>", so spaCy evaluated and saved the torch layers with
    their raw weights while every Thinc layer got its averages. This looks
    them up where the optimizer puts them."""

    @contextlib.contextmanager
    def use_params(self, params):
        state = {name: xp2torch(params[(self.id, name)], device=self.device)
                 for name, _ in self._model.named_parameters() if (self.id, name) in params}
        if not state:
            yield
            return
        backup = {k: v.clone() for k, v in self._model.state_dict().items()}
        self._model.load_state_dict(state, strict=False)
        try:
            yield
        finally:
            self._model.load_state_dict(backup)


def torch_layer(module: nn.Module, convert_inputs: Callable, convert_outputs: Callable,
                serialize_model: Callable, deserialize_model: Callable) -> Model:
    """What PyTorchWrapper_v3 builds (same name, forward and attributes, so
    saved pipelines load either way), on the averaging shim."""
    return Model(
        "pytorch",
        forward,
        attrs={"convert_inputs": convert_inputs, "convert_outputs": convert_outputs},
        shims=[AveragingPyTorchShim(module, serialize_model=serialize_model, deserialize_model=deserialize_model)],
        dims={"nI": None, "nO": None},
    )
