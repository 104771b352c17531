"""predict at scale: the partition plan, shards, errors and resume (one
process), and the Ray engine (same shards, a killed actor, a real cluster)."""
import json
import os
import random
import shutil
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import spacy
import torch
from spacy.tokens import SpanGroup

from spacy_bilstm_crf.errors import FormatError
from spacy_bilstm_crf.plan import plan
from spacy_bilstm_crf.records import Options, output_row, read_partition, Record, stream
from spacy_bilstm_crf.shards import read_shards

from .helpers import make_examples, train_small_pipeline

NAMES = ["Shaka Khan", "Angela Merkel", "London", "Berlin", "Paris", "Rome", "The Large-Animal Society"]
TEMPLATES = ["Who is {}?", "I like {} and {}.", "{} flew to {} on Monday.", "{} met in {}."]
N_DOCS = 240


def cli(*args, ok=True, env=None):
    result = subprocess.run([sys.executable, "-m", "spacy_bilstm_crf", *map(str, args)], capture_output=True,
                            text=True, env={**os.environ, **(env or {})})
    output = result.stdout + result.stderr
    assert (result.returncode == 0) == ok, output
    assert "Traceback" not in output
    return output


WATCH_POOL = (
    "import multiprocessing, sys\n"
    "from spacy_bilstm_crf import scale\n"
    "from spacy_bilstm_crf.__main__ import app\n"
    "run_process = scale.run_process\n"
    "def watched(model, parts, deliver, **kwargs):\n"
    "    def seen(part, result):\n"
    "        print('labelling processes:', *sorted(p.pid for p in multiprocessing.active_children()), flush=True)\n"
    "        deliver(part, result)\n"
    "    return run_process(model, parts, seen, **kwargs)\n"
    "scale.run_process = watched\n"
    "app(sys.argv[1:])\n"
)


def pool_pids(*args):
    """Run the CLI; for each partition it delivered, the pids of the child
    processes alive then (the pool's workers)."""
    result = subprocess.run([sys.executable, "-c", WATCH_POOL, *map(str, args)], capture_output=True, text=True)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stdout + result.stderr
    return [tuple(line.split()[2:]) for line in result.stdout.splitlines() if line.startswith("labelling processes:")]


