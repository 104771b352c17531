import pytest
import spacy

from spacy_bilstm_crf.models import crf

from .helpers import DATASETS


@pytest.fixture
def conll_train():
    path = DATASETS / "conll2003" / "train.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture
def nlp():
    return spacy.blank("en")


@pytest.fixture(params=["few", "many"])
def crf_path(request, monkeypatch):
    """Run a test with each of the CRF's two ways of computing (the ones for
    many tags are used from MANY_TAGS tags on: matrix products split by the
    scheme's constraints in the forward passes, a pruned max in viterbi)."""
    monkeypatch.setattr(crf, "MANY_TAGS", 1 if request.param == "many" else 10**9)
    return request.param
