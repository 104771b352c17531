"""Output of the record pipeline: one shard per input partition, written to a
temporary name and renamed into place, so that a shard that exists is a
complete one. A rerun skips the partitions whose shard exists.

    OUTPUT/_plan.json                  the partition plan (reused by a rerun)
    OUTPUT/<partition>.jsonl|.parquet  one row per document
    OUTPUT/<partition>.errors.jsonl    rows that could not be labelled, by id
                                       (written before the shard, when any)

BRAT output writes NAME.txt + NAME.ann per document instead, and a marker
`OUTPUT/.done/<partition>.json` (the list of files) once a partition is whole
(the plan goes to `OUTPUT/.done/_plan.json`, out of BRAT's way).
A single .jsonl or .parquet file is written at the end, in plan order.
"""
import base64
import datetime
import decimal
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from .columns import arrow_type, is_column_type
from .errors import FormatError, counted
from .formats.brat import entity_line, note_line, safe_name, write_annotation_conf
from .records import Partition

FORMATS = ("jsonl", "parquet", "brat")
PLAN_FILE = "_plan.json"


def jsonl_bytes(rows: Iterable[Dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":"), default=_json_default) + "\n"
                   for r in rows).encode("utf-8")


def _json_default(value: Any):
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return str(value)
    return str(value)


def parquet_table(rows: List[Dict], types: Optional[Dict[str, str]] = None):
    """An Arrow table of output rows: entities with a fixed type; the other
    columns with `types` (the plan's column_types, so that every shard of a
    job has the same columns and types, rows or not), else as Arrow infers
    them. JSON values of mixed types are written as JSON strings."""
    import pyarrow as pa

    entity = pa.struct([("start", pa.int64()), ("end", pa.int64()), ("label", pa.string()),
                        ("text", pa.string()), ("score", pa.float64())])
    keys = {"id": None, "text": None, "entities": None, **dict.fromkeys(types or {})}
    for row in rows:
        keys.update(dict.fromkeys(row))
    columns = {}
    for key in keys:
        values = [row.get(key) for row in rows]
        kind = (types or {}).get(key)
        if key == "entities":
            columns[key] = pa.array(values, type=pa.list_(entity))
        elif key == "text":
            columns[key] = pa.array(values, type=pa.string())
        elif kind is not None and kind != "json":
            columns[key] = pa.array(values, type=arrow_type(kind))
        else:
            inferred = _inferred(values) if kind is None else None
            columns[key] = inferred if inferred is not None else pa.array(
                [None if v is None else json.dumps(v, default=_json_default) for v in values], type=pa.string())
    return pa.table(columns)


def _inferred(values: List):
    """The values as Arrow infers them, or None where they hold mixed types."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """write(tmp) then rename tmp to path: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def shard_bytes(rows: List[Dict], fmt: str, types: Optional[Dict[str, str]] = None) -> bytes:
    """The bytes of a shard file of these rows: the one encoder of both
    engines (so their shards are the same bytes). types: Parquet column
    types (parquet_table)."""
    if fmt == "jsonl":
        return jsonl_bytes(rows)
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = pa.BufferOutputStream()
    pq.write_table(parquet_table(rows, types), buffer)
    return buffer.getvalue().to_pybytes()


def encode_shard(part: Partition, rows: List[Dict], errors: List[Dict], fmt: str) -> Dict:
    """A partition's shard and errors file as bytes, with its counts: what a
    worker sends when the driver only has to put files in place."""
    return {"shard": shard_bytes(rows, fmt, part.columns),
            "errors": jsonl_bytes({"partition": part.name, **e} for e in errors) if errors else b"",
            "documents": len(rows), "entities": sum(len(r["entities"]) for r in rows), "n_errors": len(errors)}


def write_rows(path: Path, rows: List[Dict], fmt: str, types: Optional[Dict[str, str]] = None) -> None:
    data = shard_bytes(rows, fmt, types)
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


