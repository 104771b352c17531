"""Documents in and out of the commands: the formats (named, or told from a
path), reading docs from CoNLL, BRAT or DocBin (and the docs to label,
their entities set aside) and writing them with notes on what a format
cannot hold, entities as JSON rows, the check that an output destroys
nothing the user gave, and progress bars."""
import codecs
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import srsly
from spacy.tokens import Doc, DocBin

from .confidence import entity_rows, entity_scores
from .errors import FormatError
from .formats import brat, conll
from .shards import brat_name, refuse_existing


DOC_FORMATS = ("conll", "brat", "spacy", "jsonl", "parquet")
CONLL_SUFFIXES = {".conll", ".conllu", ".iob", ".iob2", ".bio", ".bioes", ".tsv", ".txt", ".conll03"}
INPUT_SUFFIXES = CONLL_SUFFIXES | {".ann", ".conf", ".spacy", ".jsonl", ".parquet"}  # what a folder's readers read


def infer_format(path: Path, given: Optional[str], *, reading: bool, flag: Optional[str] = None,
                 formats: Sequence[str] = DOC_FORMATS) -> str:
    """The format of a path: as given (one of formats), or from its name and
    contents. flag: the command's option that names a format, for the
    error message."""
    if given:
        usable = [f for f in formats if not (reading and f in ("jsonl", "parquet"))]
        if given not in usable:
            what = "unknown format" if given not in DOC_FORMATS else f"cannot {'read' if reading else 'write'} the format"
            raise FormatError(path, None, f"{what} {given!r}{' here' if given in DOC_FORMATS else ''}: use one of "
                                          f"{', '.join(usable)}.")
        if reading:
            _check_given(path, given, flag or "the format")
        return given
    if path.suffix == ".spacy":
        return "spacy"
    if path.is_dir() or (not path.exists() and not path.suffix):
        if reading and not any(path.rglob("*.txt")) and any(path.rglob("*.spacy")):
            return "spacy"
        return "brat"
    if path.suffix.lower() in CONLL_SUFFIXES:
        return "conll"
    if path.suffix.lower() in (".jsonl", ".parquet") and not reading:
        return path.suffix.lower()[1:]
    names = "a CoNLL file (" + ", ".join(sorted(CONLL_SUFFIXES)) + "), a .spacy file or a BRAT folder"
    how = f"pass {flag} conll|brat|spacy, or name it as" if flag else "name it as"
    raise FormatError(path, None, f"cannot tell the format of this path: {how} {names}.")


def format_by_name(path: Path) -> Optional[str]:
    """"spacy" or "conll" where the file's name says so, else None."""
    suffix = path.suffix.lower()
    return "spacy" if suffix == ".spacy" else "conll" if suffix in CONLL_SUFFIXES else None


def _check_given(path: Path, given: str, flag: str) -> None:
    """A FormatError if an input file is plainly not in the format given for
    it: BRAT is a folder (or a raw .txt file), and a .spacy or CoNLL name
    says what the file is."""
    if not path.is_file():
        return
    suffix = path.suffix.lower()
    named = format_by_name(path) if suffix != ".txt" else None  # a .txt file may be raw text
    if given == "brat" and suffix != ".txt":
        raise FormatError(path, None, f"{flag} brat reads a folder of NAME.txt files (with NAME.ann beside them) or "
                                      f"a raw .txt file, not a {suffix or 'suffix-less'} file"
                                      f"{f': pass {flag} {named}' if named else ''}.")
    if named is not None and given != named:
        raise FormatError(path, None, f"is a {'spaCy DocBin' if named == 'spacy' else 'CoNLL file'} by its name, "
                                      f"not {given}: pass {flag} {named}, or leave {flag} out.")


LONGEST_TEXT = 10**9  # characters: the nlp.max_length of the texts read by the commands


