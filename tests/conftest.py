import pytest
import spacy

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
