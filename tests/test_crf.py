"""The CRF against brute force: every quantity is recomputed by enumerating all
K**T tag sequences of small random problems."""
import itertools

import numpy
import pytest
import torch

from spacy_bilstm_crf.models import crf as crf_module
from spacy_bilstm_crf.models.crf import NEG, constrain, expectations, log_partition, marginals, path_score, viterbi
from spacy_bilstm_crf.models.packing import pack_index, packed, unpacked
from spacy_bilstm_crf.tags import allowed_transitions, is_valid, n_tags


def random_problem(seed, lengths, k, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    flat = torch.randn(sum(lengths), k, generator=g, dtype=dtype)
    trans = torch.randn(k, k, generator=g, dtype=dtype)
    start = torch.randn(k, generator=g, dtype=dtype)
    end = torch.randn(k, generator=g, dtype=dtype)
    return flat, trans, start, end


def path_score_bf(em, path, trans, start, end):
    s = start[path[0]] + end[path[-1]] + sum(em[t, y] for t, y in enumerate(path))
    return s + sum(trans[a, b] for a, b in zip(path, path[1:]))


def brute_force(em, trans, start, end, allowed_paths=None):
    """(log Z, best path, best score, marginals) by enumeration."""
    T, K = em.shape
    paths = list(itertools.product(range(K), repeat=T))
    if allowed_paths is not None:
        paths = [p for p in paths if allowed_paths(p)]
    scores = torch.stack([path_score_bf(em, p, trans, start, end) for p in paths])
    log_z = torch.logsumexp(scores, 0)
    probs = torch.exp(scores - log_z)
    marg = torch.zeros(T, K, dtype=em.dtype)
    for p, pr in zip(paths, probs):
        marg[torch.arange(T), torch.tensor(p)] += pr
    best = int(scores.argmax())
    return log_z, list(paths[best]), scores[best], marg


def split(flat, lengths):
    return list(torch.split(flat, lengths))


CASES = [([1], 3), ([3], 2), ([4, 2, 3], 3), ([2, 5, 1, 5], 2), ([3, 3], 4)]


@pytest.mark.parametrize("lengths,k", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_log_partition_viterbi_marginals_match_brute_force(lengths, k, seed, crf_path):
    flat, trans, start, end = random_problem(seed, lengths, k)
    pack = pack_index(lengths)
    seq = packed(flat, pack)
    log_z = log_partition(seq, trans, start, end)
    tags, best = viterbi(seq, trans, start, end)
    tags = unpacked(tags, pack)
    marg = unpacked(marginals(seq, trans, start, end), pack)
    offset = 0
    for i, (em, n) in enumerate(zip(split(flat, lengths), lengths)):
        bz, bpath, bscore, bmarg = brute_force(em, trans, start, end)
        assert log_z[i].item() == pytest.approx(bz.item(), abs=1e-9)
        assert tags[offset : offset + n].tolist() == bpath
        assert best[i].item() == pytest.approx(bscore.item(), abs=1e-9)
        assert torch.allclose(marg[offset : offset + n], bmarg, atol=1e-9)
        offset += n


@pytest.mark.parametrize("seed", range(4))
def test_gold_score_and_partial_labels(seed, crf_path):
    """Constraining emissions to the gold tags gives the gold path score; with
    some tokens unobserved it gives the log-sum over the consistent paths."""
    lengths, k = [4, 3], 3
    flat, trans, start, end = random_problem(seed, lengths, k)
    g = torch.Generator().manual_seed(100 + seed)
    gold = torch.randint(0, k, (sum(lengths),), generator=g)
    observed = torch.rand(sum(lengths), generator=g) < 0.5
    pack = pack_index(lengths)
    full = torch.nn.functional.one_hot(gold, k).bool()
    partial = full | ~observed[:, None]
    z_gold = log_partition(packed(constrain(flat, full), pack), trans, start, end)
    z_part = log_partition(packed(constrain(flat, partial), pack), trans, start, end)
    offset = 0
    for i, (em, n) in enumerate(zip(split(flat, lengths), lengths)):
        g_path = gold[offset : offset + n].tolist()
        obs = observed[offset : offset + n].tolist()
        assert z_gold[i].item() == pytest.approx(path_score_bf(em, g_path, trans, start, end).item(), abs=1e-9)
        consistent = lambda p: all(not o or y == gy for y, gy, o in zip(p, g_path, obs))
        bz = brute_force(em, trans, start, end, allowed_paths=consistent)[0]
        assert z_part[i].item() == pytest.approx(bz.item(), abs=1e-9)
        offset += n


def test_gradient_float64(crf_path):
    lengths, k = [3, 1, 2], 3
    flat, trans, start, end = random_problem(7, lengths, k)
    gold = torch.nn.functional.one_hot(torch.tensor([0, 2, 1, 1, 0, 2]), k).bool()
    pack = pack_index(lengths)

    def nll(flat, trans, start, end):
        z = log_partition(packed(flat, pack), trans, start, end)
        zg = log_partition(packed(constrain(flat, gold), pack), trans, start, end)
        return (z - zg).sum()

    inputs = tuple(x.clone().requires_grad_(True) for x in (flat, trans, start, end))
    assert torch.autograd.gradcheck(nll, inputs)


@pytest.mark.parametrize("scheme", ["BILUO", "BIO"])
def test_many_tags_forward_matches_logsumexp(scheme, monkeypatch):
    """With hundreds of tags log_partition multiplies matrices; it agrees with
    the log-space forward on constrained float32 problems, gradients too,
    including sequences whose constraints forbid every path."""
    n_labels = 40
    k = n_tags(n_labels, scheme)
    assert k >= crf_module.MANY_TAGS
    lengths = [6, 1, 9, 4]
    flat, trans, start, end = random_problem(3, lengths, k, dtype=torch.float32)
    flat = flat * 3
    allowed = torch.rand(sum(lengths), k, generator=torch.Generator().manual_seed(0)) > 0.2
    first, then = (1, 0) if scheme == "BILUO" else (0, 2)  # B-X then O; O then I-X: forbidden
    allowed[0] = False  # the first sequence's first token may take one tag only,
    allowed[0, first] = True
    allowed[1] = False  # and its second token one that may not follow it
    allowed[1, then] = True
    masks = [torch.from_numpy(m) for m in allowed_transitions(n_labels, scheme)]
    results = []
    for threshold in (1, 10**9):
        monkeypatch.setattr(crf_module, "MANY_TAGS", threshold)
        inputs = [x.clone().requires_grad_(True) for x in (flat, trans, start, end)]
        em = constrain(inputs[0], allowed)
        t, s, e = (constrain(x, m) for x, m in zip(inputs[1:], masks))
        log_z = log_partition(packed(em, pack_index(lengths)), t, s, e)
        grads = torch.autograd.grad(log_z[1:].sum(), inputs)
        results.append((log_z.detach(), grads))
    (z_mm, g_mm), (z_ls, g_ls) = results
    assert z_ls[0] < -5000 and z_mm[0] < -50  # all forbidden: nothing, in either
    assert torch.allclose(z_mm[1:], z_ls[1:], rtol=1e-5, atol=1e-3)
    for a, b in zip(g_mm, g_ls):
        assert torch.isfinite(a).all()
        assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("scheme", ["BILUO", "BIO"])
@pytest.mark.parametrize("prune_top", [1, 2, 8])
@pytest.mark.parametrize("scale", [0.0, 1.0, 6.0])
def test_many_tags_viterbi_matches_broadcast(scheme, prune_top, scale, monkeypatch):
    """With many tags viterbi prunes its max over the previous tag; on
    constrained problems (some tokens forced to one tag, as entities already
    on the doc are) it finds the same paths and scores as the broadcast max.
    Scale 0 gives every tag the same emission (an untrained model), 6 a
    confident one, where pruning decides almost every column; with 70 labels
    (141 tags that may precede O, B-X and, in BILUO, U-X) prune_top 1 and 2
    try two rounds, 8 one."""
    n_labels = 70
    k = n_tags(n_labels, scheme)
    lengths = [7, 1, 12, 3, 9, 9]
    flat, trans, start, end = random_problem(5, lengths, k, dtype=torch.float32)
    flat = flat * scale
    allowed = torch.ones(sum(lengths), k, dtype=torch.bool)
    allowed[2] = False  # the first sequence's third token is forced to the first label's B tag
    allowed[2, 1] = True
    masks = [torch.from_numpy(m) for m in allowed_transitions(n_labels, scheme)]
    t, s, e = (constrain(x, m) for x, m in zip((trans, start, end), masks))
    seq = packed(constrain(flat, allowed), pack_index(lengths))
    monkeypatch.setattr(crf_module, "PRUNE_TOP", prune_top)
    results = []
    for threshold in (1, 10**9):
        monkeypatch.setattr(crf_module, "MANY_TAGS", threshold)
        results.append(viterbi(seq, t, s, e))
    (tags, best), (tags_bc, best_bc) = results
    assert tags.tolist() == tags_bc.tolist()
    assert torch.equal(best, best_bc)
    for path in torch.split(unpacked(tags, pack_index(lengths)), lengths):
        assert is_valid(path.tolist(), n_labels, scheme)


def test_marginals_are_probabilities():
    flat, trans, start, end = random_problem(3, [6, 2], 5, dtype=torch.float32)
    pack = pack_index([6, 2])
    marg = marginals(packed(flat, pack), trans, start, end)
    assert torch.allclose(marg.sum(1), torch.ones(8), atol=1e-5)
    assert (marg >= 0).all()


@pytest.mark.parametrize("scheme", ["BILUO", "BIO"])
def test_constrained_viterbi_is_always_valid(scheme):
    """Random emissions and transitions: with the scheme's constraints applied,
    every decoded sequence is a valid tag sequence."""
    n_labels = 3
    k = n_tags(n_labels, scheme)
    trans_ok, start_ok, end_ok = (torch.from_numpy(m) for m in allowed_transitions(n_labels, scheme))
    g = torch.Generator().manual_seed(0)
    lengths = [1, 2, 3, 5, 8, 13, 21, 34] * 4
    for trial in range(20):
        flat = torch.randn(sum(lengths), k, generator=g) * 5
        trans = torch.randn(k, k, generator=g) * 5
        start, end = torch.randn(k, generator=g) * 5, torch.randn(k, generator=g) * 5
        pack = pack_index(lengths)
        tags, _ = viterbi(
            packed(flat, pack), constrain(trans, trans_ok), constrain(start, start_ok), constrain(end, end_ok)
        )
        tags = unpacked(tags, pack)
        for seq in torch.split(tags, lengths):
            assert is_valid(seq.tolist(), n_labels, scheme), seq.tolist()


def test_neg_is_finite_and_dominant():
    assert numpy.isfinite(NEG) and numpy.exp(numpy.float32(NEG)) == 0


def test_pack_index_round_trip():
    lengths = [3, 1, 4, 1, 5]
    pack = pack_index(lengths)
    assert pack.batch_sizes.tolist() == [5, 3, 3, 2, 1]
    flat = torch.arange(sum(lengths))
    seq = packed(flat, pack)
    # step 0 holds the first token of every sequence, longest first
    assert seq.data[:5].tolist() == [9, 4, 0, 3, 8]
    assert unpacked(seq.data, pack).tolist() == flat.tolist()
    with pytest.raises(ValueError):
        pack_index([2, 0])


@pytest.mark.parametrize("seed", range(3))
def test_path_score_matches_brute_force(seed):
    lengths, k = [4, 1, 3, 2], 3
    flat, trans, start, end = random_problem(seed, lengths, k)
    tags = torch.randint(0, k, (sum(lengths),), generator=torch.Generator().manual_seed(seed))
    got = path_score(flat, tags, torch.tensor(lengths), trans, start, end)
    offset = 0
    for i, (em, n) in enumerate(zip(split(flat, lengths), lengths)):
        want = path_score_bf(em, tags[offset : offset + n].tolist(), trans, start, end)
        assert got[i].item() == pytest.approx(want.item(), abs=1e-9)
        offset += n


def test_split_is_shared_only_in_prediction():
    """Prediction's Viterbi and entity probabilities share one split of the
    same (inference) tensor; a tensor that may change in place (training,
    gradcheck's perturbations) gets a fresh split every call."""
    allowed, _, _ = allowed_transitions(20, "BILUO")
    trans = constrain(torch.randn(allowed.shape), torch.from_numpy(allowed))
    assert crf_module.split_of(trans) is not crf_module.split_of(trans)
    with torch.inference_mode():
        frozen, other = trans.clone(), trans.clone()
    first = crf_module.split_of(frozen)
    assert crf_module.split_of(frozen) is first
    assert crf_module.split_of(other) is not first and crf_module.split_of(frozen) is not first  # one is kept


@pytest.mark.parametrize("lengths,k", [([3], 3), ([4, 2, 3], 2)])
def test_expectations_match_brute_force(lengths, k):
    """Expected transition, start and end counts (summed over the batch) and
    the marginals, against enumeration of every tag sequence."""
    flat, trans, start, end = random_problem(5, lengths, k)
    pack = pack_index(lengths)
    d_em, d_trans, d_start, d_end = expectations(packed(flat, pack), trans, start, end)
    want_trans, want_start, want_end = torch.zeros(k, k, dtype=flat.dtype), torch.zeros(k, dtype=flat.dtype), \
        torch.zeros(k, dtype=flat.dtype)
    for em in split(flat, lengths):
        paths = list(itertools.product(range(k), repeat=len(em)))
        scores = torch.stack([path_score_bf(em, p, trans, start, end) for p in paths])
        for path, prob in zip(paths, torch.softmax(scores, 0)):
            want_start[path[0]] += prob
            want_end[path[-1]] += prob
            for a, b in zip(path, path[1:]):
                want_trans[a, b] += prob
    assert torch.allclose(d_trans, want_trans, atol=1e-9)
    assert torch.allclose(d_start, want_start, atol=1e-9) and torch.allclose(d_end, want_end, atol=1e-9)
    assert torch.allclose(d_em, marginals(packed(flat, pack), trans, start, end), atol=1e-12)
    assert d_start.sum().item() == pytest.approx(len(lengths))
