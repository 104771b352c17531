"""BRAT standoff (NAME.txt + NAME.ann) <-> Docs, losslessly.

Offsets count characters of the text exactly as stored (a CRLF is two
characters, a byte order mark is one), as BRAT's server does. Tokens are split
wherever an entity boundary falls inside a token or inside whitespace, so every
entity keeps its exact offsets. Contiguous, non-overlapping entities become
``doc.ents``; where entities overlap, the longest (then the earliest) is kept
(spaCy's `filter_spans` rule), and all contiguous entities go to
``doc.spans["brat"]``. Every line of the ``.ann`` — overlapping and
discontinuous entities, events, relations, attributes, notes, normalizations,
equivalences, even blank lines — is kept in ``doc.user_data["brat"]`` and
written back, so brat -> spacy -> brat gives the same bytes.
"""
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Dict, Iterable, List, Optional, Set, Tuple

from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import filter_spans

from ..errors import FormatError, decode
from .conll import check_labels

USER_DATA_KEY = "brat"
SPANS_KEY = "brat"
ID = r"[A-Za-z#*]\S*"
_TEXTBOUND = re.compile(r"^(T\S+)\t(\S+) (\d+ \d+(?:;\d+ \d+)*)(?:\t(.*))?$", re.S)
# the fewest words in the second field: TYPE:TRIGGER; TYPE Arg1:ID Arg2:ID; TYPE ID (A, M, #); TYPE ID REF; Equiv ID ID
_WORDS = {"E": 1, "R": 3, "A": 2, "M": 2, "N": 3, "#": 2, "*": 3}


@dataclass
class Textbound:
    id: str
    label: str
    fragments: List[Tuple[int, int]]
    text: Optional[str]
    line: int


@dataclass
class BratStats:
    documents: int = 0
    entities: int = 0
    notes: Counter = field(default_factory=Counter)


def find_documents(root: Path) -> List[Path]:
    """The .txt files under a folder (or the file itself), sorted."""
    root = Path(root)
    if root.is_file():
        return [root]
    found = sorted(p for p in root.rglob("*.txt") if p.is_file())
    orphans = [a for a in sorted(root.rglob("*.ann")) if not (a.parent / (a.name[:-4] + ".txt")).exists()]
    if orphans:
        raise FormatError(orphans[0], None, "this .ann file has no .txt beside it "
                          f"({len(orphans)} such file{'s' if len(orphans) > 1 else ''}). "
                          "BRAT needs NAME.txt next to NAME.ann.")
    return found


def read_brat(
    txt_path: Path, nlp: Language, *, root: Optional[Path] = None, encoding: str = "utf-8",
    stats: Optional[BratStats] = None,
) -> Doc:
    """One Doc from NAME.txt and NAME.ann (no .ann: entity annotation missing)."""
    stats = stats if stats is not None else BratStats()
    txt_path = Path(txt_path)
    text = decode(txt_path.read_bytes(), txt_path, encoding, keep_bom=True)
    ann_path = txt_path.parent / (txt_path.name[: -len(".txt")] + ".ann")
    has_ann = ann_path.exists()
    lines = decode(ann_path.read_bytes(), ann_path, encoding, keep_bom=True).splitlines(True) if has_ann else []
    ann_bom = bool(lines) and lines[0].startswith("\ufeff")
    if ann_bom:  # offsets live in the .txt; a BOM on the .ann is only kept for writing back
        lines[0] = lines[0][1:]
    textbounds, triggers = _parse(lines, ann_path, text, stats)
    entities = [t for t in textbounds if t.id not in triggers and len(t.fragments) == 1]
    doc = _tokenize(nlp, text, {t.fragments[0][0] for t in entities}, {t.fragments[0][1] for t in entities})
    spans = [doc.char_span(*t.fragments[0], label=t.label) for t in entities]
    kept = set(map(id, filter_spans(spans)))
    ents = [s for s in spans if id(s) in kept]
    doc.spans[SPANS_KEY] = spans
    doc.set_ents(ents, default="outside" if has_ann else "missing")
    skipped = len(spans) - len(ents)
    if skipped:
        stats.notes["overlapping entities kept out of doc.ents (in doc.spans['brat'])"] += skipped
    discontinuous = sum(len(t.fragments) > 1 and t.id not in triggers for t in textbounds)
    if discontinuous:
        stats.notes["discontinuous entities kept out of doc.ents"] += discontinuous
    if not has_ann:
        stats.notes["texts without .ann (entity annotation missing)"] += 1
    in_ents = {id(s) for s in ents}
    ent_lines = {t.line - 1: [t.fragments[0][0], t.fragments[0][1], t.label]
                 for t, s in zip(entities, spans) if id(s) in in_ents}
    name = txt_path.relative_to(root) if root and Path(root).is_dir() else Path(txt_path.name)
    doc.user_data[USER_DATA_KEY] = {
        "name": PurePosixPath(name).as_posix()[: -len(".txt")],
        "ann": lines,
        "entity_lines": {str(k): v for k, v in ent_lines.items()},
        "encoding": encoding,
        "has_ann": has_ann,
        "ann_bom": ann_bom,
    }
    stats.documents += 1
    stats.entities += len(ents)
    return doc


