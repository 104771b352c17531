"""Documents as records, for prediction at scale: the rows of an input (a
folder of .txt files, JSONL or Parquet files) read as records (id, text,
pass-through columns, or an error), a partition's rows (plan.py cuts the
input into partitions), and the output row of a labelled doc. Both engines
(one process, Ray) use exactly these functions, so they write the same rows.
"""
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple

from spacy.tokens import Doc

from .confidence import entity_rows
from .errors import UTF8_BOM, FormatError, utf8_bom

KINDS = {".txt": "txt", ".jsonl": "jsonl", ".parquet": "parquet"}
RESERVED = ("id", "text", "entities")  # keys of an output row; clashing input columns get an "input_" prefix


@dataclass(frozen=True)
class Options:
    """How records are read: the same for the plan, every worker and a rerun."""
    text_column: str = "text"
    id_column: str = "id"
    partition_size: int = 1000
    encoding: str = "utf-8"
    # compare ids by their text, 1 and "1" the same: for BRAT, where the id names the file
    ids_as_text: bool = False


@dataclass
class Partition:
    """Rows [start, stop) of one input: a source file, or for a folder of
    .txt files the files listed in `files` (relative to `source`)."""
    name: str
    kind: str
    source: str
    start: int
    stop: int
    offset: int = 0  # JSONL: byte offset of line `start`
    files: List[str] = field(default_factory=list)
    duplicates: Dict[int, str] = field(default_factory=dict)  # row -> partition holding the id first
    # output column -> its type in every Parquet shard of the job (column_types), in output order
    columns: Dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> Dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict) -> "Partition":
        """A partition as to_dict wrote it (read back from a plan file); a
        ValueError, TypeError or AttributeError for anything else."""
        data = dict(data)
        data["duplicates"] = {int(k): v for k, v in data.get("duplicates", {}).items()}
        part = cls(**data)
        texts = lambda values: all(isinstance(v, str) for v in values)  # noqa: E731
        if not (texts((part.name, part.source)) and part.kind in KINDS.values()
                and all(type(n) is int and n >= 0 for n in (part.start, part.stop, part.offset))
                and isinstance(part.files, list) and texts(part.files) and texts(part.duplicates.values())
                and isinstance(part.columns, dict) and texts(part.columns) and texts(part.columns.values())):
            raise ValueError(f"not a partition: {data}")
        return part


class Record(NamedTuple):
    """One input row: text and pass-through columns, or why it cannot be labelled."""
    index: int  # row within the source
    id: Any
    text: Optional[str]
    extra: Dict[str, Any]
    error: Optional[str] = None


# inputs and their rows ------------------------------------------------------

def input_kind(path: Path) -> Optional[str]:
    """"txt", "jsonl" or "parquet" for an input file or folder; None for the
    inputs of the document pipeline (BRAT with .ann, CoNLL, DocBin)."""
    if path.is_file():
        return KINDS.get(path.suffix.lower()) if path.suffix.lower() != ".txt" else None
    if path.is_dir():
        for suffix in (".txt", ".jsonl", ".parquet"):
            if any(p.is_file() for p in path.rglob(f"*{suffix}")):
                return KINDS[suffix]
    return None


