"""Command options that the other tests leave out, each shown to change what
the command does; and `serve`, fetched over HTTP."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import spacy
from spacy.tokens import DocBin

from .helpers import TRAIN_DATA, gold_docs, train_small_pipeline
from .test_cli import ROOT
from .test_commands import cli


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return train_small_pipeline(tmp_path_factory.mktemp("model") / "model")


def read_docbin(path):
    return list(DocBin().from_disk(path).get_docs(spacy.blank("en").vocab))


def test_convert_tag_column_and_schemes(tmp_path):
    """--tag-column reads the tag from another column; --scheme says how to
    read I- after O (IOB1: an entity start; IOB2: a repair, reported);
    --out-scheme writes another scheme."""
    src = tmp_path / "in.conll"
    src.write_text("Ada I-PER NNP\nLovelace I-PER NNP\nmet O VBD\nBabbage I-PER NNP\n\n", encoding="utf8")
    out = cli("convert", src, tmp_path / "a.spacy", "--tag-column", "1", "--scheme", "IOB1")
    assert "3 entities" not in out and "2 entities" in out and "IOB1" in out and "lenient repair" not in out
    assert [(e.text, e.label_) for e in read_docbin(tmp_path / "a.spacy")[0].ents] == [
        ("Ada Lovelace", "PER"), ("Babbage", "PER")]
    out = cli("convert", src, tmp_path / "b.spacy", "--tag-column", "1", "--scheme", "IOB2")
    assert "2 x I- after O: read as the start of an entity (lenient repair" in out
    out = cli("convert", src, tmp_path / "c.spacy", ok=False)  # the last column holds part-of-speech tags
    assert "Traceback" not in out
    cli("convert", tmp_path / "a.spacy", tmp_path / "a.conll", "--out-scheme", "biluo")  # any case
    tags = [line.split()[1] for line in (tmp_path / "a.conll").read_text().splitlines() if line.strip()
            and not line.startswith("-DOCSTART-")]
    assert tags == ["B-PER", "L-PER", "O", "U-PER"]  # in the column it was read from


def test_convert_says_what_it_writes_as_outside_and_what_it_cannot_read(tmp_path):
    """A text without .ann has no annotation; CoNLL and JSONL can only write
    it as outside any entity, which is said, and .spacy keeps it missing."""
    brat = tmp_path / "brat"
    brat.mkdir()
    (brat / "done.txt").write_text("Ada Lovelace")
    (brat / "done.ann").write_text("T1\tPER 0 12\tAda Lovelace\n")
    (brat / "todo.txt").write_text("Charles Babbage")
    for out, fmt in (("o.iob", "conll"), ("o.jsonl", "jsonl")):
        said = cli("convert", brat, tmp_path / out)
        assert "1 x documents with tokens whose entity annotation is missing" in said
        assert f"which {fmt} writes as outside any entity" in said
    said = cli("convert", brat, tmp_path / "o.spacy")
    assert "annotation is missing (a text" not in said
    assert [d.has_annotation("ENT_IOB") for d in read_docbin(tmp_path / "o.spacy")] == [True, False]
    said = cli("convert", tmp_path / "o.jsonl", tmp_path / "x.spacy", "--from", "jsonl", ok=False)
    assert "cannot read the format 'jsonl' here: use one of conll, brat, spacy." in said


def test_convert_lang_picks_the_tokenizer(tmp_path):
    brat = tmp_path / "brat"
    brat.mkdir()
    (brat / "a.txt").write_text("Das ist z.B. gut, sagt Anna.", encoding="utf8")
    (brat / "a.ann").write_text("T1\tPER 23 27\tAnna\n", encoding="utf8")
    words = {}
    for lang in ("en", "de"):
        cli("convert", brat, tmp_path / f"{lang}.spacy", "--lang", lang)
        (doc,) = read_docbin(tmp_path / f"{lang}.spacy")
        words[lang] = [t.text for t in doc]
        assert [(e.text, e.label_) for e in doc.ents] == [("Anna", "PER")]
    assert "z.B." in words["de"] and "z.B." not in words["en"]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf8")


def read_rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines()]


def spans(rows):
    return [[(e["start"], e["end"], e["label"]) for e in row["entities"]] for row in rows]


def test_predict_id_column_and_batch_size(model, tmp_path):
    rows = [{"key": f"k{i}", "id": "not this", "text": text} for i, (text, _) in enumerate(TRAIN_DATA)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    cli("predict", model, tmp_path / "in.jsonl", tmp_path / "a.jsonl", "--id-column", "key")
    cli("predict", model, tmp_path / "in.jsonl", tmp_path / "b.jsonl", "--id-column", "key", "--batch-size", "1")
    a, b = read_rows(tmp_path / "a.jsonl"), read_rows(tmp_path / "b.jsonl")
    assert [row["id"] for row in a] == ["k0", "k1", "k2", "k3"]
    assert spans(a) == [[(s, e, label) for s, e, label in gold] for _, gold in TRAIN_DATA]
    assert spans(b) == spans(a)


def test_rerun_is_refused_when_the_model_or_input_changed(model, tmp_path):
    """A model retrained into the same folder, or a changed input, makes a
    rerun into the same shard folder an error instead of keeping the old
    model's shards as if they were done."""
    write_jsonl(tmp_path / "in.jsonl", [{"id": str(i), "text": text} for i, (text, _) in enumerate(TRAIN_DATA)])
    cli("predict", model, tmp_path / "in.jsonl", tmp_path / "out")
    assert "Labelled 0 documents" in cli("predict", model, tmp_path / "in.jsonl", tmp_path / "out")
    weights = model / "bilstm_crf_ner" / "model"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # saved again
    out = cli("predict", model, tmp_path / "in.jsonl", tmp_path / "out", ok=False)
    assert "holds shards of another job (changed: model files)" in out
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with open(tmp_path / "in.jsonl", "a", encoding="utf8") as f:
        f.write(json.dumps({"id": "new", "text": "Rome"}) + "\n")
    out = cli("predict", model, tmp_path / "in.jsonl", tmp_path / "out", ok=False)
    assert "holds shards of another job (changed: fingerprint)" in out


