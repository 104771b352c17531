"""spaCy's own CLI with our configs, and loading in fresh processes: everything
found through entry points, with no --code and no import of our package."""
import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from spacy.util import registry

from .helpers import TRAIN_DATA, gold_docs, write_gold_corpus

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURES = [
    "spacy_bilstm_crf.BiLSTMCRF.v1", "spacy_bilstm_crf.CharWordEmbed.v1", "spacy_bilstm_crf.CharWordEmbed.v2",
    "spacy_bilstm_crf.PretrainedVectors.v1", "spacy_bilstm_crf.CharLSTM.v1", "spacy_bilstm_crf.CharCNN.v1",
]


def run(*args, **kwargs):
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_entry_points_resolve():
    factories = {ep.name: ep for ep in entry_points(group="spacy_factories")}
    assert factories["bilstm_crf_ner"].load().__name__ == "make_bilstm_crf_ner"
    archs = {ep.name: ep for ep in entry_points(group="spacy_architectures")}
    assert set(ARCHITECTURES) <= set(archs)
    for name in ARCHITECTURES:
        assert registry.architectures.get(name) is archs[name].load()


def test_fresh_process_finds_everything_without_import():
    code = (
        "import sys, spacy; from spacy.util import registry\n"
        "nlp = spacy.blank('en'); nlp.add_pipe('bilstm_crf_ner')\n"
        f"[registry.architectures.get(n) for n in {ARCHITECTURES!r}]\n"
        "print(nlp.pipe_names)\n"
    )
    assert "bilstm_crf_ner" in run("-c", code).stdout


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_gold_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize("config", ["bilstm_crf.cfg"])
def test_debug_config(corpus, config):
    run("-m", "spacy", "debug", "config", str(ROOT / "configs" / config),
        "--paths.train", str(corpus / "train.spacy"), "--paths.dev", str(corpus / "dev.spacy"))


def test_debug_data_checks_our_entities_as_spacy_checks_ner(tmp_path):
    """`python -m spacy_bilstm_crf debug-data` is spaCy's `debug data` with its
    NER section (which spaCy shows only for the `ner` factory) on our data."""
    nlp = spacy.blank("en")
    docs = gold_docs(nlp, repeat=5)
    across = Doc(nlp.vocab, words=["I", "met", "Shaka", "Khan", "today"], sent_starts=[1, 0, 0, 1, 0])
    across.ents = [Span(across, 2, 4, "PERSON")]
    DocBin(docs=docs + [across]).to_disk(tmp_path / "train.spacy")
    DocBin(docs=docs[:4]).to_disk(tmp_path / "dev.spacy")
    result = subprocess.run([sys.executable, "-m", "spacy_bilstm_crf", "debug-data", str(ROOT / "configs" / "bilstm_crf.cfg"),
                             "--paths.train", str(tmp_path / "train.spacy"), "--paths.dev", str(tmp_path / "dev.spacy"),
                             "--training.annotating_components", "[]", "--nlp.pipeline", '["bilstm_crf_ner"]'],
                            capture_output=True, text=True)
    out = result.stdout
    assert "Named Entity Recognition" in out and "Traceback" not in result.stderr, out + result.stderr
    assert "3 label(s)" in out  # PERSON, LOC, ORG
    assert "1 entity span(s) crossing sentence boundaries" in out
    # the one error: spaCy finds 21 docs too few to train a new pipeline on
    assert result.returncode == 1 and "Low number of examples to train a new pipeline (21)" in out


def test_glove_config_validates(corpus, tmp_path):
    """The GloVe config accepts `[initialize] vectors` (a vectors pipeline),
    and the trained model reads them, by LOWER: zeroing them changes the
    scores of just the texts with a word that has a vector."""
    vectors = tmp_path / "vectors"
    nlp = spacy.blank("en")
    for word in ["shaka", "khan", "london", "berlin"]:
        nlp.vocab.set_vector(word, numpy.array([1.0, 0.5, -0.5, 0.25], dtype="f"))
    nlp.to_disk(vectors)
    run("-m", "spacy", "debug", "config", str(ROOT / "configs" / "bilstm_crf_glove.cfg"),
        "--paths.train", str(corpus / "train.spacy"), "--paths.dev", str(corpus / "dev.spacy"),
        "--paths.vectors", str(vectors))
    run("-m", "spacy", "train", str(ROOT / "configs" / "bilstm_crf_glove.cfg"),
        "--paths.train", str(corpus / "train.spacy"), "--paths.dev", str(corpus / "dev.spacy"),
        "--paths.vectors", str(vectors), "--training.max_steps", "10", "--output", str(tmp_path / "out"))
    assert (tmp_path / "out" / "model-last" / "vocab" / "vectors").exists()
    nlp = spacy.load(tmp_path / "out" / "model-last")
    ner = nlp.get_pipe("bilstm_crf_ner")
    assert any(node.name == "pretrained_vectors" for node in ner.model.walk())
    docs = [nlp.make_doc(text) for text, _ in TRAIN_DATA]
    before = ner.model.predict(docs)
    nlp.vocab.vectors.data[:] = 0
    after = ner.model.predict(docs)
    assert [numpy.allclose(a, b) for a, b in zip(before, after)] == [False, False, True, True]


