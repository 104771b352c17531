"""Documents as records, for prediction at scale: the input (a folder of .txt
files, JSONL or Parquet files) cut into a deterministic *partition plan*, the
records of a partition (id, text, pass-through columns, or an error), and the
output row of a labelled doc. Both engines (one process, Ray) use exactly
these functions, so they write the same rows.

A partition is named after its input and its first row (`news-00001000`:
rows 1000.. of news.jsonl); the name names its output shard, so a rerun finds
the shards already written and skips them.
"""
import base64
import hashlib
import json
from array import array
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple

from spacy.tokens import Doc

from .errors import UTF8_BOM, FormatError, utf8_bom
from .formats.brat import safe_name

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
        data = dict(data)
        data["duplicates"] = {int(k): v for k, v in data.get("duplicates", {}).items()}
        return cls(**data)


class Record(NamedTuple):
    """One input row: text and pass-through columns, or why it cannot be labelled."""
    index: int  # row within the source
    id: Any
    text: Optional[str]
    extra: Dict[str, Any]
    error: Optional[str] = None


# the plan ------------------------------------------------------------------

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


def fingerprint(path: Path, kind: str) -> List:
    """What a rerun compares to tell whether the input changed."""
    if kind == "txt":
        files = sources(path, "txt")
        return [len(files), sum(p.stat().st_size for p in files)]
    return [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in sources(path, kind)]