class Sink:
    """Where the rows of each partition go; a partition already written is
    ignored (a retried task delivering it twice writes nothing). A sink that
    `encodes` takes shards encoded by the workers (encode_shard) as well."""

    encodes = False

    def __init__(self, path: Path, fmt: str):
        self.path = Path(path)
        self.fmt = fmt
        self.written = {"partitions": 0, "documents": 0, "entities": 0, "errors": 0, "repeats_ignored": 0}
        self._seen: set = set()

    def plan(self, key: Dict, make: Callable[[], List[Partition]]) -> List[Partition]:
        return make()

    def done(self, name: str) -> bool:
        return name in self._seen

    def write(self, part: Partition, rows: List[Dict], errors: List[Dict]) -> bool:
        if self.encodes:
            return self.write_encoded(part, encode_shard(part, rows, errors, self.fmt))
        entities = sum(len(r["entities"]) for r in rows)
        return self._accept(part, lambda: self._write(part, rows, [{"partition": part.name, **e} for e in errors]),
                            len(rows), entities, len(errors))

    def write_encoded(self, part: Partition, encoded: Dict) -> bool:
        return self._accept(part, lambda: self._write_encoded(part, encoded), encoded["documents"],
                            encoded["entities"], encoded["n_errors"])

    def _accept(self, part: Partition, write: Callable[[], None], documents: int, entities: int, errors: int) -> bool:
        if self.done(part.name):
            self.written["repeats_ignored"] += 1
            return False
        write()
        self._seen.add(part.name)
        for key, n in (("partitions", 1), ("documents", documents), ("entities", entities), ("errors", errors)):
            self.written[key] += n
        return True

    def _write(self, part: Partition, rows: List[Dict], errors: List[Dict]) -> None:
        raise NotImplementedError

    def _write_encoded(self, part: Partition, encoded: Dict) -> None:
        raise NotImplementedError

    def close(self, labels: Iterable[str] = ()) -> Dict:
        return self.written


class ShardFolder(Sink):
    """OUTPUT/<partition>.<fmt>, resumable; with overwrite, a job already
    there (this one or another) is started over."""

    encodes = True

    def __init__(self, path: Path, fmt: str, overwrite: bool = False):
        super().__init__(path, fmt)
        self.overwrite = overwrite
        if self.path.exists() and not self.path.is_dir():
            raise FormatError(self.path, None, "is a file; shards need a folder (or name a .jsonl/.parquet file).")
        for stale in self.path.glob(".*.tmp-*"):  # left by a crash mid-write
            stale.unlink()

    def plan(self, key: Dict, make: Callable[[], List[Partition]]) -> List[Partition]:
        """The plan stored with the shards (a rerun must continue the same
        plan, never mix two), or a new one."""
        stored = self.plan_file()
        if stored.exists() and self.overwrite:
            self._remove_job(stored)
        if stored.exists():
            saved_key, parts = _read_plan(stored)
            if saved_key != key:
                changed = sorted(k for k in set(key) | set(saved_key) if key.get(k) != saved_key.get(k))
                raise FormatError(self.path, None, f"holds shards of another job (changed: {', '.join(changed)}). "
                                  "Write to a new folder, or pass --overwrite to start over.")
            return parts
        parts = make()
        columns = parts[0].columns if parts else {}  # the same in every partition: stored once
        data = json.dumps({"key": key, "columns": columns,
                           "partitions": [_without_columns(p.to_dict()) for p in parts]}).encode("utf-8")
        write_atomic(stored, lambda tmp: tmp.write_bytes(data))
        return parts

    def plan_file(self) -> Path:
        """Where the plan is kept: beside the shards (or the marks of
        partitions done)."""
        return self.shard(PLAN_FILE).with_name(PLAN_FILE)

    def _remove_job(self, stored: Path) -> None:
        """The files an earlier job wrote here (its shards or, in a BRAT
        folder, its marks of the partitions done; its errors files; its plan),
        nothing else."""
        names = [p.name for p in _read_plan(stored)[1]]
        inside = self.path.resolve()
        for name in names:
            for path in (self.shard(name), self.path / f"{name}.errors.jsonl"):
                if path.is_file() and path.resolve().is_relative_to(inside):
                    path.unlink()
        stored.unlink()

    def shard(self, name: str) -> Path:
        return self.path / f"{name}.{self.fmt}"

    def done(self, name: str) -> bool:
        return name in self._seen or self.shard(name).exists()

    def _write_encoded(self, part: Partition, encoded: Dict) -> None:
        if encoded["errors"]:  # before the shard: a shard that exists has its errors file
            write_atomic(self.path / f"{part.name}.errors.jsonl", lambda tmp: tmp.write_bytes(encoded["errors"]))
        write_atomic(self.shard(part.name), lambda tmp: tmp.write_bytes(encoded["shard"]))