def texts(n, seed=0):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        template = rng.choice(TEMPLATES)
        out.append(" ".join(template.format(*rng.sample(NAMES, template.count("{}"))) for _ in range(rng.randint(1, 3))))
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return train_small_pipeline(tmp_path_factory.mktemp("model") / "pipeline")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The same documents as a .txt folder, a JSONL file and a Parquet file."""
    root = tmp_path_factory.mktemp("corpus")
    docs = [{"id": f"doc{i:04d}", "text": t, "source": f"s{i % 3}"} for i, t in enumerate(texts(N_DOCS))]
    (root / "texts").mkdir()
    for d in docs:
        (root / "texts" / f"{d['id']}.txt").write_text(d["text"], encoding="utf-8")
    (root / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(docs), root / "docs.parquet", row_group_size=70)
    return root


def shard_files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}


def expected_rows(model, docs):
    nlp = spacy.load(model)
    return {d["id"]: [(e.start_char, e.end_char, e.label_) for e in nlp(d["text"]).ents] for d in docs}


def as_spans(rows):
    return {r["id"]: [(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in rows}


# records and the plan (no Ray) -----------------------------------------------

def test_plan_is_fixed_and_named_after_the_input(corpus):
    options = Options(partition_size=100)
    jsonl = plan(corpus / "docs.jsonl", options)
    assert [(p.name, p.start, p.stop) for p in jsonl] == [
        ("docs-00000000", 0, 100), ("docs-00000100", 100, 200), ("docs-00000200", 200, 240)]
    assert [p.to_dict() for p in plan(corpus / "docs.jsonl", options)] == [p.to_dict() for p in jsonl]
    txt = plan(corpus / "texts", options)
    assert [p.name for p in txt] == ["texts-00000000", "texts-00000100", "texts-00000200"]
    assert txt[1].files[0] == "doc0100.txt"
    parquet = plan(corpus / "docs.parquet", options)  # partitions cross row groups of 70
    for parts in (jsonl, txt, parquet):
        records = [r for p in parts for r in read_partition(p, options)]
        assert [r.id for r in records] == [f"doc{i:04d}" for i in range(N_DOCS)]
        assert all(r.error is None and r.text for r in records)
    assert read_partition(parquet[1], options)[0].extra == {"source": "s1"}


def test_input_columns_named_like_output_fields_are_all_kept(tmp_path):
    """A previous predict's output fed back in: its entities and an earlier
    input_entities both pass through, neither replaces the other."""
    row = {"id": "x", "text": "Bob went to Rome.", "entities": "A", "input_entities": "B", "text2": "C"}
    (tmp_path / "in.jsonl").write_text(json.dumps(row) + "\n")
    (record,) = [r for p in plan(tmp_path / "in.jsonl", Options()) for r in read_partition(p, Options())]
    assert record.extra == {"input_input_entities": "A", "input_entities": "B", "text2": "C"}
    out = output_row(record, spacy.blank("en")(record.text))
    assert out["entities"] == [] and out["input_entities"] == "B" and out["input_input_entities"] == "A"


def test_a_text_column_no_row_has_is_one_error(model, tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "a", "body": "Who is Shaka Khan?"}) + "\n{broken\n")
    out = cli("predict", model, tmp_path / "in.jsonl", tmp_path / "out.jsonl", ok=False)
    assert f"{tmp_path / 'in.jsonl'}: no row has a 'text' field (the first row's fields: id, body)" in out
    assert not (tmp_path / "out.jsonl").exists()
    cli("predict", model, tmp_path / "in.jsonl", tmp_path / "out.jsonl", "--text-column", "body")
    assert [r["id"] for r in read_shards(tmp_path / "out.jsonl")] == ["a"]


def test_bad_rows_are_reported_by_id_never_dropped(model, tmp_path):
    lines = [json.dumps({"id": "a", "text": "Who is Shaka Khan?"}).encode(),
             json.dumps({"id": "no-text"}).encode(),
             json.dumps({"id": "empty", "text": "  "}).encode(),
             json.dumps({"id": "number", "text": 3}).encode(),
             b'{"id": "latin1", "text": "caf\xe9"}',
             b"{not json",
             json.dumps({"id": "a", "text": "I like London."}).encode(),
             json.dumps({"text": "Angela Merkel flew to Paris."}).encode()]
    (tmp_path / "in.jsonl").write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n")  # a BOM is no bad row
    out = cli("predict", model, tmp_path / "in.jsonl", tmp_path / "out", "--partition-size", "3")
    assert "6 rows could not be labelled" in out and "Labelled 2 documents" in out
    errors = [json.loads(line) for f in sorted((tmp_path / "out").glob("*.errors.jsonl"))
              for line in f.read_text().splitlines()]
    assert [(e["id"], e["error"].split(" (")[0]) for e in errors] == [
        ("no-text", "no text"), ("empty", "no text"), ("number", "'text' is not a string"),
        ("latin1", "not utf-8"), ("in.jsonl:6", "not valid JSON"), ("a", "duplicate id")]
    assert errors[-1]["error"] == "duplicate id (first in partition in-00000000)"
    rows = read_shards(tmp_path / "out")
    assert [r["id"] for r in rows] == ["a", "in.jsonl:8"]  # a row without an id is named by file and line
    # a .txt folder: undecodable files are errors too
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "good.txt").write_text("Who is Shaka Khan?")
    (tmp_path / "texts" / "bad.txt").write_bytes(b"caf\xe9 in Paris")
    out = cli("predict", model, tmp_path / "texts", tmp_path / "t.jsonl")
    assert [json.loads(x)["id"] for x in (tmp_path / "t.errors.jsonl").read_text().splitlines()] == ["bad"]
    assert [r["id"] for r in read_shards(tmp_path / "t.jsonl")] == ["good"]


def test_parquet_shards_of_a_job_share_columns_and_types(model, tmp_path):
    """Each shard holds some rows, but every shard has the plan's columns
    and types, so the folder reads back as one table: a column null in the
    first shard, an id missing from a row (named by file and line), ints and
    floats together, a column only in a later row, mixed kinds as JSON."""
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [{"id": 1, "text": "Who is Shaka Khan?", "note": None, "score": 1},
            {"id": 2, "text": "I like London.", "note": None, "score": 2.5},
            {"text": "Angela Merkel flew to Paris.", "note": "checked", "score": 3, "extra": [1, "a"]},
            {"id": 4, "text": "Paris", "note": "x", "score": None, "extra": {"k": 1}, "late": True}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cli("predict", model, tmp_path / "in.jsonl", tmp_path / "out", "--to", "parquet", "--partition-size", "1")
    shards = sorted((tmp_path / "out").glob("*.parquet"))
    assert len(shards) == 4 and len({pq.read_schema(f) for f in shards}) == 1
    schema = pq.read_schema(shards[0])
    assert schema.names == ["id", "text", "entities", "note", "score", "extra", "late"]
    assert [str(schema.field(n).type) for n in ("id", "note", "score", "extra", "late")] == [
        "string", "string", "double", "string", "bool"]
    table = pq.read_table(tmp_path / "out")
    assert table.column("id").to_pylist() == ['1', '2', '"in.jsonl:3"', '4']  # ints and names: JSON text
    assert table.column("extra").to_pylist() == [None, None, '[1, "a"]', '{"k": 1}']
    assert table.column("late").to_pylist() == [None, None, None, True]
    assert table.column("score").to_pylist() == [1.0, 2.5, 3.0, None]
    # Parquet input: the types come from its schema; a null id is a name
    import pyarrow

    pq.write_table(pyarrow.Table.from_pylist([{"id": 1, "text": "a", "n": None, "f": 0.5},
                                              {"id": None, "text": "b", "n": None, "f": None}]), tmp_path / "in.parquet")
    assert plan(tmp_path / "in.parquet", Options())[0].columns == {"id": "json", "n": "null", "f": "double"}
    # and its columns of other types keep them, in a folder of shards and in one file
    import datetime

    table = pyarrow.table({"id": ["a", "b"], "text": ["Paris", "Rome"],
                           "when": pyarrow.array([datetime.datetime(2024, 1, 1), None], type=pyarrow.timestamp("ns")),
                           "tags": pyarrow.array([[1, 2], []], type=pyarrow.list_(pyarrow.int64())),
                           "big": pyarrow.array([2**64 - 1, 0], type=pyarrow.uint64())})
    pq.write_table(table, tmp_path / "typed.parquet")
    cli("predict", model, tmp_path / "typed.parquet", tmp_path / "typed", "--to", "parquet", "--partition-size", "1")
    cli("predict", model, tmp_path / "typed.parquet", tmp_path / "typed_one.parquet")
    for out in (pq.read_table(sorted((tmp_path / "typed").glob("*.parquet"))), pq.read_table(tmp_path / "typed_one.parquet")):
        assert [str(out.schema.field(n).type) for n in ("when", "tags", "big")] == [
            "timestamp[ns]", "list<element: int64>", "uint64"]
        assert out.column("big").to_pylist() == [2**64 - 1, 0]
    # a text folder's shards: the id is a string, also in a shard of error rows only
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("Paris")
    (tmp_path / "texts" / "b.txt").write_text(" ")
    cli("predict", model, tmp_path / "texts", tmp_path / "t_out", "--to", "parquet", "--partition-size", "1")
    assert {str(pq.read_schema(f).field("id").type) for f in (tmp_path / "t_out").glob("*.parquet")} == {"string"}


def test_plan_file_holds_the_column_types_once_and_reads_older_plans(model, tmp_path):
    """The plan stores the output's column types once, not in every
    partition; a plan written with them in every partition (before) still
    resumes with them, and a damaged partition entry is refused by name."""
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [{"id": i, "text": text, "n": i if i % 2 else None} for i, text in enumerate(["Paris", "Rome", "Berlin"])]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    args = ("predict", model, tmp_path / "in.jsonl", out, "--to", "parquet", "--partition-size", "1")
    cli(*args)
    saved = json.loads((out / "_plan.json").read_text())
    assert saved["columns"] == {"id": "int64", "n": "int64"}
    assert len(saved["partitions"]) == 3 and not any("columns" in p for p in saved["partitions"])
    schema = pq.read_schema(out / "in-00000000.parquet")
    # the format before: the types in every partition, none at the top
    older = {"key": saved["key"], "partitions": [{**p, "columns": saved["columns"]} for p in saved["partitions"]]}
    (out / "_plan.json").write_text(json.dumps(older))
    (out / "in-00000000.parquet").unlink()  # its only row has n = None: the type comes from the plan
    assert "2 of 3 partitions were already written" in cli(*args)
    assert pq.read_schema(out / "in-00000000.parquet") == schema
    first = saved["partitions"][0]
    damaged = [{**saved, "partitions": [p]} for p in (
        {**first, "duplicates": [3]}, {"name": "in-00000000"}, "in-00000000", {**first, "colour": "red"},
        {**first, "start": "0"}, {**first, "kind": "csv"}, {**first, "files": "abc"}, {**first, "columns": 5})]
    damaged += [{**saved, "partitions": {}}, {**saved, "columns": ["id"]}, {**saved, "columns": {"id": 5}},
                {**saved, "columns": {"id": "bogus"}}, {**saved, "columns": {"id": "arrow:AAAA"}}]
    for plan_data in damaged:
        (out / "_plan.json").write_text(json.dumps(plan_data))
        assert f"{out / '_plan.json'}: is not a plan of predict's" in cli(*args, ok=False), plan_data
    (out / "_plan.json").unlink()
    (out / "_plan.json").mkdir()
    assert f"{out / '_plan.json'}: cannot be read" in cli(*args, ok=False)


def test_job_keys_resume_older_plans_but_not_older_brat_plans(model, tmp_path):
    """Comparing ids as text (BRAT output) is in the job key; elsewhere it is
    not, so that a JSONL job planned before the option existed resumes,
    while a BRAT one, whose repeated ids were not marked so, is another job."""
    (tmp_path / "in.jsonl").write_text('{"id": 1, "text": "Paris"}\n{"id": "1", "text": "Rome"}\n')
    cli("predict", model, tmp_path / "in.jsonl", tmp_path / "rows")
    cli("predict", model, tmp_path / "in.jsonl", tmp_path / "brat", "--to", "brat")
    rows_key = json.loads((tmp_path / "rows" / "_plan.json").read_text())["key"]
    brat_key = json.loads((tmp_path / "brat" / ".done" / "_plan.json").read_text())["key"]
    assert "ids_as_text" not in rows_key["options"] and brat_key["options"]["ids_as_text"] is True


def test_jsonl_in_utf16_is_one_error_not_a_row_each(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes('{"id": 1, "text": "x"}\n'.encode("utf-16"))
    for options in (Options(), Options(encoding="utf-16")):
        with pytest.raises(FormatError, match="is in UTF-16 or UTF-32; JSON lines must be UTF-8"):
            plan(src, options)
        with pytest.raises(FormatError, match="is in UTF-16"):
            list(stream(src, options))
    for encoding in ("utf-16-le", "utf-32-be", "utf-32"):  # no byte order mark, or UTF-32's
        src.write_bytes('{"id": 1, "text": "x"}\n'.encode(encoding))
        with pytest.raises(FormatError, match="is in UTF-16 or UTF-32"):
            plan(src, Options())
    src.write_text('{"id": 1, "text": "x"}\n')  # UTF-8 read as UTF-16 would not split at line ends
    with pytest.raises(FormatError, match="is in UTF-16 or UTF-32"):
        plan(src, Options(encoding="utf-16"))
    # but UTF-8 with a byte order mark, and a NUL inside a first row, are UTF-8
    src.write_bytes(b'\xef\xbb\xbf{"id": 1, "text": "x"}\n')
    (part,) = plan(src, Options(encoding="utf-8-sig"))
    assert [r.text for r in read_partition(part, Options(encoding="utf-8-sig"))] == ["x"]
    src.write_bytes(b'{"id": 0, "text": "bad\x00row"}\n{"id": 1, "text": "x"}\n')
    (part,) = plan(src, Options())
    assert [r.error is None for r in read_partition(part, Options())] == [False, True]


def test_the_plan_reads_rows_in_the_given_encoding(tmp_path):
    """A Latin-1 row is read by the plan as the partition reads it: its
    column kinds count, and its id is compared (a repeat is marked)."""
    src = tmp_path / "in.jsonl"
    src.write_bytes('{"id": "é", "text": "a", "n": 1}\n{"id": "é", "text": "b", "n": "x"}\n'.encode("latin-1"))
    options = Options(encoding="latin-1")
    (part,) = plan(src, options)
    assert part.columns == {"id": "string", "n": "json"}
    assert [r.error for r in read_partition(part, options)] == [None, "duplicate id (first in partition in-00000000)"]


def test_stream_reads_the_records_of_the_plan(tmp_path):
    """visualize's lazy reader gives the plan's records in its order, bad
    rows and duplicate ids (across files too) the same, with no plan."""
    lines = [json.dumps({"id": "a", "text": "Who is Shaka Khan?"}).encode(), b"{not json",
             json.dumps({"id": "a", "text": "again"}).encode(), json.dumps({"text": "no id"}).encode(),
             json.dumps({"id": 7, "text": None}).encode(), json.dumps({"id": 7, "text": "seven"}).encode(),
             json.dumps({"id": [1, {"a": 2}], "text": "list"}).encode(), b'{"id": "s", "text": "half \\ud800"}']
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n")
    (tmp_path / "in" / "b.jsonl").write_text(json.dumps({"id": "b", "text": "x"}) + "\n" +
                                             json.dumps({"id": 7, "text": "y"}) + "\n" +
                                             json.dumps({"id": [1, {"a": 2}], "text": "again"}) + "\n")
    options = Options(partition_size=2)
    planned = [r for p in plan(tmp_path / "in", options) for r in read_partition(p, options)]
    streamed = list(stream(tmp_path / "in", options))
    assert [(r.index, r.id, r.text, r.error is None) for r in streamed] == [
        (r.index, r.id, r.text, r.error is None) for r in planned]
    assert [r.id for r in streamed if r.error and r.error.startswith("duplicate id")] == ["a", 7, [1, {"a": 2}]]
    assert [r.error for r in streamed if r.id == "s"] == ["not Unicode text (a lone surrogate '\\ud800' at character 5)"]
    as_text = Options(partition_size=2, ids_as_text=True)  # BRAT: 7 and "7" would name one file
    (tmp_path / "in" / "c.jsonl").write_text(json.dumps({"id": "7", "text": "z"}) + "\n")
    planned = [r for p in plan(tmp_path / "in", as_text) for r in read_partition(p, as_text)]
    assert planned[-1].id == "7" and planned[-1].error.startswith("duplicate id")
    assert [(r.id, r.error) for r in stream(tmp_path / "in", as_text)][-1] == ("7", "duplicate id")
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow

    rows = [{"key": "k1", "body": "one"}, {"key": "k1", "body": "two"}, {"key": None, "body": "three"}]
    pq.write_table(pyarrow.Table.from_pylist(rows), tmp_path / "in.parquet")
    options = Options(text_column="body", id_column="key")
    assert [(r.id, r.text, r.error) for r in stream(tmp_path / "in.parquet", options)] == [
        ("k1", "one", None), ("k1", "two", "duplicate id"), ("in.parquet:2", "three", None)]
    with pytest.raises(FormatError, match="no column 'text'"):
        list(stream(tmp_path / "in.parquet", Options()))


def test_entity_scores_come_from_scored_span_groups():
    nlp = spacy.blank("en")
    doc = nlp("Angela Merkel flew to Paris.")
    doc.ents = [doc.char_span(0, 13, "PERSON"), doc.char_span(22, 27, "LOC")]
    record = Record(0, "x", doc.text, {"year": 2024})
    row = output_row(record, doc)
    assert [e["score"] for e in row["entities"]] == [None, None]
    assert row["year"] == 2024 and row["text"] == doc.text
    group = SpanGroup(doc, name="bilstm_crf_ner", spans=[doc.char_span(22, 27, "PER"), doc.char_span(0, 13, "PERSON"),
                                                          doc.char_span(22, 27, "LOC")])
    group.attrs["scores"] = [0.25, 0.875, 0.5]  # an alternative label for Paris, not in doc.ents
    doc.spans["bilstm_crf_ner"] = group
    doc.spans["other"] = [doc.char_span(0, 6, "PERSON")]  # no scores: ignored
    assert [(e["text"], e["score"]) for e in output_row(record, doc)["entities"]] == [
        ("Angela Merkel", 0.875), ("Paris", 0.5)]


def test_shards_match_single_process_and_a_rerun_writes_nothing(model, corpus, tmp_path):
    docs = [json.loads(line) for line in (corpus / "docs.jsonl").read_text().splitlines()]
    cli("predict", model, corpus / "docs.jsonl", tmp_path / "out", "--partition-size", "100")
    assert sorted(shard_files(tmp_path / "out")) == ["_plan.json", "docs-00000000.jsonl", "docs-00000100.jsonl",
                                                     "docs-00000200.jsonl"]
    rows = read_shards(tmp_path / "out")
    assert [r["id"] for r in rows] == [d["id"] for d in docs]
    assert as_spans(rows) == expected_rows(model, docs)
    assert rows[4]["source"] == "s1" and rows[4]["text"] == docs[4]["text"]
    before = mtimes(tmp_path / "out")
    out = cli("predict", model, corpus / "docs.jsonl", tmp_path / "out", "--partition-size", "100")
    assert "Labelled 0 documents" in out and "3 of 3 partitions were already written" in out
    assert mtimes(tmp_path / "out") == before
    # another job into the same folder is refused, not mixed in
    out = cli("predict", model, corpus / "docs.jsonl", tmp_path / "out", "--partition-size", "50", ok=False)
    assert "holds shards of another job (changed: options)" in out
    # Parquet in, Parquet out: the same entities, columns passed through
    cli("predict", model, corpus / "docs.parquet", tmp_path / "pq", "--partition-size", "100")
    assert read_shards(tmp_path / "pq") == rows
    assert sorted(shard_files(tmp_path / "pq"))[1] == "docs-00000000.parquet"


def test_resume_after_a_crash_finishes_the_rest(model, corpus, tmp_path):
    args = ["predict", model, corpus / "texts", tmp_path / "out", "--to", "jsonl", "--partition-size", "40"]
    result = subprocess.run([sys.executable, "-m", "spacy_bilstm_crf", *map(str, args)], capture_output=True,
                            env={**os.environ, "SPACY_BILSTM_CRF_TEST_EXIT_AFTER_SHARDS": "2"})
    assert result.returncode == 3  # the driver died after two shards
    first = mtimes(tmp_path / "out")
    assert sorted(first) == ["_plan.json", "texts-00000000.jsonl", "texts-00000040.jsonl"]
    out = cli(*args)
    assert "Labelled 160 documents in 4 partitions" in out and "2 of 6 partitions were already written" in out
    after = mtimes(tmp_path / "out")
    assert {k: after[k] for k in first} == first  # the shards written before the crash were kept
    ids = Counter(r["id"] for r in read_shards(tmp_path / "out"))
    assert len(ids) == N_DOCS and set(ids.values()) == {1}
    cli(*args[:3], tmp_path / "whole", *args[4:])
    assert shard_files(tmp_path / "out") == shard_files(tmp_path / "whole")
    # a shard lost later (deleted) is the only one written again
    (tmp_path / "out" / "texts-00000120.jsonl").unlink()
    assert "Labelled 40 documents in 1 partition:" in cli(*args)
    assert shard_files(tmp_path / "out") == shard_files(tmp_path / "whole")


def test_process_pool_writes_the_same_shards(model, corpus, tmp_path):
    """--n-process 2 labels in a pool of two processes (alive whenever a
    partition is delivered) and writes the bytes one process writes."""
    cli("predict", model, corpus / "docs.jsonl", tmp_path / "one", "--partition-size", "60")
    pools = pool_pids("predict", model, corpus / "docs.jsonl", tmp_path / "two", "--partition-size", "60",
                      "--n-process", "2")
    assert len(pools) == 4 and len(set(pools)) == 1 and len(pools[0]) == 2
    assert shard_files(tmp_path / "one") == shard_files(tmp_path / "two")


def test_thread_counts_are_the_same_in_every_engine(model, tmp_path):
    """With torch on 2 threads here and 1 in each pool process, MKL's float32
    products differed in their last bits on batches this large, and scores
    with them; every labelling process now runs on --cpus-per-worker threads."""
    big = [{"id": f"t{i:05d}", "text": t} for i, t in enumerate(texts(3000, seed=1))]
    (tmp_path / "big.jsonl").write_text("".join(json.dumps(d) + "\n" for d in big), encoding="utf-8")
    cli("predict", model, tmp_path / "big.jsonl", tmp_path / "one", "--partition-size", "1500")
    pools = pool_pids("predict", model, tmp_path / "big.jsonl", tmp_path / "two", "--partition-size", "1500",
                      "--n-process", "2")
    assert len(pools) == 2 and len(set(pools)) == 1 and len(pools[0]) == 2
    assert shard_files(tmp_path / "one") == shard_files(tmp_path / "two")


def test_without_ray_the_message_says_what_to_install(model, corpus, tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"
            "from spacy_bilstm_crf.__main__ import app\n"
            "app(sys.argv[1:])\n")
    result = subprocess.run([sys.executable, "-c", code, "predict", str(model), str(corpus / "docs.jsonl"),
                             str(tmp_path / "out"), "--engine", "ray"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "install the [ray] extra: pip install 'spacy-bilstm-crf[ray]'" in result.stderr
    assert "Traceback" not in result.stderr


# Ray -------------------------------------------------------------------------

def test_ray_writes_the_same_shard_files_as_one_process(model, corpus, tmp_path):
    pytest.importorskip("ray")
    cli("predict", model, corpus / "docs.jsonl", tmp_path / "process", "--partition-size", "30")
    cli("predict", model, corpus / "docs.jsonl", tmp_path / "ray", "--partition-size", "30", "--engine", "ray",
        "--workers", "2")
    assert len(shard_files(tmp_path / "ray")) == 9
    assert shard_files(tmp_path / "ray") == shard_files(tmp_path / "process")


def test_ray_killed_actor_is_retried_each_document_once(model, corpus, tmp_path):
    pytest.importorskip("ray")
    marker = tmp_path / "killed"
    out = cli("predict", model, corpus / "docs.parquet", tmp_path / "ray", "--partition-size", "20", "--engine", "ray",
              "--workers", "2", env={"SPACY_BILSTM_CRF_TEST_KILL_ACTOR_ONCE": str(marker)})
    assert marker.exists()  # an actor SIGKILLed itself after labelling a partition, before returning it
    assert "Labelled 240 documents in 12 partitions" in out
    ids = Counter(r["id"] for r in read_shards(tmp_path / "ray"))
    assert len(ids) == N_DOCS and set(ids.values()) == {1}
    cli("predict", model, corpus / "docs.parquet", tmp_path / "process", "--partition-size", "20")
    assert shard_files(tmp_path / "ray") == shard_files(tmp_path / "process")


def test_ray_model_missing_is_one_line(corpus, tmp_path):
    pytest.importorskip("ray")
    out = cli("predict", tmp_path / "nothing", corpus / "docs.jsonl", tmp_path / "out", "--engine", "ray", ok=False)
    assert "nothing: no such pipeline folder" in out and len(out.strip().splitlines()) == 1


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    """A real Ray head on loopback (`ray start --head`), stopped at the end."""
    pytest.importorskip("ray")
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    port = _free_port()
    start = subprocess.run([ray_cli, "start", "--head", "--num-cpus", "2", "--port", str(port),
                            "--node-ip-address", "127.0.0.1", "--include-dashboard", "false",
                            "--disable-usage-stats"], capture_output=True, text=True)
    assert start.returncode == 0, start.stdout + start.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray_cli, "stop"], capture_output=True)


def test_ray_cluster_brat_same_as_single_process_and_rerun_writes_nothing(model, corpus, ray_head, tmp_path):
    cli("predict", model, corpus / "texts", tmp_path / "process")  # the document pipeline: BRAT
    out = cli("predict", model, corpus / "texts", tmp_path / "ray", "--engine", "ray", "--address", ray_head,
              "--partition-size", "50")
    assert "Labelled 240 documents in 5 partitions" in out
    for name in ("process", "ray"):
        assert len(list((tmp_path / name).glob("*.ann"))) == len(list((tmp_path / name).glob("*.txt"))) == N_DOCS
    assert shard_files(tmp_path / "ray") == shard_files(tmp_path / "process")  # .txt, .ann, annotation.conf
    assert sorted(p.name for p in (tmp_path / "ray" / ".done").iterdir()) == ["_plan.json"] + [
        f"texts-{i:08d}.json" for i in range(0, 240, 50)]
    before = mtimes(tmp_path / "ray")
    out = cli("predict", model, corpus / "texts", tmp_path / "ray", "--engine", "ray", "--address", ray_head,
              "--partition-size", "50")
    assert "Labelled 0 documents" in out and mtimes(tmp_path / "ray") == before


def test_ray_cluster_jsonl_same_rows(model, corpus, ray_head, tmp_path):
    cli("predict", model, corpus / "docs.jsonl", tmp_path / "ray.jsonl", "--engine", "ray", "--address", ray_head)
    cli("predict", model, corpus / "docs.jsonl", tmp_path / "process.jsonl")
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "process.jsonl").read_bytes()


# GPU -------------------------------------------------------------------------

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_train_and_predict_on_gpu(corpus, tmp_path):
    """spacy train --gpu-id 0 and predict --gpu-id 0 run (Thinc's CupyOps,
    torch on CUDA) and agree with the same model on the CPU."""
    pytest.importorskip("cupy")  # spaCy's GPU ops: the [cuda12x] extra
    from spacy.tokens import DocBin

    from .helpers import gold_docs

    root = Path(__file__).resolve().parents[1]
    nlp = spacy.blank("en")
    docs = gold_docs(nlp, repeat=5)
    DocBin(docs=docs).to_disk(tmp_path / "train.spacy")
    subprocess.run([sys.executable, "-m", "spacy", "train", str(root / "configs" / "bilstm_crf.cfg"), "--gpu-id", "0",
                    "--paths.train", str(tmp_path / "train.spacy"), "--paths.dev", str(tmp_path / "train.spacy"),
                    "--training.max_steps", "60", "--output", str(tmp_path / "out")], check=True)
    model = tmp_path / "out" / "model-last"
    cli("predict", model, corpus / "docs.jsonl", tmp_path / "gpu.jsonl", "--gpu-id", "0")
    cli("predict", model, corpus / "docs.jsonl", tmp_path / "cpu.jsonl")
    gpu, cpu = as_spans(read_shards(tmp_path / "gpu.jsonl")), as_spans(read_shards(tmp_path / "cpu.jsonl"))
    assert gpu.keys() == cpu.keys() and any(gpu.values())
    # float sums differ between cuDNN and the CPU; a near tie may decode differently
    assert sum(gpu[k] == cpu[k] for k in cpu) >= 0.95 * len(cpu)


def test_lazily_built_torch_modules_land_on_the_shims_device(monkeypatch):
    """The torch modules get their weights at initialization, after Thinc's
    shim moved the (then empty) module to its device: they must follow it
    (on a GPU that device is CUDA; "meta" stands in for it here)."""
    from thinc.shims.pytorch import PyTorchShim

    monkeypatch.setattr(PyTorchShim, "device", property(lambda self: torch.device("meta")))
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner")
    model = nlp.get_pipe("bilstm_crf_ner").model
    with pytest.raises(Exception):  # meta tensors cannot run; the weights must be there already
        nlp.initialize(lambda: make_examples(nlp))
    modules = [node.shims[0]._model for node in model.walk() if node.shims]
    assert len(modules) == 2
    assert {p.device.type for m in modules for p in m.parameters()} == {"meta"}
