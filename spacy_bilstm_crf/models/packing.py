"""Pack variable-length sequences without padding.

A batch of sequences is kept as one flat array (all tokens, sequence after
sequence). PyTorch's RNNs and our CRF read the same tokens in *packed* order:
time step by time step, sequences sorted by decreasing length, so that the
sequences still running at step t are the first ``batch_sizes[t]`` rows of that
step. `pack_index` computes the row permutation between the two orders in
O(tokens), never allocating a padded (batch x max_length) array: one very long
document costs no more memory than its own tokens.
"""
from typing import NamedTuple, Sequence

import numpy
import torch
from torch.nn.utils.rnn import PackedSequence


class PackIndex(NamedTuple):
    index: numpy.ndarray  # (tokens,) flat position of each packed row
    inverse: numpy.ndarray  # (tokens,) packed row of each flat position
    batch_sizes: numpy.ndarray  # (max_length,) sequences running at each step
    order: numpy.ndarray  # (sequences,) sequence ids by decreasing length


def pack_index(lengths: Sequence[int]) -> PackIndex:
    """The packing of sequences of these lengths (every length must be > 0)."""
    lengths = numpy.asarray(lengths, dtype=numpy.int64)
    if lengths.size and lengths.min() <= 0:
        raise ValueError("pack_index: every sequence must hold at least one token")
    starts = numpy.cumsum(lengths) - lengths
    order = numpy.argsort(-lengths, kind="stable")
    sorted_lengths = lengths[order]
    max_len = int(sorted_lengths[0]) if lengths.size else 0
    # sequences longer than t, for each step t
    batch_sizes = len(lengths) - numpy.searchsorted(
        sorted_lengths[::-1], numpy.arange(max_len), side="right"
    )
    n_tokens = int(lengths.sum())
    step_of_row = numpy.repeat(numpy.arange(max_len), batch_sizes)
    rank_of_row = numpy.arange(n_tokens) - numpy.repeat(
        numpy.cumsum(batch_sizes) - batch_sizes, batch_sizes
    )
    index = starts[order][rank_of_row] + step_of_row
    inverse = numpy.empty_like(index)
    inverse[index] = numpy.arange(n_tokens)
    return PackIndex(index, inverse, batch_sizes.astype(numpy.int64), order)


def packed(flat: torch.Tensor, pack: PackIndex) -> PackedSequence:
    """View a flat (tokens, ...) tensor as a PackedSequence (one gather)."""
    index = torch.from_numpy(pack.index).to(flat.device)
    order = torch.from_numpy(pack.order).to(flat.device)
    return PackedSequence(
        flat.index_select(0, index),
        torch.from_numpy(pack.batch_sizes),
        order,
        torch.argsort(order),
    )


def unpacked(data: torch.Tensor, pack: PackIndex) -> torch.Tensor:
    """The inverse of `packed`: packed rows back to flat order."""
    return data.index_select(0, torch.from_numpy(pack.inverse).to(data.device))