class BratFolder(ShardFolder):
    """NAME.txt + NAME.ann per document (NAME: `brat_name` of the id), a
    marker per partition, annotation.conf at the end. A job starts only in a
    folder without BRAT documents (they may hold annotations) unless
    overwrite; its reruns continue it."""

    encodes = False

    def __init__(self, path: Path, encoding: str = "utf-8", overwrite: bool = False, score_notes: bool = False):
        super().__init__(path, "brat", overwrite)
        self.encoding = encoding
        self.score_notes = score_notes
        self.labels: set = set()

    def shard(self, name: str) -> Path:
        return self.path / ".done" / f"{name}.json"

    def plan(self, key: Dict, make: Callable[[], List[Partition]]) -> List[Partition]:
        if not self.overwrite and not self.plan_file().exists() and self.path.is_dir():
            found = [p for p in self.path.rglob("*") if p.suffix in (".ann", ".txt") and ".done" not in p.parts]
            if found:
                raise FormatError(found[0], None, f"exists ({counted(len(found), 'file')} .ann/.txt in the output "
                                  "folder): it may hold annotations. Write to a new folder, or pass --overwrite.")
        return super().plan(key, make)

    def _write(self, part: Partition, rows: List[Dict], errors: List[Dict]) -> None:
        if errors:
            write_rows(self.path / f"{part.name}.errors.jsonl", errors, "jsonl")
        names = set()
        for row in rows:
            name = brat_name(str(row["id"]))  # ids are unique (a repeated one is an error row), and so are these
            names.add(name)
            txt = self.path / f"{name}.txt"
            txt.parent.mkdir(parents=True, exist_ok=True)
            txt.write_bytes(row["text"].encode(self.encoding))
            txt.with_suffix(".ann").write_bytes("".join(ann_lines(row, self.score_notes)).encode(self.encoding))
            self.labels.update(e["label"] for e in row["entities"])
        data = json.dumps(sorted(names)).encode("utf-8")
        write_atomic(self.shard(part.name), lambda tmp: tmp.write_bytes(data))

    def close(self, labels: Iterable[str] = ()) -> Dict:
        self.path.mkdir(parents=True, exist_ok=True)
        write_annotation_conf(self.path, set(labels) | self.labels)
        return self.written


def _read_plan(path: Path) -> Tuple[Dict, List[Partition]]:
    """The key and partitions of a plan file as this tool writes it (the
    output's column types once, or in every partition as before), or a
    FormatError naming it."""
    try:
        saved = json.loads(path.read_bytes())
        columns = saved.get("columns")  # None in a plan of the format before
        if not (isinstance(saved["key"], dict) and isinstance(saved["partitions"], list)
                and (columns is None or isinstance(columns, dict) and all(isinstance(c, str) for c in columns))):
            raise ValueError
        parts = [Partition.from_dict(p) for p in saved["partitions"]]
        for part in parts:
            part.columns = part.columns if columns is None else columns
        if not all(map(is_column_type, {v for part in parts for v in part.columns.values()})):
            raise ValueError
    except OSError as err:
        raise FormatError(path, None, f"cannot be read ({err.strerror or err}): it is the plan of the job in this "
                                      "folder; write to a new folder, or mend its permissions.") from None
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        raise FormatError(path, None, "is not a plan of predict's (damaged, or another tool's file), so the job it "
                                      "belongs to is unknown: write to a new folder, or empty this one by hand.") from None
    return saved["key"], parts


def _without_columns(part: Dict) -> Dict:
    part.pop("columns")
    return part


def refuse_existing(path: Path, overwrite: bool) -> None:
    """A FormatError if an output file exists and may not be replaced."""
    if path.exists() and not overwrite:
        raise FormatError(path, None, "exists: write to a new file, or pass --overwrite to replace it.")


def errors_file(path: Path) -> Path:
    """Where the rows a single output file could not hold are listed."""
    return path.with_name(path.name.rsplit(".", 1)[0] + ".errors.jsonl")


MAX_NAME_BYTES = 200  # of a file name, under the 255 of most file systems, with room for the suffix
MAX_PATH_BYTES = 1000  # of a name with folders, well under the 4,096 of a path on Linux


