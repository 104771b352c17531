"""The partition plan of a prediction job: its input cut, in a fixed order,
into partitions of rows, with the rows whose id came earlier marked as
duplicates, the types of the output's columns, and what a rerun compares to
tell whether the input or the model changed.

A partition is named after its input and its first row (`news-00001000`:
rows 1000.. of news.jsonl); the name names its output shard, so a rerun finds
the shards already written and skips them.
"""
import hashlib
import json
from array import array
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Optional, Tuple

from .columns import arrow_kind, column_types, id_kind, see_kinds
from .errors import FormatError
from .formats.brat import safe_name
from .records import (Options, Partition, TextColumn, check_jsonl_bytes, extra_key, id_key, input_kind,
                      parquet_with_text, read_partition, sources, without_bom)


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
    check_jsonl_bytes(src, options)
    size = options.partition_size
    parts: List[Partition] = []
    hashes = array("Q")
    offset = 0
    column = TextColumn(src, options)
    with src.open("rb") as f:
        for n, line in enumerate(f):
            if n % size == 0:
                parts.append(Partition(f"{base}-{n:08d}", "jsonl", str(src), n, n + size, offset=offset))
            offset += len(line)
            row = _jsonl_row(without_bom(line, n, options), options.encoding)
            hashes.append(_id_hash(row.get(options.id_column) if row is not None else None, options))
            column.see(row)
            if row is not None:
                see_kinds(row, options, kinds)
    column.check()
    if parts:
        parts[-1].stop = len(hashes)
    return parts, hashes


def _jsonl_row(line: bytes, encoding: str) -> Optional[Dict]:
    """A line's JSON object, read as the partition's reader reads it; None
    for a bad line."""
    try:
        row = json.loads(line.decode(encoding))
    except ValueError:  # UnicodeDecodeError too
        return None
    return row if isinstance(row, dict) else None


def _plan_parquet(src: Path, base: str, options: Options, kinds: Dict[str, set]) -> Tuple[List[Partition], array]:
    meta = parquet_with_text(src, options)
    schema = meta.schema_arrow
    names = schema.names
    n_rows = meta.metadata.num_rows
    hashes = array("Q")
    if options.id_column in names:
        for batch in meta.iter_batches(columns=[options.id_column], batch_size=65536):
            ids = batch.column(0).to_pylist()
            hashes.extend(_id_hash(v, options) for v in ids)
            kinds["id"].update(id_kind(v) for v in ids)
    elif n_rows:
        kinds["id"].add("str")  # every row is named by file and row
    row = dict.fromkeys(names)
    for name in names:
        if name not in (options.id_column, options.text_column):
            kinds.setdefault(extra_key(name, row), set()).add(arrow_kind(schema.field(name).type))
    size = options.partition_size
    parts = [Partition(f"{base}-{i:08d}", "parquet", str(src), i, min(i + size, n_rows)) for i in range(0, n_rows, size)]
    return parts, hashes


def _id_hash(value, options: Options) -> int:
    if value is None:
        return 0
    digest = hashlib.blake2b(repr(id_key(value, options)).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


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
