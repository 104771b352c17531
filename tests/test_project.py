"""The spaCy project's workflow runs end to end on the sample data."""
import json
import shutil
from pathlib import Path

import pytest
import spacy
import srsly
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from weasel.cli.run import project_run

from spacy_bilstm_crf.analysis import error_analysis
from spacy_bilstm_crf.evaluation import confusion

ROOT = Path(__file__).resolve().parents[1]


def test_project_all(tmp_path):
    for name in ["project.yml", "configs", "assets"]:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    project_run(tmp_path, "all", overrides={"vars.max_steps": 100, "vars.eval_frequency": 50})
    metrics = json.loads((tmp_path / "metrics" / "bilstm_crf.json").read_text())
    assert set(metrics["ents_per_type"]) == {"PER", "ORG", "LOC", "MISC"}
    assert metrics["ents_f"] > 0.5
    model = tmp_path / "training" / "bilstm_crf" / "model-best"
    assert (model / "bilstm_crf_ner" / "model").exists()
    # evaluate and analyze report on model-best's predictions, as made here
    nlp = spacy.load(model)
    gold = list(DocBin().from_disk(tmp_path / "corpus" / "sample_dev.spacy").get_docs(nlp.vocab))
    words = [Doc(nlp.vocab, words=[t.text for t in g], spaces=[bool(t.whitespace_) for t in g]) for g in gold]
    examples = [Example(doc, g) for doc, g in zip(nlp.pipe(words), gold)]
    scores = get_ner_prf(examples)
    assert metrics["ents_f"] == pytest.approx(scores["ents_f"])
    assert {k: v["f"] for k, v in metrics["ents_per_type"].items()} == pytest.approx(
        {k: v["f"] for k, v in scores["ents_per_type"].items()})
    assert metrics["confusion"] == confusion(examples) and metrics["documents"] == len(gold)
    for png in ["confusion_matrix.png", "learning_curve.png"]:
        assert (tmp_path / "metrics" / "bilstm_crf" / png).read_bytes().startswith(b"\x89PNG")
    # the curve drawn live during training ends as the one evaluate draws from the log
    live = tmp_path / "training" / "bilstm_crf" / "learning_curve.png"
    assert live.read_bytes() == (tmp_path / "metrics" / "bilstm_crf" / "learning_curve.png").read_bytes()
    assert set(metrics["confusion"]) == {"LOC", "MISC", "ORG", "PER", "(none)"}
    brat_metrics = json.loads((tmp_path / "metrics" / "bilstm_crf_brat.json").read_text())
    assert brat_metrics["documents"] == 8
    errors = json.loads((tmp_path / "metrics" / "bilstm_crf_errors.json").read_text())
    assert errors["typed"]["f"] == pytest.approx(metrics["ents_f"])
    assert errors == json.loads(srsly.json_dumps({**error_analysis(examples), "documents": len(gold)}))
    page = (tmp_path / "metrics" / "bilstm_crf" / "entities.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and 'class="entity"' in page
    predicted = tmp_path / "predictions" / "bilstm_crf"
    for text in (tmp_path / "assets" / "texts").glob("*.txt"):
        assert (predicted / text.name).read_bytes() == text.read_bytes()
        ann = (predicted / text.name.replace(".txt", ".ann")).read_text().splitlines()
        n_entities = sum(line.startswith("T") for line in ann)
        assert sum("\tAnnotatorNotes T" in line and "confidence" in line for line in ann) == n_entities
    # the loop's next round: predicting again into the same folder replaces the predictions
    (predicted / "finals.ann").write_text("T1\tPER 0 3\tThe\n")
    project_run(tmp_path, "predict", force=True)
    assert (predicted / "finals.ann").read_text() != "T1\tPER 0 3\tThe\n"
    # and the pipeline packages as an installable sdist on a fresh checkout
    project_run(tmp_path, "package")
    assert list((tmp_path / "packages").glob("en_bilstm_crf-0.0.1/dist/en_bilstm_crf-0.0.1.tar.gz"))