def _parse(lines: List[str], path: Path, text: str, stats: BratStats) -> Tuple[List[Textbound], Set[str]]:
    """Check every line; return the text-bound annotations and the ids of
    event triggers."""
    textbounds: List[Textbound] = []
    triggers: Set[str] = set()
    seen: Dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        ann_id = line.split("\t", 1)[0]
        if ann_id != "*" and ann_id in seen:
            raise FormatError(path, number, f"annotation id {ann_id} is used again (first on line {seen[ann_id]}).")
        seen[ann_id] = number
        kind = line[0]
        if kind == "T":
            textbounds.append(_textbound(line, path, number, text, stats))
        elif kind in _WORDS:
            fields = line.split("\t")
            if len(fields) < 2 or len(fields[1].split()) < _WORDS[kind]:
                raise FormatError(path, number, f"cannot read this {kind}-line: expected "
                                  "'ID<TAB>TYPE ARGUMENTS...' (BRAT standoff format).")
            if kind == "E":
                trigger = fields[1].split()[0].partition(":")[2]
                triggers.add(trigger)
        else:
            raise FormatError(path, number, f"unknown annotation line starting with {line[:12]!r}: "
                              "BRAT lines start with an id T, E, R, A, M, N, # or *.")
    dangling = _referenced_ids(lines) - set(seen)
    if dangling:
        stats.notes[f"{path}: references to ids with no annotation line ({', '.join(sorted(dangling)[:5])}); kept as they are"] += 1
    return textbounds, triggers


def _textbound(line: str, path, number: int, text: str, stats: BratStats) -> Textbound:
    match = _TEXTBOUND.match(line)
    if not match:
        raise FormatError(path, number, "cannot read this T-line: expected "
                          "'T<n><TAB>TYPE START END[;START END...]<TAB>TEXT'.")
    ann_id, label, offsets, span_text = match.groups()
    fragments = [tuple(int(x) for x in frag.split()) for frag in offsets.split(";")]
    for start, end in fragments:
        if not 0 <= start <= end <= len(text):
            raise FormatError(path, number, f"offsets {start} {end} of {ann_id} are outside the text "
                              f"({len(text)} characters in the .txt) or reversed.")
        if start == end:
            raise FormatError(path, number, f"{ann_id} is empty (offsets {start} {end}). Give each "
                              "fragment at least one character, or delete the line.")
    if span_text is not None:
        covered = " ".join(text[s:e] for s, e in fragments)
        if " ".join(covered.split()) != " ".join(span_text.split()):
            stats.notes[f"{path}:{number}: text of {ann_id} differs from the .txt at its offsets "
                        f"({span_text[:30]!r} vs {covered[:30]!r}); the offsets are kept"] += 1
    return Textbound(ann_id, label, fragments, span_text, number)


def _tokenize(nlp: Language, text: str, starts: Set[int], ends: Set[int]) -> Doc:
    """The tokenizer's tokens, cut wherever an entity starts or ends. A single
    space after a token stays that token's trailing whitespace unless an
    entity starts on it or ends after it; then it becomes a token itself."""
    cuts = starts | ends | {0, len(text)}
    for token in nlp.make_doc(text):
        cuts.update((token.idx, token.idx + len(token)))
    points = sorted(cuts)
    words: List[str] = []
    spaces: List[bool] = []
    for start, end in zip(points, points[1:]):
        piece = text[start:end]
        trailing = piece == " " and words and not spaces[-1] and not words[-1].isspace()
        if trailing and start not in starts and end not in ends:
            spaces[-1] = True
        else:
            words.append(piece)
            spaces.append(False)
    doc = Doc(nlp.vocab, words=words, spaces=spaces)
    assert doc.text == text, "tokenization must keep the text"
    return doc


def write_brat(doc: Doc, out_dir: Path, *, name: Optional[str] = None, scores: Optional[Dict] = None) -> Path:
    """Write NAME.txt and NAME.ann under out_dir; returns the .ann path. A doc
    read from a .txt that had no .ann, and still without entities, gets none.
    scores: {(start_char, end_char, label): probability} of new entities, each
    written as an AnnotatorNotes line ("confidence 0.73") for the annotator.
    A FormatError, before writing, if an entity label holds whitespace."""
    meta = doc.user_data.get(USER_DATA_KEY, {})
    rel = safe_name(name or meta.get("name") or "doc")
    check_labels(doc, out_dir, repr(rel))
    txt_path = Path(out_dir) / f"{rel}.txt"
    txt_path.parent.mkdir(parents=True, exist_ok=True)
    encoding = meta.get("encoding", "utf-8")
    txt_path.write_bytes(doc.text.encode(encoding))
    ann_path = Path(out_dir) / f"{rel}.ann"
    if meta.get("has_ann") is False and not doc.ents:
        return ann_path  # read without an .ann and still unannotated: write none, as it was
    bom = "\ufeff" if meta.get("ann_bom") else ""
    ann_path.write_bytes((bom + "".join(ann_lines(doc, scores))).encode(encoding))
    return ann_path


