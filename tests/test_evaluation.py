"""Scores are conlleval's: entity-level exact match, micro-averaged, I- after O
starting a chunk. conlleval's chunking rules are re-implemented here from its
definition and compared with the figures our `evaluate` command reports."""
import json
import random
from collections import deque

import pytest
import spacy
from spacy.language import Language
from spacy.pipeline.ner import ner_score
from spacy.tokens import Span
from spacy.training import Example

from spacy_bilstm_crf.commands import evaluate
from spacy_bilstm_crf.evaluation import NONE, confusion, report_table
from spacy_bilstm_crf.formats.conll import read_conll

from .helpers import DATASETS


def conlleval_chunks(tags):
    """(start, end, type) chunks by conlleval's startOfChunk / endOfChunk."""
    chunks, start, prev_tag, prev_type = set(), None, "O", ""
    for i, tag in enumerate(tags + ["O"]):
        kind, typ = (tag[0], tag[2:]) if tag != "O" else ("O", "")
        ends = prev_tag in "BI" and prev_tag != "O" and (kind in "BO" or typ != prev_type)
        starts = kind == "B" or (kind == "I" and prev_tag == "O") or (kind != "O" and typ != prev_type)
        if ends and start is not None:
            chunks.add((start, i, prev_type))
            start = None
        if starts:
            start = i
        prev_tag, prev_type = kind, typ
    return chunks


def conlleval_scores(gold_sents, pred_sents):
    per_type = {}
    for gold, pred in zip(gold_sents, pred_sents):
        g, p = conlleval_chunks(gold), conlleval_chunks(pred)
        for typ in {c[2] for c in g | p}:
            tp, fp, fn = per_type.get(typ, (0, 0, 0))
            gt, pt = {c for c in g if c[2] == typ}, {c for c in p if c[2] == typ}
            per_type[typ] = (tp + len(gt & pt), fp + len(pt - gt), fn + len(gt - pt))
    return per_type


def perturb(tags, rng):
    """Prediction-like errors: wrong types, shifted boundaries, misses,
    spurious entities, and IOB1-style I- starts."""
    out = list(tags)
    for i, tag in enumerate(out):
        r = rng.random()
        if tag != "O" and r < 0.05:
            out[i] = tag[:2] + rng.choice(["PER", "LOC", "ORG", "MISC"])
        elif tag != "O" and r < 0.08:
            out[i] = "O"
        elif tag == "O" and r < 0.02:
            out[i] = rng.choice(["B-", "I-"]) + rng.choice(["PER", "LOC"])
        elif tag.startswith("B-") and r < 0.12:
            out[i] = "I-" + tag[2:]
    return out


PREDICTED: deque = deque()


class PredictedEntities:
    """A pipe that gives each doc the entities of the next doc of PREDICTED
    (docs come in order), scored by spaCy's ner scorer as bilstm_crf_ner is."""

    def __call__(self, doc):
        predicted = PREDICTED.popleft()
        assert [t.text for t in predicted] == [t.text for t in doc]
        doc.ents = [Span(doc, e.start, e.end, e.label_) for e in predicted.ents]
        return doc

    def score(self, examples, **kwargs):
        return ner_score(examples, **kwargs)


@Language.factory("conlleval_test_predictions")
def make_predicted_entities(nlp, name):
    return PredictedEntities()


