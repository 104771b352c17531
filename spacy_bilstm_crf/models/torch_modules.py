"""The raw PyTorch modules. Their Thinc glue lives in encoder.py and chars.py.

Each module describes itself (`cfg`) and creates its parameters in `build`,
which the Thinc layer calls at initialization (so `fix_random_seed` before
`nlp.initialize` fixes every weight) and `deserialize` calls when loading.
`serialize`/`deserialize` store plain arrays with msgpack: a saved pipeline
holds no pickle and loading it runs no code from the file.
"""
from typing import Any, Dict

import numpy
import srsly
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from .packing import PackIndex, packed, unpacked


class BiLSTM(nn.Module):
    """A bidirectional LSTM over packed sequences, sized once its input width is
    known (`build`): flat (tokens, nI) in, flat (tokens, 2 * hidden) out."""

    def __init__(self, hidden_width: int, depth: int, dropout: float):
        super().__init__()
        self.cfg: Dict[str, Any] = {"hidden_width": hidden_width, "depth": depth, "dropout": dropout, "nI": None}
        self.lstm = None

    def build(self, nI: int) -> "BiLSTM":
        cfg = self.cfg
        cfg["nI"] = nI
        self.lstm = nn.LSTM(
            nI, cfg["hidden_width"], num_layers=cfg["depth"], bidirectional=True,
            dropout=cfg["dropout"] if cfg["depth"] > 1 else 0.0,
        )
        _forget_gate_bias_one(self.lstm)
        return self

    def forward(self, flat: torch.Tensor, pack: PackIndex) -> torch.Tensor:
        out, _ = self.lstm(packed(flat, pack))
        return unpacked(out.data, pack)


class CharLSTM(nn.Module):
    """Lample et al.'s character encoder: the final states of a BiLSTM over a
    word's characters. (words, max_chars) ids in, (words, 2 * hidden) out."""

    def __init__(self, rows: int, char_width: int, hidden_width: int):
        super().__init__()
        self.cfg = {"rows": rows, "char_width": char_width, "hidden_width": hidden_width}
        self.embed = self.lstm = None

    def build(self) -> "CharLSTM":
        cfg = self.cfg
        self.embed = nn.Embedding(cfg["rows"], cfg["char_width"], padding_idx=0)
        self.lstm = nn.LSTM(cfg["char_width"], cfg["hidden_width"], bidirectional=True, batch_first=True)
        _forget_gate_bias_one(self.lstm)
        return self

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if ids.shape[0] == 0:
            return ids.new_zeros((0, 2 * self.cfg["hidden_width"]), dtype=torch.float32)
        x = pack_padded_sequence(self.embed(ids), lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(x)  # shape: (2, words, hidden)
        return torch.cat([h[0], h[1]], dim=1)


class CharCNN(nn.Module):
    """Ma & Hovy's character encoder: a convolution over a word's characters,
    max-pooled. (words, max_chars) ids in, (words, filters) out."""

    def __init__(self, rows: int, char_width: int, filters: int, window: int):
        super().__init__()
        self.cfg = {"rows": rows, "char_width": char_width, "filters": filters, "window": window}
        self.embed = self.conv = None

    def build(self) -> "CharCNN":
        cfg = self.cfg
        self.embed = nn.Embedding(cfg["rows"], cfg["char_width"], padding_idx=0)
        self.conv = nn.Conv1d(cfg["char_width"], cfg["filters"], kernel_size=2 * cfg["window"] + 1, padding=cfg["window"])
        return self

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if ids.shape[0] == 0:
            return ids.new_zeros((0, self.cfg["filters"]), dtype=torch.float32)
        h = self.conv(self.embed(ids).transpose(1, 2))  # shape: (words, filters, chars)
        pad = (ids == 0).unsqueeze(1)  # shape: (words, 1, chars)
        return h.masked_fill(pad, float("-inf")).max(dim=2).values


def _forget_gate_bias_one(lstm: nn.LSTM) -> None:
    """Start with open forget gates (Jozefowicz et al. 2015)."""
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if name.startswith("bias_"):  # gates are laid out (input, forget, cell, output)
                n = param.shape[0] // 4
                param[n : 2 * n] = 1.0 if name.startswith("bias_ih") else 0.0


MODULES = {"BiLSTM": BiLSTM, "CharLSTM": CharLSTM, "CharCNN": CharCNN}


def serialize(module: nn.Module) -> bytes:
    state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    return srsly.msgpack_dumps({"type": type(module).__name__, "cfg": module.cfg, "state": state})


def deserialize(module: nn.Module, data: bytes, device: torch.device) -> nn.Module:
    msg = srsly.msgpack_loads(data)
    if msg["type"] != type(module).__name__:
        raise ValueError(f"Cannot load a {msg['type']} into a {type(module).__name__}")
    module.cfg.update(msg["cfg"])
    if not msg["state"]:  # saved before initialization
        return module.to(device)
    if isinstance(module, BiLSTM):
        module.build(module.cfg["nI"])
    else:
        module.build()
    state = {k: torch.from_numpy(numpy.array(v)) for k, v in msg["state"].items()}
    module.load_state_dict(state)
    return module.to(device)