def sources(path: Path, kind: str) -> List[Path]:
    """The input files, sorted (a file is its own only source)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob(f"*.{kind}") if p.is_file())


UTF16_32_BOMS = (b"\xff\xfe", b"\xfe\xff")  # the first two bytes of UTF-16 (and UTF-32-LE) byte order marks


def check_jsonl_bytes(src: Path, options: Options) -> None:
    """JSONL is split into rows at the byte of a line end, so it must be in
    an encoding where that byte is one: a FormatError for UTF-16 or UTF-32
    (given, or told by a byte order mark or by NUL bytes among the first
    four, where UTF-8 JSON has its opening brace)."""
    try:
        ascii_lines = b"a\nb" in "a\nb".encode(options.encoding)  # utf-8-sig adds a mark, keeps the line end
    except LookupError:
        raise FormatError(src, None, f"unknown encoding {options.encoding!r}.") from None
    with src.open("rb") as f:
        first = f.read(4)  # '{' in UTF-16 or UTF-32 comes with NUL bytes
    marked = first[:2] in UTF16_32_BOMS or first == b"\x00\x00\xfe\xff" or b"\x00" in first
    if marked or not ascii_lines:
        raise FormatError(src, None, "is in UTF-16 or UTF-32; JSON lines must be UTF-8 (or another encoding whose "
                                     "line end is one byte): convert it, e.g. iconv -f UTF-16 -t UTF-8.")


class TextColumn:
    """Whether any row of a JSONL file has the text column: if rows are
    objects and none has it, the column is wrong (pass --text-column), not
    the rows."""

    def __init__(self, src: Path, options: Options):
        self.src, self.name = src, options.text_column
        self.first_keys: Optional[List] = None
        self.found = False

    def see(self, row: Optional[Dict]) -> None:
        if row is not None and not self.found:
            self.found = self.name in row
            self.first_keys = list(row) if self.first_keys is None else self.first_keys

    def check(self) -> None:
        if self.first_keys is not None and not self.found:
            raise FormatError(self.src, None, f"no row has a {self.name!r} field (the first row's fields: "
                                              f"{', '.join(map(str, self.first_keys))}); pass --text-column.")


def without_bom(line: bytes, n: int, options: Options) -> bytes:
    """The first line of a UTF-8 file without its byte order mark."""
    if n == 0 and utf8_bom(line, options.encoding):
        return line[len(UTF8_BOM):]
    return line


def parquet_with_text(src: Path, options: Options):
    """The ParquetFile, or a FormatError if it has no text column."""
    meta = _parquet_file(src)
    names = meta.schema_arrow.names
    if options.text_column not in names:
        raise FormatError(src, None, f"no column {options.text_column!r} (columns: {', '.join(names)}); "
                                     "pass the text column with --text-column.")
    return meta


def id_key(value, options: Options) -> Tuple[str, Any]:
    """What two ids are compared by: type and value (a list or object id by
    its JSON text), or with ids_as_text the text of the id alone."""
    if options.ids_as_text:
        return ("str", str(value))
    if isinstance(value, (list, dict)):
        return (type(value).__name__, json.dumps(value, sort_keys=True, default=str))
    return (type(value).__name__, value)


def stream(path: Path, options: Options) -> Iterator[Record]:
    """The records of a JSONL or Parquet input in plan order, read lazily and
    with no plan, to look at the first rows of a large input: a row whose id
    came earlier is a duplicate, as in the plan, but the ids are kept in
    memory, not hashed."""
    kind = input_kind(path)
    if kind not in ("jsonl", "parquet"):
        raise FormatError(path, None, "expected a .jsonl or .parquet file, or a folder of them.")
    seen = set()
    for src in sources(path, kind):
        for record in _stream_jsonl(src, options) if kind == "jsonl" else _stream_parquet(src, options):
            key = id_key(record.id, options)
            if record.error is None and key in seen:
                record = record._replace(error="duplicate id")
            elif record.error is None:
                seen.add(key)
            yield record


def _stream_jsonl(src: Path, options: Options) -> Iterator[Record]:
    check_jsonl_bytes(src, options)
    column = TextColumn(src, options)
    with src.open("rb") as f:
        for i, line in enumerate(f):
            yield _jsonl_record(i, line, options, src.name, column.see)
    column.check()


def _stream_parquet(src: Path, options: Options) -> Iterator[Record]:
    i = 0
    for batch in parquet_with_text(src, options).iter_batches(batch_size=options.partition_size):
        for row in batch.to_pylist():
            yield _record(i, row, options, f"{src.name}:{i}")
            i += 1


# reading a partition ---------------------------------------------------------

def read_partition(part: Partition, options: Options, *, check_duplicates: bool = True) -> List[Record]:
    """The records of a partition, in row order; bad rows are error records."""
    reader = {"txt": _read_texts, "jsonl": _read_jsonl, "parquet": _read_parquet}[part.kind]
    records = []
    for record in reader(part, options):
        if record.error is None and check_duplicates and record.index in part.duplicates:
            record = record._replace(error=f"duplicate id (first in partition {part.duplicates[record.index]})")
        records.append(record)
    return records


def _read_texts(part: Partition, options: Options) -> Iterator[Record]:
    for i, rel in enumerate(part.files, start=part.start):
        doc_id = rel[: -len(".txt")] if rel.lower().endswith(".txt") else rel
        data = (Path(part.source) / rel).read_bytes()
        text, error = _decode(data, options.encoding)
        yield Record(i, doc_id, text, {}, error or _no_text(text))


def _read_jsonl(part: Partition, options: Options) -> Iterator[Record]:
    stem = Path(part.source).name
    with open(part.source, "rb") as f:
        f.seek(part.offset)
        for i in range(part.start, part.stop):
            yield _jsonl_record(i, f.readline(), options, stem)


def _jsonl_record(i: int, line: bytes, options: Options, stem: str,
                  see: Optional[Callable[[Dict], None]] = None) -> Record:
    """Line `i` (from 0) of the JSONL file named `stem`, as a record; `see`
    is shown the line's JSON object, if it is one."""
    line = without_bom(line, i, options)
    fallback = f"{stem}:{i + 1}"  # file:line, for rows without a readable id
    text, error = _decode(line, options.encoding)
    if error:
        return Record(i, _readable_id(line, options) or fallback, None, {}, error)
    if not text.strip():
        return Record(i, fallback, None, {}, "empty line")
    try:
        row = json.loads(text)
    except ValueError as err:
        return Record(i, fallback, None, {}, f"not valid JSON ({err})")
    if not isinstance(row, dict):
        return Record(i, fallback, None, {}, "not a JSON object")
    if see is not None:
        see(row)
    return _record(i, row, options, fallback)