def require_input(path: Path, encoding: str = "utf-8") -> None:
    """A FormatError naming the input if it is missing or its encoding unknown."""
    if not path.exists():
        raise FormatError(path, None, "no such file or folder.")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise FormatError(path, None, f"unknown encoding {encoding!r} (--encoding): give a Python codec name, "
                                      "e.g. utf-8 or latin-1.") from None


def read_docs(path: Path, fmt: str, nlp, *, n_sents: int, tag_column: int, scheme: Optional[str],
              encoding: str) -> Tuple[List[Doc], Dict]:
    """Docs from a file or folder in a format, with a summary of what was read.
    Texts of any length are read: spaCy's max_length (1,000,000 characters)
    guards the memory of components that need it, and this recognizer cuts a
    long doc into sequences of max_length tokens (its model setting)."""
    require_input(path, encoding)
    nlp.max_length = max(nlp.max_length, LONGEST_TEXT)
    if fmt == "conll":
        files = [path]
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in CONLL_SUFFIXES)
            if not files:
                raise FormatError(path, None, f"no CoNLL files ({', '.join(sorted(CONLL_SUFFIXES))}) in this folder.")
        stats = conll.ReadStats()
        docs = [d for f in progress_bar(files, "Reading CoNLL") for d in conll.read_conll(
            f, nlp.vocab, n_sents=n_sents, tag_column=tag_column, scheme=scheme, encoding=encoding, stats=stats)]
        notes = {f"{k} (lenient repair; the first at {stats.first_at[k]})": v for k, v in stats.repairs.items()}
        return docs, {"sentences": stats.sentences, "entities": stats.entities, "notes": notes,
                      "scheme": stats.scheme}
    if fmt == "brat":
        stats = brat.BratStats()
        found = brat.find_documents(path)
        if not found:
            raise FormatError(path, None, "no .txt files (texts, each with its NAME.ann beside it where annotated) in "
                                          "this folder.")
        docs = [brat.read_brat(p, nlp, root=path, encoding=encoding, stats=stats)
                for p in progress_bar(found, "Reading BRAT")]
        return docs, {"entities": stats.entities, "notes": dict(stats.notes)}
    files = sorted(path.rglob("*.spacy")) if path.is_dir() else [path]
    if not files:
        raise FormatError(path, None, "no .spacy files in this folder.")
    docs = []
    for f in files:
        try:
            docs.extend(DocBin().from_disk(f).get_docs(nlp.vocab))
        except Exception as err:  # a DocBin that does not load is the user's file, not our bug
            raise FormatError(f, None, f"not a readable spaCy DocBin ({type(err).__name__}: {err}).") from None
    return docs, {"entities": sum(len(d.ents) for d in docs), "notes": {}}


