"""A linear-chain CRF on packed sequences: plain tensors, no spaCy.

Emission scores come as a `PackedSequence` of shape (tokens, tags) (see
`packing.py`); the CRF's parameters are a (tags, tags) matrix of transition
scores ``transitions[prev, next]`` and (tags,) vectors ``start`` and ``end``.
Forbidden transitions and tags are expressed by setting their scores to
`NEG` (see `constrain`), which keeps every quantity finite and differentiable.

Every function is batched: the only Python loop is over time steps. Results per
sequence come back in the sequences' original order.
"""
import copy
import weakref
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

NEG = -10000.0  # the score of anything forbidden: exp(NEG) == 0 in float32
TINY = 1e-30  # the least sum of probabilities in the probability-space recursions
# From this many tags on, no step broadcasts a (batch, tags, tags) tensor:
# log_partition runs in probability space, and the products there and the
# Viterbi max split the transition matrix by the scheme's constraints (`_Split`).
MANY_TAGS = 64
FEW_PREVS = 2  # next tags with at most this many allowed previous tags (I-X, L-X) are gathered
PRUNE_TOP = 8  # viterbi tries the best this-many previous tags first (exactly; see _Split)
CHUNK = 1 << 22  # elements of the largest temporary tensor in the fallback of _Split.best_previous


def constrain(scores: Tensor, allowed: Optional[Tensor]) -> Tensor:
    """Scores where `allowed` is False become NEG (None allows everything)."""
    if allowed is None:
        return scores
    return scores.masked_fill(~allowed, NEG)


def _steps(emissions: PackedSequence):
    """Yield (running sequences, emissions of the step) for steps 1..T-1."""
    sizes = emissions.batch_sizes.tolist()
    offset = sizes[0]
    for n in sizes[1:]:
        yield n, emissions.data[offset : offset + n]  # shape: (n, tags)
        offset += n


def _by_sequence(values: Tensor, emissions: PackedSequence) -> Tensor:
    """Per-sequence values from sorted order back to the original order."""
    if emissions.unsorted_indices is None:
        return values
    return values.index_select(0, emissions.unsorted_indices)


def log_partition(
    emissions: PackedSequence, transitions: Tensor, start: Tensor, end: Tensor
) -> Tensor:
    """log Z: the log-sum-exp of the scores of all tag sequences, per sequence.

    Returns shape (sequences,). With emissions constrained to the tags a gold
    annotation allows (one tag per token, or several where the annotation is
    missing), this is the log-sum over the paths consistent with the gold, and
    ``log_partition(all) - log_partition(gold)`` is the negative log-likelihood.
    """
    if transitions.shape[0] >= MANY_TAGS:
        return _log_partition_matmul(emissions, transitions, start, end)
    n0 = int(emissions.batch_sizes[0])
    alpha = start + emissions.data[:n0]  # shape: (batch, tags)
    for n, emit in _steps(emissions):
        scores = alpha[:n].unsqueeze(2) + transitions  # shape: (n, prev, next)
        alpha = torch.cat([torch.logsumexp(scores, dim=1) + emit, alpha[n:]])
    log_z = torch.logsumexp(alpha + end, dim=1)  # shape: (batch,)
    return _by_sequence(log_z, emissions)


def _log_partition_matmul(
    emissions: PackedSequence, transitions: Tensor, start: Tensor, end: Tensor
) -> Tensor:
    """`log_partition` from the forward messages in probability space
    (`_forward_messages`): memory per step is (batch, tags) instead of
    (batch, tags, tags), which with hundreds of labels is the difference
    between megabytes and gigabytes."""
    sizes = emissions.batch_sizes.tolist() + [0]
    steps = list(_forward_messages(emissions, start, _in_probability_space(emissions, transitions)))
    # sorted by decreasing length: the sequences ending at step t are that step's rows from sizes[t + 1] on
    last = [(a[sizes[t + 1]:], log_a[sizes[t + 1]:]) for t, (a, log_a) in enumerate(steps)][::-1]
    alpha = torch.cat([a for a, _ in last])
    scale = torch.cat([log_a for _, log_a in last])
    e_max = end.max()
    log_z = torch.log((alpha * torch.exp(end - e_max)).sum(dim=1).clamp(min=TINY)) + e_max + scale[:, 0]
    return _by_sequence(log_z, emissions)