def _readable_id(line: bytes, options: Options):
    """The id of a line that does not decode, read with the bad bytes replaced."""
    try:
        row = json.loads(line.decode(options.encoding, "replace"))
    except (ValueError, LookupError):
        return None
    doc_id = row.get(options.id_column) if isinstance(row, dict) else None
    return doc_id if isinstance(doc_id, (str, int)) and "\ufffd" not in str(doc_id) else None


def _read_parquet(part: Partition, options: Options) -> Iterator[Record]:
    f = _parquet_file(part.source)
    groups, first = [], 0
    for g in range(f.metadata.num_row_groups):
        n = f.metadata.row_group(g).num_rows
        if first < part.stop and first + n > part.start:
            groups.append((g, first))
        first += n
    if not groups:
        return
    table = _read_row_groups(f, part.source, tuple(g for g, _ in groups))
    table = table.slice(part.start - groups[0][1], part.stop - part.start)
    stem = Path(part.source).name
    for i, row in enumerate(table.to_pylist(), start=part.start):
        yield _record(i, row, options, f"{stem}:{i}")


_LAST_READ: Dict = {}


def _read_row_groups(f, source: str, groups: Tuple[int, ...]):
    """Row groups of a Parquet file, the last ones read kept: the partitions
    of one large row group (pyarrow writes up to a million rows per group)
    come to a worker in order, and then cost one read, not one each."""
    key = (source, Path(source).stat().st_mtime_ns, groups)
    if _LAST_READ.get("key") != key:
        _LAST_READ.clear()
        _LAST_READ.update(key=key, table=f.read_row_groups(list(groups)))
    return _LAST_READ["table"]


def _record(i: int, row: Dict, options: Options, fallback: str) -> Record:
    doc_id = row.get(options.id_column)
    doc_id = fallback if doc_id is None else doc_id
    text = row.get(options.text_column)
    extra = {extra_key(k, row): v for k, v in row.items() if k not in (options.id_column, options.text_column)}
    if text is not None and not isinstance(text, str):
        return Record(i, doc_id, None, extra, f"{options.text_column!r} is not a string")
    return Record(i, doc_id, text, extra, _no_text(text) or _not_unicode(text))


def extra_key(key: str, row: Dict) -> str:
    """A pass-through column's name in the output row: a name the output uses
    itself gets "input_" prefixes until it clashes with no column of the row
    (entities -> input_entities, or input_input_entities if that is taken)."""
    if key not in RESERVED:
        return key
    key = f"input_{key}"
    while key in row or key in RESERVED:
        key = f"input_{key}"
    return key


def _decode(data: bytes, encoding: str) -> Tuple[Optional[str], Optional[str]]:
    try:
        return data.decode(encoding), None
    except UnicodeDecodeError as err:
        return None, f"not {encoding} (byte {data[err.start:err.start + 1]!r} at offset {err.start})"


def _no_text(text: Optional[str]) -> Optional[str]:
    return "no text" if text is None or not text.strip() else None


def _not_unicode(text: str) -> Optional[str]:
    """JSON may hold half of a UTF-16 pair ("\\ud800"), which is no text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return f"not Unicode text (a lone surrogate {text[err.start]!a} at character {err.start})"
    return None


def _parquet_file(path):
    """pyarrow's ParquetFile, or a FormatError naming a file that is not one."""
    import pyarrow

    pq = pyarrow_parquet()
    try:
        return pq.ParquetFile(path)
    except (pyarrow.ArrowException, OSError) as err:
        raise FormatError(path, None, f"not a readable Parquet file ({type(err).__name__}: {err}).") from None


def pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise FormatError("pyarrow", None, "Parquet needs pyarrow: pip install 'spacy-bilstm-crf[parquet]'") from None
    return pq


# labelling and the output row ------------------------------------------------

def annotate(nlp, records: List[Record], *, batch_size: int) -> Tuple[List[Dict], List[Dict]]:
    """Output rows of the good records (labelled with nlp.pipe, in order) and
    error rows of the others. A text longer than nlp.max_length is an error."""
    for k, r in enumerate(records):
        if r.error is None and len(r.text) > nlp.max_length:
            records[k] = r._replace(error=f"text longer than nlp.max_length ({len(r.text)} > {nlp.max_length})")
    good = [r for r in records if r.error is None]
    rows = [output_row(r, doc) for r, doc in zip(good, nlp.pipe((r.text for r in good), batch_size=batch_size))]
    errors = [{"id": r.id, "row": r.index, "error": r.error} for r in records if r.error is not None]
    return rows, errors


def output_row(record: Record, doc: Doc) -> Dict:
    """One document's row: id, text, entities (character offsets, label, text,
    score or None) and the input's other columns."""
    return {"id": record.id, "text": record.text, "entities": entity_rows(doc), **record.extra}


def labelled_rows(rows: Iterable[Dict]) -> int:
    return sum(len(r["entities"]) for r in rows)
