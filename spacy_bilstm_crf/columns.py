"""The column types of predict's Parquet output, one per column for the
whole job, so that every shard has the same columns and types whatever rows
it holds: found from the kinds of value each column holds over the input
(JSON kinds), or from a Parquet input's own schema.
"""
import base64
from typing import Dict

from .records import Options, extra_key


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


def id_kind(doc_id) -> str:
    return "str" if doc_id is None else _kind(doc_id)  # a row without an id is named by file and line


def see_kinds(row: Dict, options: Options, kinds: Dict[str, set]) -> None:
    kinds["id"].add(id_kind(row.get(options.id_column)))
    for key, value in row.items():
        if key not in (options.id_column, options.text_column):
            kinds.setdefault(extra_key(key, row), set()).add(_kind(value))


def arrow_kind(data_type) -> str:
    """A Parquet input column's kind: a JSON kind for the types JSON has,
    else the Arrow type itself ("arrow:" and its schema bytes), kept."""
    import pyarrow as pa

    is_int64_or_less = lambda t: pa.types.is_integer(t) and not pa.types.is_uint64(t)  # noqa: E731
    for test, kind in ((pa.types.is_boolean, "bool"), (is_int64_or_less, "int"), (pa.types.is_floating, "float"),
                       (pa.types.is_string, "str"), (pa.types.is_large_string, "str"), (pa.types.is_null, "none")):
        if test(data_type):
            return kind
    schema = pa.schema([pa.field("column", data_type)]).serialize().to_pybytes()
    return "arrow:" + base64.b64encode(schema).decode("ascii")


def arrow_type(column_type: str):
    """The Arrow type of a column_types entry other than json."""
    import pyarrow as pa

    if column_type.startswith("arrow:"):  # as arrow_kind wrote it
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(column_type[len("arrow:"):]))).field(0).type
    return {"int64": pa.int64, "double": pa.float64, "string": pa.string, "bool": pa.bool_, "null": pa.null}[column_type]()


def is_column_type(value) -> bool:
    """Whether a value read back from a plan file is a column_types entry."""
    if value in ("int64", "double", "string", "bool", "null", "json"):
        return True
    try:
        arrow_type(value)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, ImportError):  # pyarrow's derive from these
        return False
    return True


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