def model_fingerprint(model: str) -> Any:
    """What a rerun compares to tell whether the model changed (retrained
    into the same folder, or another version of a package installed)."""
    path = Path(model)
    if path.exists():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return [[p.relative_to(path).as_posix(), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    from spacy.util import get_package_version

    return get_package_version(model)


def plan(path: Path, options: Options) -> List[Partition]:
    """The partitions of an input, in a fixed order; rows whose id occurred
    earlier (in this order) are marked as duplicates."""
    if not path.exists():
        raise FormatError(path, None, "no such file or folder.")
    kind = input_kind(path) or ("txt" if path.suffix.lower() == ".txt" else None)
    if kind is None:
        raise FormatError(path, None, "expected a folder of .txt files, a .jsonl file or a .parquet file.")
    if options.partition_size < 1:
        raise FormatError(path, None, "--partition-size must be at least 1.")
    if kind == "txt":
        parts = _plan_texts(path, options.partition_size)
        for part in parts:
            part.columns = {"id": "string"}
        return parts
    planner = _plan_jsonl if kind == "jsonl" else _plan_parquet
    kinds: Dict[str, set] = {"id": set()}
    by_source = [planner(src, _base_name(src, path), options, kinds) for src in sources(path, kind)]
    parts = [part for new, _ in by_source for part in new]
    names = [p.name for p in parts]
    if len(set(names)) < len(names):
        raise FormatError(path, None, "two input files give the same partition names; rename one of them.")
    _mark_duplicates(by_source, options)
    columns = column_types(kinds)
    for part in parts:
        part.columns = columns
    return parts


def _base_name(src: Path, root: Path) -> str:
    rel = src.relative_to(root) if root.is_dir() else Path(src.name)
    return safe_name(PurePosixPath(rel.as_posix()).with_suffix("").as_posix()).replace("/", "__")


def _plan_texts(folder: Path, size: int) -> List[Partition]:
    files = [p.relative_to(folder).as_posix() for p in sources(folder, "txt")] if folder.is_dir() else [folder.name]
    root = folder if folder.is_dir() else folder.parent
    base = safe_name(folder.stem if folder.is_file() else folder.resolve().name)
    return [Partition(f"{base}-{i:08d}", "txt", str(root), i, min(i + size, len(files)), files=files[i : i + size])
            for i in range(0, len(files), size)]


def _plan_jsonl(src: Path, base: str, options: Options, kinds: Dict[str, set]) -> Tuple[List[Partition], array]:
    """One pass over the file: the byte offset of every partition's first line,
    a 64-bit hash of every row's id (0 where there is no readable id), and
    the kinds of value of every output column (into `kinds`)."""
    _check_jsonl_bytes(src, options)
    size = options.partition_size
    parts: List[Partition] = []
    hashes = array("Q")
    offset = 0
    column = _TextColumn(src, options)
    with src.open("rb") as f:
        for n, line in enumerate(f):
            if n % size == 0:
                parts.append(Partition(f"{base}-{n:08d}", "jsonl", str(src), n, n + size, offset=offset))
            offset += len(line)
            row = _jsonl_row(_without_bom(line, n, options), options.encoding)
            hashes.append(_id_hash(row.get(options.id_column) if row is not None else None, options))
            column.see(row)
            if row is not None:
                _see_kinds(row, options, kinds)
    column.check()
    if parts:
        parts[-1].stop = len(hashes)
    return parts, hashes


UTF16_32_BOMS = (b"\xff\xfe", b"\xfe\xff")  # the first two bytes of UTF-16 (and UTF-32-LE) byte order marks


def _check_jsonl_bytes(src: Path, options: Options) -> None:
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


class _TextColumn:
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


def _without_bom(line: bytes, n: int, options: Options) -> bytes:
    """The first line of a UTF-8 file without its byte order mark."""
    if n == 0 and utf8_bom(line, options.encoding):
        return line[len(UTF8_BOM):]
    return line


def _jsonl_row(line: bytes, encoding: str) -> Optional[Dict]:
    """A line's JSON object, read as the partition's reader reads it; None
    for a bad line."""
    try:
        row = json.loads(line.decode(encoding))
    except ValueError:  # UnicodeDecodeError too
        return None
    return row if isinstance(row, dict) else None


def _plan_parquet(src: Path, base: str, options: Options, kinds: Dict[str, set]) -> Tuple[List[Partition], array]:
    meta = _parquet_with_text(src, options)
    schema = meta.schema_arrow
    names = schema.names
    n_rows = meta.metadata.num_rows
    hashes = array("Q")
    if options.id_column in names:
        for batch in meta.iter_batches(columns=[options.id_column], batch_size=65536):
            ids = batch.column(0).to_pylist()
            hashes.extend(_id_hash(v, options) for v in ids)
            kinds["id"].update(_id_kind(v) for v in ids)
    elif n_rows:
        kinds["id"].add("str")  # every row is named by file and row
    row = dict.fromkeys(names)
    for name in names:
        if name not in (options.id_column, options.text_column):
            kinds.setdefault(_extra_key(name, row), set()).add(_arrow_kind(schema.field(name).type))
    size = options.partition_size
    parts = [Partition(f"{base}-{i:08d}", "parquet", str(src), i, min(i + size, n_rows)) for i in range(0, n_rows, size)]
    return parts, hashes


def _parquet_with_text(src: Path, options: Options):
    """The ParquetFile, or a FormatError if it has no text column."""
    meta = _parquet_file(src)
    names = meta.schema_arrow.names
    if options.text_column not in names:
        raise FormatError(src, None, f"no column {options.text_column!r} (columns: {', '.join(names)}); "
                                     "pass the text column with --text-column.")
    return meta


def _kind(value) -> str:
    """The kind of a JSON value, for the column types of Parquet output."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -2**63 <= value < 2**63 else "json"
    if isinstance(value, float):
        return "float"
    return "str" if isinstance(value, str) else "json"


def _id_kind(doc_id) -> str:
    return "str" if doc_id is None else _kind(doc_id)  # a row without an id is named by file and line


def _see_kinds(row: Dict, options: Options, kinds: Dict[str, set]) -> None:
    kinds["id"].add(_id_kind(row.get(options.id_column)))
    for key, value in row.items():
        if key not in (options.id_column, options.text_column):
            kinds.setdefault(_extra_key(key, row), set()).add(_kind(value))


def _arrow_kind(arrow_type) -> str:
    """A Parquet input column's kind: a JSON kind for the types JSON has,
    else the Arrow type itself ("arrow:" and its schema bytes), kept."""
    import pyarrow as pa

    is_int64_or_less = lambda t: pa.types.is_integer(t) and not pa.types.is_uint64(t)  # noqa: E731
    for test, kind in ((pa.types.is_boolean, "bool"), (is_int64_or_less, "int"), (pa.types.is_floating, "float"),
                       (pa.types.is_string, "str"), (pa.types.is_large_string, "str"), (pa.types.is_null, "none")):
        if test(arrow_type):
            return kind
    schema = pa.schema([pa.field("column", arrow_type)]).serialize().to_pybytes()
    return "arrow:" + base64.b64encode(schema).decode("ascii")


def arrow_type(column_type: str):
    """The Arrow type of a column_types entry other than json."""
    import pyarrow as pa

    if column_type.startswith("arrow:"):  # as _arrow_kind wrote it
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(column_type[len("arrow:"):]))).field(0).type
    return {"int64": pa.int64, "double": pa.float64, "string": pa.string, "bool": pa.bool_, "null": pa.null}[column_type]()


def column_types(kinds: Dict[str, set]) -> Dict[str, str]:
    """One Parquet type per output column, whatever rows a shard holds:
    int64, double, string, bool, null (no value anywhere), a Parquet input's
    own type ("arrow:..."), or json (mixed or nested values, as JSON text)."""
    types = {}
    for column, seen in kinds.items():
        seen = seen - {"none"}
        if len(seen) == 1 and next(iter(seen)).startswith("arrow:"):
            types[column] = next(iter(seen))
        elif not seen:
            types[column] = "null"
        elif seen <= {"int", "float"}:
            types[column] = "int64" if seen == {"int"} else "double"
        elif len(seen) == 1 and seen < {"str", "bool"}:
            types[column] = "string" if seen == {"str"} else "bool"
        else:
            types[column] = "json"
    return types


def _id_hash(value, options: Options) -> int:
    if value is None:
        return 0
    digest = hashlib.blake2b(repr(id_key(value, options)).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


def id_key(value, options: Options) -> Tuple[str, Any]:
    """What two ids are compared by: type and value (a list or object id by
    its JSON text), or with ids_as_text the text of the id alone."""
    if options.ids_as_text:
        return ("str", str(value))
    if isinstance(value, (list, dict)):
        return (type(value).__name__, json.dumps(value, sort_keys=True, default=str))
    return (type(value).__name__, value)


def _mark_duplicates(by_source: List[Tuple[List[Partition], array]], options: Options) -> None:
    """Mark every row whose id occurred earlier. Ids are compared by a 64-bit
    hash, 8 bytes a row; only the partitions holding a repeated hash are read
    again, to compare their ids exactly (a hash collision is no duplicate)."""
    import numpy

    arrays = [numpy.frombuffer(h, dtype=numpy.uint64) if len(h) else numpy.zeros(0, numpy.uint64)
              for _, h in by_source]
    flat = numpy.concatenate(arrays) if arrays else numpy.zeros(0, numpy.uint64)
    values, counts = numpy.unique(flat[flat != 0], return_counts=True)
    repeated_array = values[counts > 1]
    if not len(repeated_array):
        return
    repeated = set(repeated_array.tolist())
    first: Dict[Any, str] = {}
    candidates = [part for (parts, _), hashes in zip(by_source, arrays) for part in parts
                  if numpy.isin(hashes[part.start : part.stop], repeated_array).any()]
    for part in candidates:
        for record in read_partition(part, options, check_duplicates=False):
            if record.error or _id_hash(record.id, options) not in repeated:
                continue
            key = id_key(record.id, options)
            if key in first:
                part.duplicates[record.index] = first[key]
            else:
                first[key] = part.name


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
    _check_jsonl_bytes(src, options)
    column = _TextColumn(src, options)
    with src.open("rb") as f:
        for i, line in enumerate(f):
            if not column.found:  # most often the first row tells
                column.see(_jsonl_row(_without_bom(line, i, options), options.encoding))
            yield _jsonl_record(i, line, options, src.name)
    column.check()


def _stream_parquet(src: Path, options: Options) -> Iterator[Record]:
    i = 0
    for batch in _parquet_with_text(src, options).iter_batches(batch_size=options.partition_size):
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


def _jsonl_record(i: int, line: bytes, options: Options, stem: str) -> Record:
    """Line `i` (from 0) of the JSONL file named `stem`, as a record."""
    line = _without_bom(line, i, options)
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
    extra = {_extra_key(k, row): v for k, v in row.items() if k not in (options.id_column, options.text_column)}
    if text is not None and not isinstance(text, str):
        return Record(i, doc_id, None, extra, f"{options.text_column!r} is not a string")
    return Record(i, doc_id, text, extra, _no_text(text) or _not_unicode(text))


def _extra_key(key: str, row: Dict) -> str:
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

    pq = _pyarrow_parquet()
    try:
        return pq.ParquetFile(path)
    except (pyarrow.ArrowException, OSError) as err:
        raise FormatError(path, None, f"not a readable Parquet file ({type(err).__name__}: {err}).") from None


def _pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise FormatError("pyarrow", None, "Parquet needs pyarrow: pip install 'spacy-bilstm-crf[ray]'") from None
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
    scores = entity_scores(doc)
    entities = [{"start": e.start_char, "end": e.end_char, "label": e.label_, "text": e.text,
                 "score": scores.get((e.start_char, e.end_char, e.label_))} for e in doc.ents]
    return {"id": record.id, "text": record.text, "entities": entities, **record.extra}


def entity_scores(doc: Doc) -> Dict[Tuple[int, int, str], float]:
    """Scores by (start_char, end_char, label) from the span groups that carry
    them in attrs["scores"], aligned with their spans (spaCy's spancat
    convention); the first group that scores a span wins."""
    found: Dict[Tuple[int, int, str], float] = {}
    for group in doc.spans.values():
        values = group.attrs.get("scores")
        if values is None:
            continue
        for span, score in zip(group, values):
            found.setdefault((span.start_char, span.end_char, span.label_), float(score))
    return found


def labelled_rows(rows: Iterable[Dict]) -> int:
    return sum(len(r["entities"]) for r in rows)