def test_scores_equal_conlleval_on_conll2003_test(tmp_path):
    """`evaluate` on the gold file, with a pipeline whose entities are the
    perturbed tags (read as IOB2, conlleval's way), reports conlleval's
    scores."""
    path = DATASETS / "conll2003" / "test.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    rng = random.Random(0)
    gold_lines, pred_lines, gold_sents, pred_sents, words, gold = [], [], [], [], [], []
    for line in path.read_text(encoding="utf8").split("\n"):
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-":
            if gold:
                p = perturb(gold, rng)
                gold_sents.append(gold), pred_sents.append(p)
                gold_lines.extend([*(f"{w} {t}" for w, t in zip(words, gold)), ""])
                pred_lines.extend([*(f"{w} {t}" for w, t in zip(words, p)), ""])
            words, gold = [], []
            continue
        words.append(cols[0])
        gold.append(cols[-1])
    for name, lines in (("gold.conll", gold_lines), ("pred.conll", pred_lines)):
        (tmp_path / name).write_text("\n".join(lines) + "\n", encoding="utf8")
    vocab = spacy.blank("en").vocab
    assert sum(len(d.ents) for d in read_conll(tmp_path / "gold.conll", vocab)) == 5648
    PREDICTED.clear()
    PREDICTED.extend(read_conll(tmp_path / "pred.conll", vocab, n_sents=10, scheme="IOB2"))
    nlp = spacy.blank("en")
    nlp.add_pipe("conlleval_test_predictions")
    nlp.to_disk(tmp_path / "model")
    evaluate(str(tmp_path / "model"), tmp_path / "gold.conll", output=tmp_path / "scores.json", plots=None, log=None,
             encoding="utf-8")
    assert not PREDICTED
    scores = json.loads((tmp_path / "scores.json").read_text())
    expected = conlleval_scores(gold_sents, pred_sents)
    assert scores["documents"] == -(-len(gold_sents) // 10)
    assert set(scores["ents_per_type"]) == set(expected)
    for typ, (tp, fp, fn) in expected.items():
        prf = scores["ents_per_type"][typ]
        assert prf["p"] == pytest.approx(tp / (tp + fp)) and prf["r"] == pytest.approx(tp / (tp + fn))
    tp, fp, fn = (sum(v[i] for v in expected.values()) for i in range(3))
    assert scores["ents_f"] == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_confusion_and_table():
    nlp = spacy.blank("en")
    gold = nlp("Ada Lovelace met Babbage in London")
    gold.set_ents([gold.char_span(0, 12, "PER"), gold.char_span(17, 24, "PER"), gold.char_span(28, 34, "LOC")])
    pred = nlp("Ada Lovelace met Babbage in London")
    pred.set_ents([pred.char_span(0, 3, "PER"), pred.char_span(17, 24, "ORG"), pred.char_span(28, 34, "LOC")])
    matrix = confusion([Example(pred, gold)])
    assert matrix["PER"]["ORG"] == 1 and matrix["LOC"]["LOC"] == 1
    assert matrix["PER"][NONE] == 1 and matrix[NONE]["PER"] == 1  # a boundary error: missed + spurious
    assert list(matrix) == ["LOC", "ORG", "PER", NONE]
    table = report_table({"ents_p": 1 / 3, "ents_r": 1 / 3, "ents_f": 1 / 3,
                          "ents_per_type": {"LOC": {"p": 1.0, "r": 1.0, "f": 1.0}}})
    assert table.splitlines()[1].split() == ["LOC", "100.00", "100.00", "100.00"]
    assert table.splitlines()[-1].split() == ["ALL", "33.33", "33.33", "33.33", "micro"]


@pytest.fixture
def saved_figures(monkeypatch):
    """The figures the plotting functions save, kept for inspection."""
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    figures = []
    save = Figure.savefig

    def keep(fig, *args, **kwargs):
        figures.append(fig)
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def test_confusion_plot_shows_the_counts(saved_figures, tmp_path):
    from spacy_bilstm_crf.evaluation import plot_confusion

    matrix = {"LOC": {"LOC": 7, "PER": 2, NONE: 1}, "PER": {"LOC": 0, "PER": 5, NONE: 0},
              NONE: {"LOC": 3, "PER": 0, NONE: 0}}
    assert plot_confusion(matrix, tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
    ax = saved_figures[0].axes[0]
    cells = {(int(round(t.get_position()[1])), int(round(t.get_position()[0]))): t.get_text() for t in ax.texts}
    assert cells == {(0, 0): "7", (0, 1): "2", (0, 2): "1", (1, 1): "5", (2, 0): "3"}  # (gold row, predicted column)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["LOC", "PER", NONE]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["LOC", "PER", NONE]
    shares = ax.images[0].get_array()
    assert shares[0].tolist() == pytest.approx([0.7, 0.2, 0.1]) and shares[1].tolist() == [0.0, 1.0, 0.0]


def test_learning_curve_plot_shows_scores_losses_and_the_best(saved_figures, tmp_path):
    from spacy_bilstm_crf.evaluation import plot_learning_curve

    rows = [{"step": s, "scores": {"ents_f": f}, "losses": {"bilstm_crf_ner": loss}}
            for s, f, loss in [(0, 0.0, 90.0), (200, 71.5, 20.0), (400, 84.25, 8.0), (600, 83.0, 5.0)]]
    assert plot_learning_curve(rows, tmp_path / "l.png").read_bytes().startswith(b"\x89PNG")
    scores_ax, loss_ax = saved_figures[0].axes
    (scores,) = scores_ax.get_lines()
    assert scores.get_xdata().tolist() == [0, 200, 400, 600] and scores.get_ydata().tolist() == [0.0, 71.5, 84.25, 83.0]
    assert loss_ax.get_lines()[0].get_ydata().tolist() == [90.0, 20.0, 8.0, 5.0]
    assert [t.get_text() for t in scores_ax.texts] == ["best 84.25 (step 400)"]
    assert plot_learning_curve([], tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