def test_visualize_limit_and_analyze_examples(model, tmp_path):
    texts = tmp_path / "texts"
    texts.mkdir()
    for i, (text, _) in enumerate(TRAIN_DATA):
        (texts / f"{i}.txt").write_text(text, encoding="utf8")
    out = cli("visualize", model, texts, tmp_path / "page.html", "--limit", "1")
    assert "1 document," in out
    page = (tmp_path / "page.html").read_text(encoding="utf8")
    assert "Shaka Khan" in page and "London" not in page
    # gold that disagrees with the model on every entity's type: four type errors
    nlp = spacy.blank("en")
    docs = []
    for text, gold in TRAIN_DATA:
        doc = nlp.make_doc(text)
        doc.ents = [doc.char_span(s, e, label="MISC") for s, e, _ in gold]
        docs.append(doc)
    DocBin(docs=docs).to_disk(tmp_path / "gold.spacy")
    for n in (1, 3):
        cli("analyze", model, tmp_path / "gold.spacy", "--examples", n, "-o", tmp_path / f"a{n}.json")
    few, more = (json.loads((tmp_path / f"a{n}.json").read_text())["examples"] for n in (1, 3))
    assert len(few["fp_type"]) == 1 and len(more["fp_type"]) == 3
    assert all(len(examples) <= 1 for examples in few.values())