def brat_name(doc_id: str) -> str:
    """The file name (a relative path without suffix) of a document: its id,
    or where the id is not a safe name as it is, the safe name plus a hash of
    the id, so that two ids never share a file ("a b" and "a_b" would); a
    part of the name too long for a file name is cut before the hash, and a
    name of too many folders keeps its last part only."""
    name = safe_name(doc_id)
    parts = name.split("/")
    if name == doc_id and all(len(p.encode("utf-8")) <= MAX_NAME_BYTES for p in parts) and \
            len(name.encode("utf-8")) <= MAX_PATH_BYTES:
        return name
    if len(name.encode("utf-8")) > MAX_PATH_BYTES:  # too deep: the last part alone
        parts = parts[-1:]
    parts[-1] = parts[-1].encode("utf-8")[: MAX_NAME_BYTES - 9].decode("utf-8", "ignore")
    parts[:-1] = [p.encode("utf-8")[:MAX_NAME_BYTES].decode("utf-8", "ignore") for p in parts[:-1]]
    digest = hashlib.sha1(doc_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{'/'.join(parts)}-{digest}"


def ann_lines(row: Dict, score_notes: bool = False) -> List[str]:
    """BRAT T-lines of a row's entities, and with score_notes a note with each
    one's probability, as predict writes them for documents."""
    lines, notes = [], []
    for i, e in enumerate(row["entities"], start=1):
        lines.append(entity_line(i, e["label"], e["start"], e["end"], e["text"]))
        if score_notes and e.get("score") is not None:
            notes.append(note_line(len(notes) + 1, i, e["score"]))
    return lines + notes


class SingleFile(Sink):
    """One .jsonl or .parquet file, written whole at the end in plan order
    (errors beside it, as NAME.errors.jsonl); for jobs that fit in memory."""

    def __init__(self, path: Path, fmt: str, overwrite: bool = False):
        super().__init__(path, fmt)
        self._parts: Dict[str, tuple] = {}
        self._order: List[str] = []
        self._types: Optional[Dict[str, str]] = None
        self.errors_path = errors_file(self.path)
        for path in (self.path, self.errors_path):
            refuse_existing(path, overwrite)

    def plan(self, key: Dict, make: Callable[[], List[Partition]]) -> List[Partition]:
        parts = make()
        self._order = [p.name for p in parts]
        self._types = parts[0].columns if parts else None
        return parts

    def _write(self, part: Partition, rows: List[Dict], errors: List[Dict]) -> None:
        self._parts[part.name] = (rows, errors)

    def close(self, labels: Iterable[str] = ()) -> Dict:
        done = [self._parts[name] for name in self._order if name in self._parts]
        write_rows(self.path, [r for rows, _ in done for r in rows], self.fmt, self._types)
        errors = [e for _, errs in done for e in errs]
        if errors:
            write_rows(self.errors_path, errors, "jsonl")
        elif self.errors_path.exists():  # an earlier run's, which --overwrite allowed to replace
            self.errors_path.unlink()
        return self.written


def open_sink(path: Path, fmt: str, encoding: str = "utf-8", overwrite: bool = False,
              score_notes: bool = False) -> Sink:
    """The sink of an output path. A single file (and its errors file beside
    it) or a folder of BRAT documents is replaced only with overwrite; a shard
    folder is resumed by a rerun of the same job, or with overwrite started
    over."""
    if fmt not in FORMATS:
        raise FormatError(path, None, f"unknown output format {fmt!r}: use one of {', '.join(FORMATS)}.")
    if fmt == "brat":
        return BratFolder(path, encoding, overwrite, score_notes)
    if path.suffix.lower() == f".{fmt}":
        return SingleFile(path, fmt, overwrite)
    return ShardFolder(path, fmt, overwrite)


def read_shards(path: Path) -> List[Dict]:
    """Every row of a shard folder (or single file), for tests and users."""
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix in (".jsonl", ".parquet")
                                                 and not p.name.endswith(".errors.jsonl") and not p.name.startswith("."))
    rows: List[Dict] = []
    for f in files:
        if f.suffix == ".parquet":
            import pyarrow.parquet as pq

            rows.extend(pq.read_table(f).to_pylist())
        else:
            rows.extend(json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line)
    return rows