def _normalized(x: Tensor, log_scale: Tensor) -> Tuple[Tensor, Tensor]:
    """Rows of x scaled to sum to 1, their log scale moved to log_scale. A
    row that is all zeros (every path forbidden, or underflow) counts as
    summing to TINY rather than exp(NEG): either way nothing."""
    total = x.sum(dim=1, keepdim=True).clamp(min=TINY)
    return x / total, log_scale + torch.log(total)


def _in_probability_space(emissions: PackedSequence, transitions: Tensor):
    """(trans, t_max, emit, row_max): exp of the transitions shifted by their
    max (as a `_Matrix`, or from MANY_TAGS tags on a `_Split`, which multiply
    by it), and of each token's emissions shifted by the token's max."""
    t_max = transitions.max()
    row_max = emissions.data.max(dim=1, keepdim=True).values
    many = transitions.shape[0] >= MANY_TAGS
    trans = split_of(transitions).exp(t_max) if many else _Matrix(torch.exp(transitions - t_max))
    return trans, t_max, torch.exp(emissions.data - row_max), row_max


def _forward_messages(emissions: PackedSequence, start: Tensor, scaled: tuple):
    """Yield the forward messages step by step, in probability space: (a,
    log_a) for the sequences still running at the step, a's rows summing to
    1 and the forward log-message log(a) + log_a (emission included). One
    matrix product a step; `scaled` is `_in_probability_space`'s result."""
    trans, t_max, emit, row_max = scaled
    sizes = emissions.batch_sizes.tolist()
    first = start + emissions.data[: sizes[0]]
    top = first.max(dim=1, keepdim=True).values
    a, log_a = _normalized(torch.exp(first - top), top)
    yield a, log_a
    offset = sizes[0]
    for n in sizes[1:]:
        rows = slice(offset, offset + n)
        a, log_a = _normalized(trans.times(a[:n]) * emit[rows], log_a[:n] + t_max + row_max[rows])
        yield a, log_a
        offset += n


def viterbi(
    emissions: PackedSequence, transitions: Tensor, start: Tensor, end: Tensor
) -> Tuple[Tensor, Tensor]:
    """The best tag sequence of every sequence.

    Returns (tags, scores): tags of shape (tokens,) in the packed order of
    `emissions.data`, and the best path's score per sequence.
    """
    n0 = int(emissions.batch_sizes[0])
    score = start + emissions.data[:n0]  # shape: (batch, tags)
    many = transitions.shape[0] >= MANY_TAGS
    best_previous = split_of(transitions).best_previous if many else _broadcast_max(transitions)
    history = []
    for n, emit in _steps(emissions):
        best, prev = best_previous(score[:n])  # shape: (n, tags)
        history.append(prev)
        score = torch.cat([best + emit, score[n:]])
    score = score + end
    best_score, cur = score.max(dim=1)  # shape: (batch,)
    sizes = emissions.batch_sizes.tolist()
    tags = torch.empty(emissions.data.shape[0], dtype=torch.long, device=cur.device)
    offset = emissions.data.shape[0]
    for t in range(len(sizes) - 1, -1, -1):
        n = sizes[t]
        offset -= n
        tags[offset : offset + n] = cur[:n]
        if t > 0:
            cur[:n] = history[t - 1].gather(1, cur[:n, None]).squeeze(1)
    return tags, _by_sequence(best_score, emissions)


_last_split: tuple = (None, None)  # (weak reference to an inference tensor of transitions, its split)


def split_of(transitions: Tensor) -> "_Split":
    """The `_Split` of a transition matrix; in prediction (an inference
    tensor, which is never changed in place here), kept for the next call
    with the same tensor: the Viterbi search and the entity probabilities of
    a batch share one (building it takes 0.1 s with 1,000 labels)."""
    global _last_split
    ref, split = _last_split
    if ref is not None and ref() is transitions:
        return split
    split = _Split(transitions)
    if transitions.is_inference():
        _last_split = (weakref.ref(transitions), split)
    return split