def test_spacy_train_evaluate_and_load_in_fresh_process(corpus, tmp_path):
    """40 steps on TRAIN_DATA learn it: spaCy's scores say so, and fresh
    processes and this one find exactly its gold entities."""
    out = tmp_path / "out"
    result = run(
        "-m", "spacy", "train", str(ROOT / "configs" / "bilstm_crf.cfg"),
        "--paths.train", str(corpus / "train.spacy"), "--paths.dev", str(corpus / "dev.spacy"),
        "--training.max_steps", "40", "--training.eval_frequency", "20", "--output", str(out),
    )
    assert "ENTS_F" in result.stdout
    model = out / "model-last"
    meta = json.loads((model / "meta.json").read_text())
    assert meta["performance"]["ents_f"] >= 0.9
    metrics = tmp_path / "metrics.json"
    run("-m", "spacy", "evaluate", str(model), str(corpus / "dev.spacy"), "--output", str(metrics))
    assert json.loads(metrics.read_text())["ents_f"] >= 0.9
    texts = [text for text, _ in TRAIN_DATA]
    code = (
        "import json, sys, spacy\n"
        f"nlp = spacy.load({str(model)!r})\n"
        f"print(json.dumps([[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in nlp.pipe({texts!r})]))\n"
    )
    first = json.loads(run("-c", code).stdout)
    second = json.loads(run("-c", code).stdout)
    here = [[[e.start_char, e.end_char, e.label_] for e in d.ents] for d in spacy.load(model).pipe(texts)]
    assert first == second == here == [[list(e) for e in ents] for _, ents in TRAIN_DATA]


def test_saved_pipeline_holds_no_pickle(corpus, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner")
    nlp.initialize(lambda: [__import__("spacy").training.Example.from_dict(nlp.make_doc(t), {"entities": e})
                            for t, e in TRAIN_DATA])
    nlp.to_disk(tmp_path / "p")
    model_bytes = (tmp_path / "p" / "bilstm_crf_ner" / "model").read_bytes()
    # torch.save writes a zip archive holding data.pkl; msgpack never does
    assert b"data.pkl" not in model_bytes and b"PK\x03\x04" not in model_bytes


def test_spacy_init_labels_and_train_with_them(corpus, tmp_path):
    """`spacy init labels` stores label_data; [initialize.components] reads it back."""
    args = ["--paths.train", str(corpus / "train.spacy"), "--paths.dev", str(corpus / "dev.spacy")]
    run("-m", "spacy", "init", "labels", str(ROOT / "configs" / "bilstm_crf.cfg"), str(tmp_path / "labels"), *args)
    labels = json.loads((tmp_path / "labels" / "bilstm_crf_ner.json").read_text())
    assert labels == ["LOC", "ORG", "PERSON"]
    labels.append("EXTRA")  # a label the data lacks: only the file can bring it
    (tmp_path / "labels" / "bilstm_crf_ner.json").write_text(json.dumps(labels))
    config = spacy.util.load_config(ROOT / "configs" / "bilstm_crf.cfg")
    config["initialize"]["components"]["bilstm_crf_ner"] = {
        "labels": {"@readers": "spacy.read_labels.v1", "path": str(tmp_path / "labels" / "bilstm_crf_ner.json")}}
    config.to_disk(tmp_path / "with_labels.cfg")
    run("-m", "spacy", "train", str(tmp_path / "with_labels.cfg"), *args, "--training.max_steps", "2",
        "--output", str(tmp_path / "out"))
    assert spacy.load(tmp_path / "out" / "model-last").get_pipe("bilstm_crf_ner").labels == tuple(labels)


def test_factory_default_model_is_the_benchmarked_config():
    """`nlp.add_pipe("bilstm_crf_ner")` builds the model configs/bilstm_crf.cfg
    trains (and bench/ measures), not an older one."""
    config = spacy.util.load_config(ROOT / "configs" / "bilstm_crf.cfg")
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner")
    assert nlp.config["components"]["bilstm_crf_ner"]["model"] == config["components"]["bilstm_crf_ner"]["model"]
