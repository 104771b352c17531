"""Error analysis: each kind of error lands in its category, counts add up to
the scorer's false positives and negatives, binary scores ignore the label."""
import json
import subprocess
import sys

import pytest
import spacy
import srsly
from spacy.scorer import Scorer
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example

from spacy_bilstm_crf.analysis import analysis_table, error_analysis

WORDS = "Mr John Smith of New York Times met Acme Corp in Paris and Rome today".split()


def doc_with(nlp, ents):
    doc = Doc(nlp.vocab, words=WORDS)
    doc.ents = [Span(doc, s, e, label=label) for s, e, label in ents]
    return doc


def test_each_error_in_its_category():
    nlp = spacy.blank("en")
    gold = [(1, 3, "PER"), (4, 7, "ORG"), (8, 10, "ORG"), (11, 12, "LOC"), (13, 14, "LOC")]
    pred = [(0, 3, "PER"),   # boundary (FP and FN)
            (4, 6, "LOC"),   # boundary + type
            (8, 10, "PER"),  # type
            (11, 12, "LOC"),  # correct
            (14, 15, "MISC")]  # spurious; Rome (13, 14) is missed
    eg = Example(doc_with(nlp, pred), doc_with(nlp, gold))
    result = error_analysis([eg], n_examples=3)
    assert result["false_positives"] == {"type": 1, "boundary": 1, "boundary_type": 1, "spurious": 1}
    assert result["false_negatives"] == {"type": 1, "boundary": 1, "boundary_type": 1, "missed": 1}
    assert result["per_type"]["ORG"]["false_negatives"] == {"type": 1, "boundary": 0, "boundary_type": 1, "missed": 0}
    assert result["per_type"]["LOC"]["false_negatives"]["missed"] == 1
    assert result["per_type"]["LOC"]["false_positives"]["boundary_type"] == 1
    assert result["per_type"]["MISC"]["false_positives"]["spurious"] == 1
    assert result["typed"]["correct"] == 1 and result["typed"]["gold"] == 5 and result["typed"]["predicted"] == 5
    # binary: the exact spans of Paris and Acme Corp count, whatever their labels
    assert result["binary"]["correct"] == 2 and result["binary"]["p"] == pytest.approx(2 / 5)
    missed = result["examples"]["fn_missed"][0]
    assert missed["text"] == "Rome" and "[[Rome]]" in missed["context"]
    scores = Scorer.score_spans([eg], "ents")
    assert result["typed"]["f"] == pytest.approx(scores["ents_f"])
    table = analysis_table(result)
    assert "binary" in table and table.splitlines()[0].split()[:3] == ["label", "gold", "pred"]


def test_counts_add_up_on_random_errors():
    import random

    rng = random.Random(0)
    nlp = spacy.blank("en")
    examples = []
    for _ in range(200):
        def ents():
            out, i = [], 0
            while i < len(WORDS):
                if rng.random() < 0.3:
                    n = rng.randint(1, 3)
                    out.append((i, min(i + n, len(WORDS)), rng.choice(["A", "B"])))
                    i += n
                i += 1
            return out
        examples.append(Example(doc_with(nlp, ents()), doc_with(nlp, ents())))
    result = error_analysis(examples)
    typed = result["typed"]
    assert sum(result["false_positives"].values()) == typed["predicted"] - typed["correct"]
    assert sum(result["false_negatives"].values()) == typed["gold"] - typed["correct"]
    assert result["binary"]["correct"] >= typed["correct"]
    assert typed["f"] == pytest.approx(Scorer.score_spans(examples, "ents")["ents_f"])


# TRAIN_DATA's texts with gold the pipeline trained on TRAIN_DATA disagrees with:
# a boundary, a type and a spurious, a missed (a label it lacks), a correct
GOLD = [
    ("Who is Shaka Khan?", [(7, 12, "PERSON")]),
    ("I like London and Berlin.", [(7, 13, "ORG")]),
    ("Angela Merkel flew to Paris on Monday.", [(0, 13, "PERSON"), (22, 27, "LOC"), (31, 37, "DATE")]),
    ("The Large-Animal Society met in Rome.", [(4, 24, "ORG"), (32, 36, "LOC")]),
]


def test_analyze_command(tmp_path):
    """Through the CLI on a small trained pipeline and gold DocBin: the
    analysis of the pipeline's own predictions, as made here."""
    from .helpers import make_examples, train_small_pipeline

    train_small_pipeline(tmp_path / "model", n_iter=30, sentencizer=False)
    gold = [eg.reference for eg in make_examples(spacy.blank("en"), GOLD)]
    DocBin(docs=gold).to_disk(tmp_path / "gold.spacy")
    out = tmp_path / "analysis.json"
    result = subprocess.run([sys.executable, "-m", "spacy_bilstm_crf", "analyze", str(tmp_path / "model"),
                             str(tmp_path / "gold.spacy"), "--output", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "binary" in result.stdout
    data = json.loads(out.read_text())
    nlp = spacy.load(tmp_path / "model")
    words = [Doc(nlp.vocab, words=[t.text for t in g], spaces=[bool(t.whitespace_) for t in g]) for g in gold]
    examples = [Example(doc, g) for doc, g in zip(nlp.pipe(words), gold)]
    assert data == json.loads(srsly.json_dumps({**error_analysis(examples), "documents": len(GOLD)}))
    assert data["typed"]["gold"] == 7 and 0 < data["typed"]["correct"] < 7