def test_debug_data_code_and_ignore_warnings(tmp_path):
    """--code registers functions the config names; -IW hides the warnings."""
    nlp = spacy.blank("en")
    docs = gold_docs(nlp, repeat=5)
    DocBin(docs=docs).to_disk(tmp_path / "train.spacy")
    DocBin(docs=docs[:4]).to_disk(tmp_path / "dev.spacy")
    code = tmp_path / "augment.py"
    code.write_text("import spacy\n\n\n@spacy.registry.augmenters('test_identity.v1')\ndef make():\n"
                    "    return lambda nlp, example: [example]\n", encoding="utf8")
    args = [sys.executable, "-m", "spacy_bilstm_crf", "debug-data", str(ROOT / "configs" / "bilstm_crf.cfg"),
            "--paths.train", str(tmp_path / "train.spacy"), "--paths.dev", str(tmp_path / "dev.spacy"),
            "--training.annotating_components", "[]", "--nlp.pipeline", '["bilstm_crf_ner"]',
            "--corpora.train.augmenter", '{"@augmenters":"test_identity.v1"}']
    without = subprocess.run(args, capture_output=True, text=True)
    assert "test_identity.v1" in without.stdout + without.stderr and "Named Entity Recognition" not in without.stdout
    with_code = subprocess.run(args + ["--code", str(code)], capture_output=True, text=True)
    assert "Named Entity Recognition" in with_code.stdout, with_code.stdout + with_code.stderr
    quiet = subprocess.run(args + ["--code", str(code), "-IW"], capture_output=True, text=True)
    assert "Named Entity Recognition" in quiet.stdout
    assert "⚠" in with_code.stdout and "⚠" not in quiet.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_with_the_displacy_page(model, tmp_path):
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text(TRAIN_DATA[0][0], encoding="utf8")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "spacy_bilstm_crf", "serve", str(model), str(texts),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode("utf8")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "Shaka Khan" in page and "PERSON" in page
    # a port in use, or a host that is no address, is said as such
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        out = cli("serve", model, texts, "--host", "127.0.0.1", "--port", taken, ok=False)
    assert f"--host 127.0.0.1 --port {taken}: cannot serve there (Address already in use)" in out
    assert "not an IPv4 address to serve on" in cli("serve", model, texts, "--host", "999.1.1.1", ok=False)
    assert "not an IPv4 address to serve on" in cli("serve", model, texts, "--host", "::1", ok=False)


def test_predict_overwrite_starts_a_shard_folder_over(model, tmp_path):
    """--overwrite replaces the job in a shard folder (another job, or the
    same one again): the old job's shards go, the user's other files stay."""
    write_jsonl(tmp_path / "in.jsonl", [{"id": str(i), "text": text} for i, (text, _) in enumerate(TRAIN_DATA)])
    out = tmp_path / "out"
    cli("predict", model, tmp_path / "in.jsonl", out, "--partition-size", "2")
    (out / "notes.txt").write_text("mine")
    assert "pass --overwrite" in cli("predict", model, tmp_path / "in.jsonl", out, "--partition-size", "3", ok=False)
    said = cli("predict", model, tmp_path / "in.jsonl", out, "--partition-size", "3", "--overwrite")
    assert "Labelled 4 documents in 2 partitions" in said
    assert sorted(p.name for p in out.iterdir()) == ["_plan.json", "in-00000000.jsonl", "in-00000003.jsonl",
                                                     "notes.txt"]
    cli("predict", model, tmp_path / "in.jsonl", tmp_path / "fresh", "--partition-size", "3")
    assert read_rows(out / "in-00000000.jsonl") == read_rows(tmp_path / "fresh" / "in-00000000.jsonl")
    assert "Labelled 4 documents" in cli("predict", model, tmp_path / "in.jsonl", out, "--partition-size", "3",
                                         "--overwrite")
    assert (out / "notes.txt").read_text() == "mine"
    # a plan this tool did not write names no job: refused, with or without --overwrite
    for plan in ('{"x": 1}', "garbage", "null"):
        (out / "_plan.json").write_text(plan)
        for extra in ((), ("--overwrite",)):
            said = cli("predict", model, tmp_path / "in.jsonl", out, "--partition-size", "3", *extra, ok=False)
            assert f"{out / '_plan.json'}: is not a plan of predict's" in said
    assert (out / "notes.txt").read_text() == "mine" and (out / "in-00000000.jsonl").exists()
    (tmp_path / "gold.iob").write_text("Paris B-LOC\nis O\n\n")  # the document path, not only the record path
    said = cli("predict", model, tmp_path / "gold.iob", tmp_path / "o.iob", "--engine", "spark", ok=False)
    assert "unknown engine 'spark'" in said and not (tmp_path / "o.iob").exists()