def ann_lines(doc: Doc, scores: Optional[Dict] = None) -> List[str]:
    """The .ann lines of a doc: its original lines, less entity lines whose
    entity is no longer in doc.ents (unless other lines refer to it), plus a
    T-line for each entity that is new (and a note with its score, if any)."""
    meta = doc.user_data.get(USER_DATA_KEY, {})
    lines: List[str] = list(meta.get("ann", []))
    entity_lines = {int(k): tuple(v) for k, v in meta.get("entity_lines", {}).items()}
    current = {(e.start_char, e.end_char, e.label_) for e in doc.ents}
    referenced = _referenced_ids(line for i, line in enumerate(lines) if i not in entity_lines)
    out, written = [], set()
    for i, line in enumerate(lines):
        ent = entity_lines.get(i)
        if ent is not None and ent not in current and line.split("\t", 1)[0] not in referenced:
            continue
        out.append(line)
        if ent is not None:
            written.add(ent)
    if out and not out[-1].endswith("\n"):
        out[-1] += "\n"
    next_id = 1 + max([int(m.group(1)) for line in lines if (m := re.match(r"T(\d+)\t", line))] or [0])
    next_note = 1 + max([int(m.group(1)) for line in lines if (m := re.match(r"#(\d+)\t", line))] or [0])
    notes = []
    for ent in doc.ents:
        key = (ent.start_char, ent.end_char, ent.label_)
        if key in written:
            continue
        out.append(entity_line(next_id, ent.label_, ent.start_char, ent.end_char, ent.text))
        if scores and key in scores:
            notes.append(note_line(next_note, next_id, scores[key]))
            next_note += 1
        next_id += 1
    return out + notes


def entity_line(entity_id: int, label: str, start: int, end: int, text: str) -> str:
    """A T-line (line breaks in the entity's text become spaces, as BRAT
    shows them)."""
    text = " ".join(text.split()) if "\n" in text or "\r" in text else text
    return f"T{entity_id}\t{label} {start} {end}\t{text}\n"


def note_line(note_id: int, entity_id: int, score: float) -> str:
    """An AnnotatorNotes line giving entity T<entity_id>'s probability."""
    return f"#{note_id}\tAnnotatorNotes T{entity_id}\tconfidence {score:.2f}\n"


def _referenced_ids(lines: Iterable[str]) -> Set[str]:
    """The annotation ids that lines refer to (event arguments, relation
    arguments, targets of attributes, notes and normalizations, equivalences)."""
    ids: Set[str] = set()
    for line in lines:
        fields = line.rstrip("\r\n").split("\t")
        words = fields[1].split() if len(fields) > 1 else []
        kind = line[:1]
        if kind == "E":
            ids.update(w.partition(":")[2] for w in words)
        elif kind == "R":
            ids.update(w.partition(":")[2] for w in words[1:])
        elif kind in "AMN#" and len(words) > 1:
            ids.add(words[1])
        elif kind == "*":
            ids.update(words[1:])
    ids.discard("")
    return ids


def safe_name(name: str) -> str:
    """A relative path that cannot leave the output folder."""
    parts = [p for p in PurePosixPath(str(name).replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
    parts = [re.sub(r"[^\w.\-]", "_", p).lstrip(".") or "_" for p in parts]
    return "/".join(parts) or "doc"


def write_annotation_conf(out_dir: Path, labels: Iterable[str], source: Optional[Path] = None) -> Optional[Path]:
    """An annotation.conf listing the entity labels, unless one exists. With a
    source annotation.conf (the input folder's), its declarations (attributes,
    relations, events, an entity hierarchy) are kept and labels it lacks are
    added to its [entities] section."""
    path = Path(out_dir) / "annotation.conf"
    if path.exists():
        return None
    if source is not None and Path(source).is_file():
        body = _conf_with_labels(Path(source).read_text(encoding="utf-8", errors="replace"), labels)
    else:
        body = "[entities]\n" + "".join(f"{label}\n" for label in sorted(set(labels)))
        body += "\n[relations]\n\n[events]\n\n[attributes]\n"
    path.write_text(body, encoding="utf-8")
    return path


def _conf_with_labels(conf: str, labels: Iterable[str]) -> str:
    """An annotation.conf's text with the labels its [entities] section lacks
    appended to that section (made first if there is none)."""
    lines = conf.splitlines()
    heads = [line.strip() for line in lines]
    section, declared, last = None, set(), None
    for i, head in enumerate(heads):
        if head.startswith("[") and head.endswith("]"):
            section = head
        elif section == "[entities]" and head and not head.startswith("#"):
            declared.add(head.lstrip("!").split()[0])
            last = i
    missing = sorted(set(labels) - declared)
    if not missing:
        return conf if conf.endswith("\n") else conf + "\n"
    if "[entities]" not in heads:
        lines = ["[entities]", *missing, "", *lines]
    else:
        at = last + 1 if last is not None else heads.index("[entities]") + 1
        lines[at:at] = missing
    return "\n".join(lines) + "\n"