def write_docs(docs: List[Doc], path: Path, fmt: str, *, scheme: Optional[str] = None,
               labels: Iterable[str] = (), score_notes: bool = False, overwrite: bool = False,
               conf_from: Optional[Path] = None) -> Dict:
    """Write docs to a file or folder in a format; returns notes on lossy steps.
    score_notes: BRAT: each new entity's probability in an AnnotatorNotes line.
    conf_from: BRAT: the input folder, whose annotation.conf is carried over.
    An existing output file, or in a BRAT folder an .ann or a different .txt
    of a document to write (someone's annotations, perhaps), is replaced only
    with overwrite; nothing is written if one would be."""
    if fmt != "brat":
        refuse_existing(path, overwrite)
    if fmt == "spacy":
        path.parent.mkdir(parents=True, exist_ok=True)
        DocBin(docs=docs, store_user_data=True).to_disk(path)
        return {}
    if fmt == "jsonl":
        path.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_jsonl(path, (_as_json(doc, i) for i, doc in enumerate(docs)))
        return _left_out(docs, fmt)
    if fmt == "conll":
        text, changes = conll.write_conll(docs, scheme=scheme, path=path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return {**changes, **_left_out(docs, fmt)}
    if fmt != "brat":
        raise FormatError(path, None, f"cannot write {fmt} here: use spacy, conll, brat or jsonl.")
    names: List[str] = []
    taken: set = set()
    for i, doc in enumerate(docs):
        name = brat_name(doc.user_data.get(brat.USER_DATA_KEY, {}).get("name") or f"doc{i:06d}")
        k = 1
        while name.lower() in taken:  # never overwrite an earlier document of this run
            name, k = f"{name}-{k}", k + 1
        names.append(name)
        taken.add(name.lower())
    for doc, name in zip(docs, names):
        conll.check_labels(doc, path, repr(name))  # before anything is written
    existing = [p for doc, name in zip(docs, names) for p in _replaced(path / name, doc)]
    if existing and not overwrite:
        raise FormatError(existing[0], None, f"exists ({len(existing)} of the {2 * len(names)} .ann/.txt files to "
                                             "write do): it may hold annotations. Write to a new folder, or pass "
                                             "--overwrite.")
    path.mkdir(parents=True, exist_ok=True)
    for doc, name in zip(progress_bar(docs, "Writing BRAT"), names):
        path.joinpath(f"{name}.ann").unlink(missing_ok=True)  # (overwrite) no old .ann outlives its text
        brat.write_brat(doc, path, name=name, scores=entity_scores(doc) if score_notes else None)
    brat.write_annotation_conf(path, set(labels) | {e.label_ for d in docs for e in d.ents},
                               source=Path(conf_from) / "annotation.conf" if conf_from is not None else None)
    return _left_out(docs, fmt)


def _left_out(docs: List[Doc], fmt: str) -> Dict[str, int]:
    """Notes on what the docs were read with that the output format cannot
    hold: BRAT lines other than the entities in doc.ents (outside BRAT), the
    other CoNLL columns and -DOCSTART- lines (outside CoNLL)."""
    notes: Dict[str, int] = {}
    if fmt != "brat":
        n = sum(_other_ann_lines(d.user_data.get(brat.USER_DATA_KEY, {})) for d in docs)
        if n:
            notes[f"BRAT annotation lines other than the entities (relations, events, attributes, notes, "
                  f"overlapping or discontinuous entities) that {fmt} cannot hold, left out"] = n
    if fmt != "conll":
        meta = [d.user_data.get(conll.USER_DATA_KEY, {}) for d in docs]
        n = sum(1 for m in meta if m.get("docstart") or any(m.get("columns", [])))
        if n:
            notes[f"documents written without their -DOCSTART- line or other CoNLL columns, which {fmt} cannot "
                  f"hold"] = n
    if fmt != "spacy":
        n = sum(1 for d in docs if _missing_annotation(d) and not (fmt == "brat" and not d.has_annotation("ENT_IOB")))
        if n:
            notes[f"documents with tokens whose entity annotation is missing (a text without .ann, a partly "
                  f"annotated doc), which {fmt} writes as outside any entity: to train on them, convert to "
                  f".spacy, which keeps them missing"] = n
    return notes


def _missing_annotation(doc: Doc) -> bool:
    """Whether some token's entity annotation is missing (neither in an
    entity nor outside one)."""
    return any(token.ent_iob == 0 for token in doc)


def _other_ann_lines(meta: Dict) -> int:
    """How many lines of a doc's BRAT annotation (its user_data) are not the
    lines of entities in doc.ents."""
    entity_lines = meta.get("entity_lines", {})
    return sum(1 for i, line in enumerate(meta.get("ann", [])) if line.strip() and str(i) not in entity_lines)


def _replaced(stem: Path, doc: Doc) -> List[Path]:
    """The files at STEM.ann and STEM.txt that writing the doc there would
    replace: an .ann, and a .txt of another text."""
    ann, txt = stem.with_name(stem.name + ".ann"), stem.with_name(stem.name + ".txt")
    found = [ann] if ann.exists() else []
    encoding = doc.user_data.get(brat.USER_DATA_KEY, {}).get("encoding", "utf-8")
    if txt.exists() and txt.read_bytes() != doc.text.encode(encoding):
        found.append(txt)
    return found


def check_output(output: Path, *inputs: Path, model: Optional[str] = None, folder: Optional[bool] = False,
                 read_back: bool = False) -> None:
    """A FormatError, before any work, if writing the output would destroy
    what the user gave or cannot be done: the output is an input, inside the
    model's folder, a file of an input folder of a kind read as input, or
    (read_back: documents a rerun would read as input) inside an input
    folder; a folder on its path is a file; the output is a
    folder where a file is written (folder=False) or a file where a folder
    is (folder=True)."""
    target = output.resolve()
    for path in inputs:
        if path.exists() and output.exists() and target == path.resolve():
            raise FormatError(output, None, "is the input too: writing the output there would replace the input. "
                                            "Give another output path.")
        if read_back and path.is_dir() and path.resolve() in target.parents:
            raise FormatError(output, None, f"is inside the input folder {path}: a later run would read the output "
                                            "as input. Give a path outside it.")
        if (path.is_dir() and path.resolve() in target.parents and output.is_file()
                and output.suffix.lower() in INPUT_SUFFIXES):
            raise FormatError(output, None, f"is a file of the input folder {path}, of a kind read as input: writing "
                                            "the output there would replace it. Give another output path.")
    model_dir = Path(model).resolve() if model is not None and Path(model).is_dir() else None
    if model_dir is not None and (target == model_dir or model_dir in target.parents):
        raise FormatError(output, None, f"is inside the model folder {model}: writing there could replace the "
                                        "trained pipeline's files. Give a path outside it.")
    above = next((p for p in reversed(output.parents) if p.exists() and not p.is_dir()), None)
    if above is not None:
        raise FormatError(above, None, f"is a file, so {output} cannot be written below it. Give another path.")
    if folder is False and output.is_dir():
        raise FormatError(output, None, "is a folder: give the path of a file to write.")
    if folder is True and output.exists() and not output.is_dir():
        raise FormatError(output, None, "is a file: give the path of a folder to write into.")


def _as_json(doc: Doc, i: int) -> Dict:
    name = doc.user_data.get(brat.USER_DATA_KEY, {}).get("name") or f"doc{i:06d}"
    return {"id": name, "text": doc.text, "entities": entity_rows(doc)}


def input_format(path: Path, encoding: str) -> str:
    """Input to label: a folder holding .txt files is read as BRAT (raw texts
    with or without .ann), and so is a raw-text .txt file; anything else by
    its name."""
    if (path.is_dir() and any(path.rglob("*.txt"))) or _raw_text_file(path, encoding):
        return "brat"
    return infer_format(path, None, reading=True)


def _raw_text_file(path: Path, encoding: str) -> bool:
    """A .txt file that is not CoNLL (whose token lines do not end in a tag)."""
    return path.is_file() and path.suffix.lower() == ".txt" and not conll.looks_tagged(path, encoding)


def without_ents(docs: Iterable[Doc], dropped: Optional[List[int]] = None) -> Iterable[Doc]:
    """Docs to predict on: their entities and BRAT annotation lines dropped
    (the lines other than entities refer to the entities or to each other;
    the input keeps them), counted in dropped[0]."""
    for doc in docs:
        doc.set_ents([], default="missing")
        meta = doc.user_data.get(brat.USER_DATA_KEY)
        if meta:
            meta["has_ann"] = True  # predictions always get an .ann, even with no entity
            if dropped is not None:
                dropped[0] += _other_ann_lines(meta)
            meta["ann"], meta["entity_lines"] = [], {}
        yield doc


def progress_bar(items, desc: str, total: Optional[int] = None):
    """A progress bar on a terminal for long work; silent otherwise."""
    from tqdm import tqdm

    total = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
    return tqdm(items, desc=desc, total=total, disable=not sys.stderr.isatty() or (total or 0) < 50,
                leave=False, unit="doc")