def _broadcast_max(transitions: Tensor):
    """max and argmax over the previous tag of score[prev] + transitions[prev, next]."""
    return lambda score: (score.unsqueeze(2) + transitions).max(dim=1)


class _Matrix:
    """A (tags, tags) matrix M of `_in_probability_space`: x @ M and x @ M.T."""

    def __init__(self, matrix: Tensor):
        self.matrix = matrix

    def times(self, x: Tensor) -> Tensor:
        return x @ self.matrix

    def times_transposed(self, x: Tensor) -> Tensor:
        return x @ self.matrix.T


class _Split:
    """A (tags, tags) transition matrix split by the tag scheme's constraints
    (entries at NEG), for many tags: no product or max over it builds a
    (batch, tags, tags) tensor or touches the forbidden half of the matrix.

    The next tags that few tags may precede (I-X and L-X: only B-X or I-X)
    keep those few entries, gathered; the others (O, B-X, U-X) share one
    dense block, from the tags that may precede any of them. Products with
    the matrix (`times`, in probability space) multiply by the block and sum
    the gathered entries. The max over the previous tag (`best_previous`,
    the Viterbi step) is pruned in the block: for each row, the PRUNE_TOP
    best previous tags give a lower bound of every column's max, and the
    column is settled when that bound is above what any other previous tag
    could reach: the next best score plus the column's largest transition.
    Rows with unsettled columns try 8 times as many previous tags; what is
    still unsettled, rare once the model is trained, is computed in full,
    in chunks. The result equals `_broadcast_max` for every tag some allowed
    path reaches.
    """

    def __init__(self, transitions: Tensor):
        allowed = transitions > NEG / 2
        few = allowed.sum(dim=0) <= FEW_PREVS
        self.n_tags = len(transitions)
        self.few_cols, self.dense_cols = few.nonzero()[:, 0], (~few).nonzero()[:, 0]
        self.order = torch.cat([self.few_cols, self.dense_cols]).argsort()  # (few | dense) columns -> tag order
        n_few = min(FEW_PREVS, self.n_tags)
        # the allowed previous tags of each few column first, padded with forbidden ones (at NEG)
        self.few_prev = allowed[:, self.few_cols].T.float().topk(n_few, dim=1).indices  # shape: (few, n_few)
        self.few = transitions[self.few_prev, self.few_cols[:, None]]  # shape: (few, n_few)
        self.rows = allowed[:, self.dense_cols].any(dim=1).nonzero()[:, 0]
        self.block = transitions[self.rows][:, self.dense_cols]  # shape: (rows, dense)
        self.col_max = self.block.max(dim=0).values if len(self.rows) else None  # the bound of best_previous

    def exp(self, shift: Tensor) -> "_Split":
        """The same split of exp(transitions - shift): forbidden entries are 0.
        It only multiplies (`times`): no bound of log scores is kept."""
        out = copy.copy(self)
        out.few, out.block = torch.exp(self.few - shift), torch.exp(self.block - shift)
        out.col_max = None
        return out

    def times(self, x: Tensor) -> Tensor:
        """x @ matrix, for x of shape (n, tags)."""
        few = (x[:, self.few_prev] * self.few).sum(dim=2)  # shape: (n, few)
        return torch.cat([few, x[:, self.rows] @ self.block], dim=1)[:, self.order]

    def times_transposed(self, x: Tensor) -> Tensor:
        """x @ matrix.T, for x of shape (n, tags)."""
        n = x.shape[0]
        out = x.new_zeros(n, self.n_tags).index_add(1, self.rows, x[:, self.dense_cols] @ self.block.T)
        few = (x[:, self.few_cols, None] * self.few).reshape(n, -1)
        return out.index_add(1, self.few_prev.reshape(-1), few)

    def best_previous(self, score: Tensor) -> Tuple[Tensor, Tensor]:
        """max and argmax over the previous tag of score[prev] + matrix[prev, next]."""
        top, j = (score[:, self.few_prev] + self.few).max(dim=2)  # shape: (n, few)
        few_prev = self.few_prev.gather(1, j.T).T
        if len(self.dense_cols):
            block_top, at = self._block_max(score[:, self.rows])
            top, prev = torch.cat([top, block_top], dim=1), torch.cat([few_prev, self.rows[at]], dim=1)
            return top[:, self.order], prev[:, self.order]
        return top, few_prev

    def _block_max(self, score: Tensor) -> Tuple[Tensor, Tensor]:
        """max and argmax over the block's rows, for every row of score."""
        n, rows = score.shape
        top = score.new_empty(n, self.block.shape[1])
        at = torch.zeros(top.shape, dtype=torch.long, device=score.device)
        unsure = torch.ones(top.shape, dtype=torch.bool, device=score.device)
        todo, k = torch.arange(n, device=score.device), PRUNE_TOP
        while k <= rows // 8 and len(todo):  # the rows with unsure columns try 8 times as many
            for part in todo.split(max(1, CHUNK // (k * self.block.shape[1]))):
                first = score[part].topk(k + 1, dim=1)  # shape: (part, k + 1)
                cand = first.values[:, :k, None] + self.block[first.indices[:, :k]]  # shape: (part, k, dense)
                top[part], j = cand.max(dim=1)
                at[part] = first.indices.gather(1, j)
                unsure[part] = top[part] <= first.values[:, k:] + self.col_max
            todo = todo[unsure[todo].any(dim=1)]
            k *= 8
        for pairs in unsure.nonzero().split(max(1, CHUNK // rows)):  # what no bound decided
            r, c = pairs.T
            top[r, c], at[r, c] = (score[r] + self.block[:, c].T).max(dim=1)
        return top, at


def marginals(
    emissions: PackedSequence, transitions: Tensor, start: Tensor, end: Tensor
) -> Tensor:
    """p(tag at token) for every token, shape (tokens, tags) in packed order.

    The gradient of log Z with respect to the emissions is exactly the matrix of
    marginal probabilities (the forward-backward identity).
    """
    return expectations(emissions, transitions, start, end, emissions_only=True)[0]


def expectations(
    emissions: PackedSequence, transitions: Tensor, start: Tensor, end: Tensor, emissions_only: bool = False
) -> Tuple[Tensor, ...]:
    """The expected use of every score under the CRF's distribution over the
    batch's tag sequences: the gradients of log Z with respect to the emissions
    (the marginals, packed order), and unless emissions_only the transitions,
    start and end (expected counts summed over the batch)."""
    with torch.enable_grad():
        inputs = [x.detach().requires_grad_(True) for x in (emissions.data, transitions, start, end)]
        seq = PackedSequence(inputs[0], emissions.batch_sizes, emissions.sorted_indices, emissions.unsorted_indices)
        log_z = log_partition(seq, *inputs[1:])
        return torch.autograd.grad(log_z.sum(), inputs[:1] if emissions_only else inputs)


def path_score(
    emissions: Tensor, tags: Tensor, lengths: Tensor, transitions: Tensor, start: Tensor, end: Tensor
) -> Tensor:
    """The score of one given tag sequence per sequence, without a loop.

    emissions: (tokens, tags) in flat order (sequence after sequence); tags:
    (tokens,) the path; lengths: (sequences,) the sequence lengths.
    Returns shape (sequences,).
    """
    lengths = lengths.to(emissions.device)
    seq_of = torch.repeat_interleave(torch.arange(len(lengths), device=emissions.device), lengths)  # shape: (tokens,)
    firsts = torch.cumsum(lengths, 0) - lengths
    lasts = firsts + lengths - 1
    token = emissions.gather(1, tags[:, None]).squeeze(1)  # shape: (tokens,)
    step = torch.ones_like(tags, dtype=torch.bool)
    step[firsts] = False  # tokens that have a predecessor in their sequence
    pairs = transitions[tags[:-1], tags[1:]] * step[1:]  # shape: (tokens - 1,)
    scores = torch.zeros(len(lengths), dtype=emissions.dtype, device=emissions.device).index_add(0, seq_of, token)
    scores = scores.index_add(0, seq_of[1:], pairs)
    return scores + start[tags[firsts]] + end[tags[lasts]]


def forward_backward(
    emissions: PackedSequence, transitions: Tensor, start: Tensor, end: Tensor
) -> Tuple[Tensor, Tensor, Tensor]:
    """Forward and backward log-messages, in the packed order of `emissions.data`.

    Returns (alpha, beta, log_z): alpha[r, y] is the log-sum of the scores of
    every prefix that puts tag y on row r's token (its emission included),
    beta[r, y] the log-sum over every suffix after it given y (the end score
    included), and log_z[r] the log partition of the row's sequence. So
    ``exp(alpha + beta - log_z[:, None])`` are the marginals, and any run of
    tags on consecutive tokens has an exact probability (`chain_log_probs`).

    Computed in probability space with one scale per row and step (a matrix
    product a step instead of a log-sum-exp over (n, tags, tags)); forbidden
    tags come out as -inf.
    """
    sizes = emissions.batch_sizes.tolist()
    offsets = [0]
    for n in sizes[:-1]:
        offsets.append(offsets[-1] + n)
    data = emissions.data
    scaled = _in_probability_space(emissions, transitions)
    trans, t_max, emit, row_max = scaled
    alphas, alpha_scales = zip(*_forward_messages(emissions, start, scaled))
    end_top = end.max()
    b_end, log_b_end = _normalized(torch.exp(end - end_top)[None], end_top.reshape(1, 1))
    b, log_b = b_end.expand(sizes[-1], -1), log_b_end.expand(sizes[-1], 1)
    betas, beta_scales = [b], [log_b]
    for t in range(len(sizes) - 2, -1, -1):
        m, rows = sizes[t + 1], slice(offsets[t + 1], offsets[t + 1] + sizes[t + 1])
        b, log_b = _normalized(trans.times_transposed(b * emit[rows]), log_b + t_max + row_max[rows])
        extra = sizes[t] - m  # sequences ending at step t
        b = torch.cat([b, b_end.expand(extra, -1)])
        log_b = torch.cat([log_b, log_b_end.expand(extra, 1)])
        betas.append(b)
        beta_scales.append(log_b)
    betas.reverse()
    beta_scales.reverse()
    alpha = torch.log(torch.cat(alphas)) + torch.cat(alpha_scales)
    beta = torch.log(torch.cat(betas)) + torch.cat(beta_scales)
    log_z = torch.logsumexp(alpha[: sizes[0]] + beta[: sizes[0]], dim=1)  # by decreasing length
    rank = torch.cat([torch.arange(n, device=data.device) for n in sizes])
    return alpha, beta, log_z[rank]


def chain_log_probs(
    emissions: Tensor, transitions: Tensor, alpha: Tensor, beta: Tensor, log_z: Tensor,
    positions: Tensor, tags: Tensor, chains: Tensor, n_chains: int,
) -> Tensor:
    """log p(the tokens at `positions` carry `tags`), per chain, exactly.

    All per-token tensors in one order (flat or packed, the same for all):
    emissions (tokens, tags), alpha/beta/log_z from `forward_backward`.
    A chain is a run of consecutive tokens of one sequence; `positions`,
    `tags` and `chains` (the chain id of each entry, non-decreasing, entries
    of a chain in token order) list them all. An entity is the chain of its
    tags (B, I..., L or U), so this is the probability that exactly that
    entity is predicted, under the same constraints as the Viterbi decode.
    Returns shape (n_chains,).
    """
    first = torch.ones_like(chains, dtype=torch.bool)
    first[1:] = chains[1:] != chains[:-1]
    last = torch.ones_like(first)
    last[:-1] = first[1:]
    step = emissions[positions, tags] + transitions[tags.roll(1), tags]  # wrong at firsts, masked below
    step = torch.where(first, alpha[positions, tags] - log_z[positions], step)
    step = torch.where(last, step + beta[positions, tags], step)
    return torch.zeros(n_chains, dtype=emissions.dtype, device=emissions.device).index_add(0, chains, step)