def test_score_notes_on_the_record_path(model, tmp_path):
    """--score-notes writes the same .ann files whether the texts go through
    the document path (a .txt folder) or the record path (JSONL to BRAT, as
    with --engine ray), and a rerun that adds it is another job."""
    texts = tmp_path / "texts"
    texts.mkdir()
    rows = [{"id": name, "text": text} for name, (text, _) in zip("abcd", TRAIN_DATA)]
    for row in rows:
        (texts / f"{row['id']}.txt").write_text(row["text"], encoding="utf8")
    write_jsonl(tmp_path / "in.jsonl", rows)
    cli("predict", model, texts, tmp_path / "docs", "--score-notes")
    cli("predict", model, tmp_path / "in.jsonl", tmp_path / "records", "--to", "brat", "--score-notes")
    for row in rows:
        ann = (tmp_path / "docs" / f"{row['id']}.ann").read_text(encoding="utf8")
        assert "AnnotatorNotes T1\tconfidence " in ann
        assert (tmp_path / "records" / f"{row['id']}.ann").read_text(encoding="utf8") == ann
    out = cli("predict", model, tmp_path / "in.jsonl", tmp_path / "records", "--to", "brat", ok=False)
    assert "changed: score notes" in out


def test_visualize_reads_records(model, tmp_path):
    """JSONL (and Parquet) rows as predict reads them, titled by their id; a
    row without text is counted, not shown."""
    rows = [{"id": "first", "text": TRAIN_DATA[0][0]}, {"id": "empty", "text": None},
            {"id": "second", "text": TRAIN_DATA[1][0]}, {"id": "third", "text": TRAIN_DATA[2][0]}]
    write_jsonl(tmp_path / "in.jsonl", rows)
    out = cli("visualize", model, tmp_path / "in.jsonl", tmp_path / "page.html", "--limit", "2")
    assert "1 row of" in out and "2 documents, 3 entities" in out
    page = (tmp_path / "page.html").read_text(encoding="utf8")
    assert "first" in page and "second" in page and "Shaka Khan" in page and "Angela" not in page
    pytest.importorskip("pyarrow")
    import pyarrow
    import pyarrow.parquet

    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), tmp_path / "in.parquet")
    assert "3 documents, 5 entities" in cli("visualize", model, tmp_path / "in.parquet", tmp_path / "pq.html")


def test_visualize_reads_records_no_further_than_it_shows(model, tmp_path):
    """--limit stops reading at the rows it shows: a later file whose rows
    lack the text column is an error only when read. --text-column and
    --id-column name the columns, and a repeated id is left out."""
    (tmp_path / "in").mkdir()
    rows = [{"key": "k1", "body": TRAIN_DATA[0][0]}, {"key": "k1", "body": TRAIN_DATA[1][0]},
            {"key": "k2", "body": TRAIN_DATA[2][0]}]
    write_jsonl(tmp_path / "in" / "a.jsonl", rows)
    write_jsonl(tmp_path / "in" / "b.jsonl", [{"key": "k3", "text": "not the text column"}])
    args = (model, tmp_path / "in", tmp_path / "page.html", "--text-column", "body", "--id-column", "key")
    out = cli("visualize", *args, "--limit", "2")
    assert "1 row of" in out and "Wrote" in out and "2 documents" in out
    page = (tmp_path / "page.html").read_text(encoding="utf8")
    assert "k1" in page and "k2" in page and "like" not in page
    out = cli("visualize", *args, ok=False)
    assert "b.jsonl: no row has a 'body' field (the first row's fields: key, text)" in out
