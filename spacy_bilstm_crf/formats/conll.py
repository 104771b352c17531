"""CoNLL-style column files <-> Docs.

A file holds one token per line in whitespace-separated columns, one of which
is the entity tag; a blank line ends a sentence and a ``-DOCSTART-`` line
starts a document. Tags may be IOB1, IOB2, BIOES or BILUO (detected, or given).
Reading keeps what writing needs to give the same lines back: the other
columns, the ``-DOCSTART-`` lines and the tag scheme, in ``doc.user_data``.
"""
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from spacy.tokens import Doc, Span
from spacy.training import biluo_to_iob
from spacy.vocab import Vocab

from ..errors import FormatError, decode, utf8_bom

SCHEMES = ("IOB1", "IOB2", "BIOES", "BILUO")
USER_DATA_KEY = "conll"
PREFIXES = set("BIESLU")
WHITESPACE_ENTITIES = "entities of only whitespace left out"  # a note of write_conll
LINE_END = re.compile(r"\r\n|\r|\n")  # as editors and Python's universal newlines read them
# the other characters str.splitlines() ends a line at: inside a row, they would join two rows silently
VERTICAL = re.compile("[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


@dataclass
class Sentence:
    words: List[str]
    tags: List[str]
    columns: List[List[str]]  # the other columns of each row
    line: int  # first line of the sentence


@dataclass
class ReadStats:
    documents: int = 0
    sentences: int = 0
    tokens: int = 0
    entities: int = 0
    scheme: str = ""
    repairs: Counter = field(default_factory=Counter)
    first_at: Dict[str, str] = field(default_factory=dict)  # repair -> FILE:LINE of its first case


def read_conll(
    path: Path, vocab: Vocab, *, n_sents: int = 10, tag_column: int = -1,
    scheme: Optional[str] = None, encoding: str = "utf-8", stats: Optional[ReadStats] = None,
) -> List[Doc]:
    """Docs of up to n_sents sentences each (0: one doc per -DOCSTART-
    document) with the file's entities, or a FormatError at the first problem."""
    stats = stats if stats is not None else ReadStats()
    data = Path(path).read_bytes()
    text = decode(data, path, encoding)
    lines = LINE_END.split(text)
    documents = list(_documents(lines, path, tag_column))
    first_row = next((line for line in lines if line.strip() and not line.startswith("-DOCSTART-")), "")
    newline = LINE_END.search(text)
    # kept to write the file back as it was: column separator, line ends, a UTF-8 byte order mark
    layout = {"separator": "\t" if "\t" in first_row else " ", "newline": newline.group() if newline else "\n"}
    bom = utf8_bom(data, encoding)
    if not any(sents for _, sents in documents):
        raise FormatError(path, None, "no tokens found: the file is empty or holds only -DOCSTART- lines.")
    all_tags = [s.tags for _, sents in documents for s in sents]
    stats.scheme = scheme or detect_scheme(all_tags)
    docs = []
    for docstart, sents in documents:
        size = n_sents if n_sents > 0 else max(1, len(sents))
        for i in range(0, max(1, len(sents)), size):
            group = sents[i : i + size]
            doc = _make_doc(vocab, group, docstart if i == 0 else None, stats, path, tag_column)
            doc.user_data[USER_DATA_KEY].update(layout, bom=bom and not docs)
            docs.append(doc)
    stats.documents += len(docs)
    return docs


def _documents(lines: List[str], path, tag_column: int) -> Iterator[Tuple[Optional[str], List[Sentence]]]:
    """(-DOCSTART- line or None, sentences) for each document of the file."""
    docstart: Optional[str] = None
    sents: List[Sentence] = []
    current: Optional[Sentence] = None
    rows = [line.split() for line in lines]
    # the width of most rows with a tag (the first such row's, on a tie), so that the odd row is the one named
    widths = Counter(len(cols) for cols in rows if len(cols) > 1 and cols[0] != "-DOCSTART-")
    width = widths.most_common(1)[0][0] if widths else None
    for number, (line, cols) in enumerate(zip(lines, rows), start=1):
        if not cols:
            current = None
            continue
        if cols[0] == "-DOCSTART-":
            if sents or docstart is not None:
                yield docstart, sents
            docstart, sents, current = line, [], None
            continue
        if bad := VERTICAL.search(line.strip()):
            raise FormatError(path, number, f"this row holds {bad.group()!r} (a vertical tab, form feed or other "
                              "line separator), which would join two rows: rows end at a line end (LF, CRLF or "
                              "CR). Replace it with a line end, or remove it.")
        if width is None:
            raise FormatError(path, number, f"found 1 column ({cols[0]!r}) but no tag column: "
                              "expected a token and its entity tag, separated by whitespace.")
        if len(cols) != width:
            first = 1 + next(i for i, c in enumerate(rows) if len(c) == width and c[0] != "-DOCSTART-")
            unseen = sorted({f"U+{ord(c):04X}" for c in line.strip() if c.isspace() and c not in " \t"})
            seen = f" This row holds whitespace that looks like none: {', '.join(unseen)}." if unseen else ""
            raise FormatError(path, number, f"found {len(cols)} columns, expected {width} as on line {first} "
                              "and most rows. Every row needs the same columns (a token containing a space "
                              f"splits into two columns).{seen}")
        if not -len(cols) <= tag_column < len(cols) or tag_column % len(cols) == 0:
            raise FormatError(path, number, f"there is no tag column {tag_column} in {len(cols)} columns "
                              "(column 0 holds the token). Pass --tag-column.")
        tag = cols[tag_column]
        _check_tag(tag, path, number)
        if current is None:
            current = Sentence([], [], [], number)
            sents.append(current)
        rest = cols[:]
        del rest[tag_column]
        current.words.append(cols[0])
        current.tags.append(tag)
        current.columns.append(rest[1:])
    if sents or docstart is not None:
        yield docstart, sents


def is_tag(tag: str) -> bool:
    prefix, dash, label = tag.partition("-")
    return tag == "O" or (bool(dash) and prefix in PREFIXES and bool(label))


def looks_tagged(path: Path, encoding: str = "utf-8", lines: int = 20) -> bool:
    """Whether a file reads as CoNLL (token lines whose last column is a tag)
    rather than raw text: most of its first token lines end in a tag (so that
    a CoNLL file with a typo in a tag is read as CoNLL, and its error named),
    and one of them in O, or the file has a -DOCSTART- line. Raw text whose
    lines end in words shaped like tags ("on the I-95", "a Boeing B-52") has
    neither; a doubt is settled for raw text, which loses nothing read as
    text, where read as CoNLL it would keep one word of each line."""
    checked = tagged = outside = docstart = 0
    with open(path, encoding=encoding, errors="replace") as f:
        for line in f:
            cols = line.split()
            if cols and cols[0] == "-DOCSTART-":
                docstart += 1
            if not cols or cols[0] == "-DOCSTART-":
                continue
            tagged += len(cols) >= 2 and is_tag(cols[-1])
            outside += len(cols) >= 2 and cols[-1] == "O"
            checked += 1
            if checked == lines:
                break
    return 2 * tagged > checked and (outside > 0 or docstart > 0)


def _check_tag(tag: str, path, number: int) -> None:
    if not is_tag(tag):
        raise FormatError(path, number, f"invalid entity tag {tag!r}: expected O or PREFIX-LABEL "
                          "with PREFIX one of B, I, E, S, L, U (IOB1, IOB2, BIOES, BILUO). "
                          "Tags in another column: `convert --tag-column N`; raw text, not CoNLL: "
                          "label it with `predict`.")


def detect_scheme(sentences: Iterable[Sequence[str]]) -> str:
    """The tag scheme a file uses: BIOES or BILUO if it has their prefixes,
    IOB1 if entities start with I- and B- only separates same-type
    neighbours, else IOB2."""
    prefixes = set()
    i_starts = b_needed_only = 0
    b_total = 0
    for tags in sentences:
        prev = "O"
        for tag in tags:
            prefixes.add(tag[0])
            if tag[0] in "IB":
                starts = prev == "O" or prev[2:] != tag[2:] or prev[0] in "ELSU"
                if tag[0] == "I" and starts:
                    i_starts += 1
                if tag[0] == "B":
                    b_total += 1
                    b_needed_only += not starts
            prev = tag
    if prefixes & set("ES"):
        return "BIOES"
    if prefixes & set("LU"):
        return "BILUO"
    if i_starts and b_needed_only == b_total:
        return "IOB1"
    return "IOB2"


def tags_to_spans(tags: Sequence[str], scheme: str,
                  first: Optional[Dict[str, int]] = None) -> Tuple[List[Tuple[int, int, str]], Counter]:
    """Entity (start, end, label) from tags, leniently: an entity is closed
    wherever the tags stop continuing it (conlleval's reading). Returns the
    spans and a count of each repair made; `first` gets the index of the
    first tag of each kind of repair not in it yet."""
    spans: List[Tuple[int, int, str]] = []
    repairs: Counter = Counter()
    first = first if first is not None else {}
    start, label = None, None

    def repaired(kind: str, i: int) -> None:
        repairs[kind] += 1
        first.setdefault(kind, i)

    def close(end):
        nonlocal start, label
        if start is not None:
            spans.append((start, end, label))
        start, label = None, None

    bilou = scheme in ("BIOES", "BILUO")
    for i, tag in enumerate(tags):
        prefix, lab = tag[0], tag[2:]
        continuing = start is not None and lab == label
        if tag == "O":
            if bilou and start is not None:
                repaired("entity not closed by L/E before O: closed there", i)
            close(i)
        elif prefix == "B":
            if bilou and start is not None:
                repaired("entity not closed by L/E before B: closed there", i)
            close(i)
            start, label = i, lab
        elif prefix == "I":
            if not continuing:
                if scheme != "IOB1":
                    what = "O" if start is None else f"another type ({label})"
                    repaired(f"I- after {what}: read as the start of an entity", i)
                close(i)
                start, label = i, lab
        elif prefix in "LE":
            if not continuing:
                repaired(f"{prefix}- without its B-: read as a one-token entity", i)
                close(i)
                start, label = i, lab
            close(i + 1)
        else:  # U, S
            if start is not None:
                repaired(f"entity not closed before {prefix}-: closed there", i)
            close(i)
            spans.append((i, i + 1, lab))
    close(len(tags))
    return spans, repairs


def _make_doc(vocab, sents: List[Sentence], docstart, stats: ReadStats, path, tag_column) -> Doc:
    words = [w for s in sents for w in s.words]
    sent_starts = [i == 0 for s in sents for i in range(len(s.words))]
    doc = Doc(vocab, words=words, sent_starts=sent_starts if words else None)
    ents, offset = [], 0
    for s in sents:
        first: Dict[str, int] = {}
        spans, repairs = tags_to_spans(s.tags, stats.scheme, first)
        stats.repairs.update(repairs)
        for kind, i in first.items():  # a sentence's rows are consecutive lines
            stats.first_at.setdefault(kind, f"{path}:{s.line + i}")
        ents.extend(Span(doc, offset + a, offset + b, label=label) for a, b, label in spans)
        offset += len(s.words)
    doc.set_ents(ents, default="outside")
    doc.user_data[USER_DATA_KEY] = {
        "columns": [c for s in sents for c in s.columns],
        "tag_column": tag_column,
        "docstart": docstart,
        "scheme": stats.scheme,
        "source": f"{Path(path).name}:{sents[0].line}" if sents else Path(path).name,
    }
    stats.sentences += len(sents)
    stats.tokens += len(words)
    stats.entities += len(ents)
    return doc


def doc_tags(doc: Doc, scheme: str, changes: Optional[Counter] = None) -> List[str]:
    """The tags in a scheme (unannotated: O) of the doc's tokens that are not
    whitespace, which CoNLL rows cannot hold: an entity is tagged over its
    other tokens, and one of whitespace only is left out (counted in changes)."""
    kept = {token.i: k for k, token in enumerate(t for t in doc if not t.is_space)}
    biluo = ["O"] * len(kept)
    for ent in doc.ents:
        inside = [kept[i] for i in range(ent.start, ent.end) if i in kept]  # consecutive rows
        if not inside:
            if changes is not None:
                changes[WHITESPACE_ENTITIES] += 1
            continue
        a, b, label = inside[0], inside[-1], ent.label_
        biluo[a : b + 1] = [f"U-{label}"] if a == b else [f"B-{label}", *[f"I-{label}"] * (b - a - 1), f"L-{label}"]
    if scheme == "BILUO":
        return biluo
    if scheme == "BIOES":
        return [{"L": "E", "U": "S"}.get(t[0], t[0]) + t[1:] for t in biluo]
    iob = biluo_to_iob(biluo)
    if scheme == "IOB1":
        return [_iob1(prev, tag) for prev, tag in zip(["O"] + iob[:-1], iob)]
    return iob


def _iob1(prev: str, tag: str) -> str:
    if tag.startswith("B-") and not (prev != "O" and prev[2:] == tag[2:]):
        return "I-" + tag[2:]
    return tag


def check_labels(doc: Doc, path, name: str) -> None:
    """A FormatError (at path, the output) if an entity label of the doc holds
    whitespace: CoNLL and BRAT lines are split at whitespace, so it could not
    be read back."""
    bad = next((e.label_ for e in doc.ents if e.label_.split() != [e.label_]), None)
    if bad is not None:
        raise FormatError(path, None, f"document {name} has the entity label {bad!r}, which holds whitespace "
                          "and so could not be read back. Rename the label (e.g. with '_' for spaces).")


def write_conll(docs: Iterable[Doc], scheme: Optional[str] = None, path="CoNLL output") -> Tuple[str, Counter]:
    """CoNLL text for the docs, in the scheme each doc was read with (or the
    one given, IOB2 by default). Whitespace tokens cannot be written as rows
    and are left out (with entities of only whitespace); tokens containing
    whitespace have it replaced by '_'. Returns the text and a count of such
    changes; a FormatError at path if a label holds whitespace."""
    out: List[str] = []
    changes: Counter = Counter()
    for n, doc in enumerate(docs):
        meta: Dict = doc.user_data.get(USER_DATA_KEY, {})
        lines: List[str] = ["\ufeff"] if n == 0 and meta.get("bom") else []
        if meta.get("docstart"):
            lines.append(meta["docstart"] + "\n\n")
        check_labels(doc, path, f"{n + 1}" + (f" ({meta['source']})" if meta.get("source") else ""))
        tags = iter(doc_tags(doc, scheme or meta.get("scheme") or "IOB2", changes))
        columns = meta.get("columns") if len(meta.get("columns", [])) == len(doc) else None
        tag_column = meta.get("tag_column", -1)
        sents = list(doc.sents) if doc.has_annotation("SENT_START") else [doc[:]]
        for sent in sents:
            rows = []
            for token in sent:
                if token.is_space:
                    changes["whitespace tokens left out"] += 1
                    continue
                word = token.text
                if len(word.split()) != 1:
                    changes["tokens with whitespace inside written with '_'"] += 1
                    word = "_".join(word.split())
                cells = [word] + (list(columns[token.i]) if columns else [])
                tag = next(tags)
                cells.insert(len(cells) + 1 + tag_column if tag_column < 0 else tag_column, tag)
                rows.append(meta.get("separator", " ").join(cells) + "\n")
            if rows:
                lines.append("".join(rows) + "\n")
        out.append("".join(lines).replace("\n", meta.get("newline", "\n")))
    return "".join(out), changes
