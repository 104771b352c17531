"""python -m spacy_bilstm_crf convert / predict, as a user runs them."""
import importlib.util
import json
import shutil
import subprocess
import sys

import pytest
import spacy
from spacy.tokens import DocBin, Span

from .helpers import DATASETS, TRAIN_DATA, train_small_pipeline


def cli(*args, ok=True):
    result = subprocess.run([sys.executable, "-m", "spacy_bilstm_crf", *map(str, args)],
                            capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert (result.returncode == 0) == ok, output
    assert "Traceback" not in output
    return output


def test_conll_to_spacy_to_brat_to_spacy_to_conll(tmp_path):
    src = tmp_path / "in.conll"
    src.write_text("-DOCSTART- -X- O\n\nAda NNP B-PER\nLovelace NNP I-PER\nmet VBD O\nBabbage NNP B-PER\n. . O\n\n"
                   "Paris NNP B-LOC\n\n", encoding="utf8")
    out = cli("convert", src, tmp_path / "a.spacy")
    assert "Read 1 document, 2 sentences, 3 entities" in out and "IOB2" in out
    cli("convert", tmp_path / "a.spacy", tmp_path / "brat")
    ann = (tmp_path / "brat" / "doc000000.ann").read_text()
    assert ann.splitlines()[0] == "T1\tPER 0 12\tAda Lovelace"
    assert (tmp_path / "brat" / "annotation.conf").read_text().startswith("[entities]\nLOC\nPER\n")
    cli("convert", tmp_path / "brat", tmp_path / "b.spacy")
    docs = list(DocBin().from_disk(tmp_path / "b.spacy").get_docs(spacy.blank("en").vocab))
    assert [(e.text, e.label_) for e in docs[0].ents] == [("Ada Lovelace", "PER"), ("Babbage", "PER"), ("Paris", "LOC")]
    cli("convert", tmp_path / "a.spacy", tmp_path / "back.conll")
    assert (tmp_path / "back.conll").read_text() == src.read_text()


def test_bad_input_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.conll"
    bad.write_text("Ada B-PER\nLovelace Q-PER\n")
    out = cli("convert", bad, tmp_path / "x.spacy", ok=False)
    assert f"{bad}:2: invalid entity tag 'Q-PER'" in out
    assert not (tmp_path / "x.spacy").exists()
    out = cli("convert", tmp_path / "missing.conll", tmp_path / "x.spacy", ok=False)
    assert "no such file" in out
    out = cli("convert", bad, tmp_path / "x.weird", ok=False)
    assert "pass --to" in out
    assert "Invalid value for '--n-sents'" in cli("convert", bad, tmp_path / "x.spacy", "--n-sents", "-3", ok=False)
    garbage = tmp_path / "g.spacy"
    garbage.write_bytes(b"\x00\x01not a docbin")
    assert "not a readable spaCy DocBin" in cli("convert", garbage, tmp_path / "y.conll", ok=False)
    assert "Traceback" in subprocess.run([sys.executable, "-m", "spacy_bilstm_crf", "convert", str(bad),
                                          str(tmp_path / "x.spacy"), "--verbose"], capture_output=True, text=True).stderr


def test_lenient_repairs_say_where_the_first_is(tmp_path):
    src = tmp_path / "in.iob"
    src.write_text("Ada B-PER\n\nthe O\nRhine I-LOC\nand O\nElbe I-LOC\n\nin O\nI-talks I-MISC\n\n")
    out = cli("convert", src, tmp_path / "out.spacy")
    assert f"⚠ 3 x I- after O: read as the start of an entity (lenient repair; the first at {src}:4)" in out


@pytest.mark.parametrize("corpus", ["NCBI-disease", "CoNLL-ST_2002-esp", "CoNLL-ST_2002-ned"])
def test_brat_corpus_converts_and_round_trips(corpus, tmp_path):
    root = DATASETS / "brat" / corpus
    if not root.exists():
        pytest.skip(f"{root} not found")
    cli("convert", root, tmp_path / "c.spacy")
    out = cli("convert", tmp_path / "c.spacy", tmp_path / "back", "--to", "brat")
    texts = sorted(root.glob("*.txt"))
    assert f"Read {len(texts)} documents" in out
    for txt in texts:
        ann = txt.with_name(txt.name[:-4] + ".ann")
        assert (tmp_path / "back" / txt.name).read_bytes() == txt.read_bytes()
        assert (tmp_path / "back" / ann.name).read_bytes() == ann.read_bytes()
    conf = root / "annotation.conf"
    if conf.exists():  # BRAT to BRAT keeps the corpus's declarations (attributes, hierarchy)
        cli("convert", root, tmp_path / "direct", "--to", "brat")
        assert (tmp_path / "direct" / "annotation.conf").read_text() == conf.read_text()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return train_small_pipeline(tmp_path_factory.mktemp("model") / "pipeline")


def test_predict_folder_of_texts_to_brat(model, tmp_path):
    deploy = tmp_path / "deploy"
    (deploy / "week1").mkdir(parents=True)
    texts = {"week1/a.txt": "Who is Shaka Khan?\r\nI like London and Berlin.", "b.txt": "Angela Merkel flew to Paris."}
    for name, text in texts.items():
        (deploy / name).write_bytes(text.encode("utf8"))
    out = cli("predict", model, deploy, tmp_path / "out")
    assert "Labelled 2 documents" in out
    for name, text in texts.items():
        assert (tmp_path / "out" / name).read_bytes() == text.encode("utf8")  # copies beside the .ann
    ann = (tmp_path / "out" / "week1" / "a.ann").read_text().splitlines()
    assert ann[0] == "T1\tPERSON 7 17\tShaka Khan"
    expected = spacy.load(model)(texts["week1/a.txt"]).ents
    assert ann == [f"T{i + 1}\t{e.label_} {e.start_char} {e.end_char}\t{e.text}" for i, e in enumerate(expected)]
    assert (tmp_path / "out" / "annotation.conf").exists()
    assert (tmp_path / "out" / "b.ann").exists()  # every text gets an .ann, entities or not
    # the corrected folder converts back for retraining
    cli("convert", tmp_path / "out", tmp_path / "retrain.spacy")


def test_predict_docbin_to_conll(model, tmp_path):
    nlp = spacy.blank("en")
    DocBin(docs=[nlp(t) for t, _ in TRAIN_DATA]).to_disk(tmp_path / "in.spacy")
    cli("predict", model, tmp_path / "in.spacy", tmp_path / "out.conll")
    rows = [line.split() for line in (tmp_path / "out.conll").read_text().splitlines() if line]
    assert ["Shaka", "B-PERSON"] in rows and ["Khan", "I-PERSON"] in rows


def test_interact_reads_piped_stdin(model):
    result = subprocess.run([sys.executable, "-m", "spacy_bilstm_crf", "interact", str(model), "--jsonl"],
                            input="Who is Shaka Khan?\n\nAngela Merkel flew to Paris.\n", capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    nlp = spacy.load(model)
    assert [r["text"] for r in rows] == ["Who is Shaka Khan?", "Angela Merkel flew to Paris."]
    for row in rows:
        assert [(e["start"], e["end"], e["label"]) for e in row["entities"]] == [
            (e.start_char, e.end_char, e.label_) for e in nlp(row["text"]).ents]
    plain = subprocess.run([sys.executable, "-m", "spacy_bilstm_crf", "interact", str(model)],
                           input="Who is Shaka Khan?\n", capture_output=True, text=True).stdout
    assert "Shaka Khan" in plain and "PERSON" in plain and "7-17" in plain


def test_visualize_writes_a_page_with_label_colours(model, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("Who is Shaka Khan?\nI like London and Berlin.\n")
    out = cli("visualize", model, texts, tmp_path / "page.html")
    assert "Wrote" in out
    page = (tmp_path / "page.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "Shaka Khan" in page
    assert page.count('class="entity"') == sum(len(d.ents) for d in spacy.load(model).pipe(texts.read_text().splitlines()))


def test_predict_and_visualize_tell_raw_text_from_conll(model, tmp_path):
    raw = tmp_path / "notes.txt"
    raw.write_text("Angela Merkel flew to Paris.\nShe met Bill Clinton in London.\n", encoding="utf8")
    out = cli("predict", model, raw, tmp_path / "out")
    assert "Labelled 1 document" in out  # one raw text, as a BRAT .txt, not a CoNLL file with bad tags
    assert (tmp_path / "out" / "notes.txt").read_bytes() == raw.read_bytes()
    expected = spacy.load(model)(raw.read_text(encoding="utf8")).ents
    ann = (tmp_path / "out" / "notes.ann").read_text().splitlines()
    assert ann == [f"T{i + 1}\t{e.label_} {e.start_char} {e.end_char}\t{e.text}" for i, e in enumerate(expected)]
    tagged = tmp_path / "tagged.txt"  # the CoNLL-2003 files are .txt
    tagged.write_text("-DOCSTART- -X- O\n\nAda NNP B-PER\nLovelace NNP I-PER\n\nParis NNP B-LOC\n\n", encoding="utf8")
    out = cli("predict", model, tagged, tmp_path / "tagged.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "tagged.jsonl").read_text().splitlines()]
    assert "Labelled 1 document" in out and rows[0]["text"].startswith("Ada Lovelace")
    cli("visualize", model, tagged, tmp_path / "page.html")  # tokens, not the lines with their tags
    page = (tmp_path / "page.html").read_text()
    assert "Ada" in page and "NNP" not in page and "B-PER" not in page


def test_predict_to_jsonl(model, tmp_path):
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    (deploy / "a.txt").write_text("Who is Shaka Khan?")
    cli("predict", model, deploy, tmp_path / "out.jsonl")
    (row,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    doc = spacy.load(model)("Who is Shaka Khan?")
    assert row["id"] == "a" and row["text"] == "Who is Shaka Khan?"
    assert row["entities"] == [{"start": e.start_char, "end": e.end_char, "label": e.label_, "text": e.text,
                                "score": pytest.approx(float(score), abs=1e-6)}
                               for e, score in zip(doc.ents, doc.spans["bilstm_crf_ner"].attrs["scores"])]
    assert row["entities"] and all(0.0 <= e["score"] <= 1.0 for e in row["entities"])
    assert "nothing: no such pipeline folder" in cli("predict", tmp_path / "nothing", deploy, tmp_path / "o.jsonl",
                                                     ok=False)
    assert "Can't find model" in cli("predict", "no_such_package", deploy, tmp_path / "o.jsonl", ok=False)  # spaCy's


def test_predict_to_brat_with_score_notes(model, tmp_path):
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    (deploy / "a.txt").write_text("Who is Shaka Khan? I like London and Berlin.")
    cli("predict", model, deploy, tmp_path / "out", "--score-notes")
    lines = (tmp_path / "out" / "a.ann").read_text().splitlines()
    entities = [line.split("\t")[0] for line in lines if line.startswith("T")]
    notes = [line.split("\t") for line in lines if line.startswith("#")]
    assert len(entities) >= 2 and [n[1] for n in notes] == [f"AnnotatorNotes {t}" for t in entities]
    assert all(0.0 <= float(n[2].split()[1]) <= 1.0 for n in notes)
    out = cli("convert", tmp_path / "out", tmp_path / "back.spacy")  # notes are kept for the next round
    assert "Read 1 document" in out
    (back,) = DocBin().from_disk(tmp_path / "back.spacy").get_docs(spacy.blank("en").vocab)
    assert [e.text for e in back.ents] == [line.split("\t")[2] for line in lines if line.startswith("T")]
    assert list(back.user_data["brat"]["ann"]) == (tmp_path / "out" / "a.ann").read_text().splitlines(True)


def test_an_output_never_replaces_an_input(model, tmp_path):
    gold = tmp_path / "gold.iob"
    gold.write_text("Shaka B-PERSON\nKhan I-PERSON\nlives O\nin O\nLondon B-GPE\n\n")
    before = gold.read_bytes()
    for args in (("convert", gold, gold, "--out-scheme", "BILUO"), ("predict", model, gold, gold),
                 ("evaluate", model, gold, "--output", gold), ("analyze", model, gold, "--output", gold),
                 ("visualize", model, gold, gold)):
        assert "is the input too" in cli(*args, ok=False), args
        assert gold.read_bytes() == before, args
    brat = tmp_path / "brat"
    cli("convert", gold, brat)
    assert "is the input too" in cli("predict", model, brat, brat, ok=False)


def test_predict_into_a_folder_of_annotations_needs_overwrite(model, tmp_path):
    """The NeuroNER loop: predictions corrected in BRAT are not replaced by the
    next predict into the same folder unless asked."""
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("Who is Shaka Khan?")
    (tmp_path / "texts" / "b.txt").write_text("I like London.")
    cli("predict", model, tmp_path / "texts", tmp_path / "out")
    corrected = "T1\tPERSON 7 17\tShaka Khan\nT2\tGPE 0 3\tWho\n"
    (tmp_path / "out" / "a.ann").write_text(corrected)
    out = cli("predict", model, tmp_path / "texts", tmp_path / "out", ok=False)
    assert f"{tmp_path / 'out' / 'a.ann'}: exists (2 of the 4 .ann/.txt files to write do)" in out
    assert "--overwrite" in out
    assert (tmp_path / "out" / "a.ann").read_text() == corrected
    cli("convert", tmp_path / "out", tmp_path / "copy")
    assert "exists" in cli("convert", tmp_path / "out", tmp_path / "copy", ok=False)
    cli("predict", model, tmp_path / "texts", tmp_path / "out", "--overwrite")
    assert (tmp_path / "out" / "a.ann").read_text() != corrected


def test_nothing_the_user_had_is_replaced_without_overwrite(model, tmp_path):
    """Every output path that holds something (a file of any format, a text
    of the same name in a BRAT folder, the BRAT folder of a record job, the
    errors file beside a single output file, a pipeline folder) is kept unless
    --overwrite, and an input is never replaced, not even with it."""
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("Who is Shaka Khan?")
    rows = tmp_path / "in.jsonl"
    rows.write_text('{"id": "a", "text": "Who is Shaka Khan?"}\n')
    gold = tmp_path / "gold.iob"
    gold.write_text("Who O\nis O\nShaka B-PERSON\nKhan I-PERSON\n\n")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "a.txt").write_text("My own text, to annotate.")
    (mine / "b.ann").write_text("T1\tPERSON 0 2\tMy\n")
    kept = {p: p.read_bytes() for p in [rows, gold, mine / "a.txt", mine / "b.ann"]}
    for args in [("predict", model, texts, gold), ("convert", rows.with_suffix(".spacy"), gold),
                 ("predict", model, texts, mine), ("predict", model, rows, mine, "--to", "brat"),
                 ("predict", model, texts, mine, "--engine", "ray", "--workers", "1")]:
        if args[1] == rows.with_suffix(".spacy"):
            cli("convert", gold, rows.with_suffix(".spacy"))
        assert "--overwrite" in cli(*args, ok=False), args
    assert {p: p.read_bytes() for p in kept} == kept
    # the errors file of out.jsonl is out.errors.jsonl: as the input, refused even with --overwrite
    named = tmp_path / "out.errors.jsonl"
    named.write_bytes(rows.read_bytes())
    assert "is the input too" in cli("predict", model, named, tmp_path / "out.jsonl", "--overwrite", ok=False)
    assert named.read_bytes() == rows.read_bytes()
    # init-vectors does not replace a trained pipeline
    assert "--overwrite" in cli("init-vectors", model, ok=False)
    assert (model / "bilstm_crf_ner").is_dir()


def test_brat_names_never_collide(model, tmp_path):
    """Names made safe for files ("x y" -> "x_y...") stay apart from the names
    that were safe already, across the partitions of a record job too."""
    texts = tmp_path / "texts"
    texts.mkdir()
    for name, text in [("x y", "first"), ("x_y", "second"), ("x_y-000002", "third")]:
        (texts / f"{name}.txt").write_text(text)
    cli("predict", model, texts, tmp_path / "out")
    assert sorted(p.read_text() for p in (tmp_path / "out").glob("*.txt")) == ["first", "second", "third"]
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"id": "a b", "text": "Who is Shaka Khan?"}\n{"id": "a_b", "text": "I like London."}\n')
    cli("predict", model, rows, tmp_path / "out2", "--to", "brat", "--partition-size", "1")
    assert sorted(p.read_text() for p in (tmp_path / "out2").glob("*.txt")) == ["I like London.", "Who is Shaka Khan?"]
    # ids 1 and "1" would share 1.txt: in BRAT the second is a duplicate; an id
    # too long for a file name is cut and hashed
    long_id = "é" * 300
    rows.write_text('{"id": 1, "text": "Who is Shaka Khan?"}\n{"id": "1", "text": "I like London."}\n' +
                    json.dumps({"id": long_id, "text": "Paris"}) + "\n")
    out = cli("predict", model, rows, tmp_path / "out3", "--to", "brat", "--partition-size", "1")
    assert "1 row could not be labelled" in out
    assert (tmp_path / "out3" / "1.txt").read_text() == "Who is Shaka Khan?"
    (error,) = [json.loads(p.read_text()) for p in (tmp_path / "out3").glob("*.errors.jsonl")]
    assert error["id"] == "1" and error["error"].startswith("duplicate id")
    (long_txt,) = [p for p in (tmp_path / "out3").glob("*.txt") if p.name.startswith("é")]
    assert long_txt.read_text() == "Paris" and len(long_txt.name.encode()) <= 255
    deep = "d/" * 3000 + "x"  # a path too long in all, though each part is short
    (tmp_path / "deep.jsonl").write_text(json.dumps({"id": deep, "text": "Rome"}) + "\n")
    cli("predict", model, tmp_path / "deep.jsonl", tmp_path / "out4", "--to", "brat")
    (deep_txt,) = (tmp_path / "out4").glob("x-*.txt")
    assert deep_txt.read_text() == "Rome"
    cli("predict", model, rows, tmp_path / "o.jsonl")  # in JSONL, 1 and "1" are two ids
    assert [json.loads(line)["id"] for line in (tmp_path / "o.jsonl").read_text().splitlines()] == [1, "1", long_id]


def test_raw_text_ending_in_words_shaped_like_tags_is_labelled_whole(model, tmp_path):
    (tmp_path / "note.txt").write_text("Angela Merkel took the S-Bahn\n")
    cli("predict", model, tmp_path / "note.txt", tmp_path / "out")
    assert (tmp_path / "out" / "note.txt").read_text() == "Angela Merkel took the S-Bahn\n"


def test_outputs_that_would_destroy_inputs_or_cannot_be_written_are_refused(model, tmp_path):
    """Before any work: an output in the model's folder or in an input folder,
    below a file, or a folder given for a file (and a file for a folder)."""
    gold = tmp_path / "gold.iob"
    gold.write_text("Angela B-PERSON\nMerkel I-PERSON\nflew O\n\n")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir.spacy").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("Who is Shaka Khan?")
    config = (model / "config.cfg").read_bytes()
    for args, says in [
        (("evaluate", model, gold, "-o", model / "config.cfg"), "is inside the model folder"),
        (("analyze", model, gold, "-o", model / "meta.json"), "is inside the model folder"),
        (("visualize", model, gold, model / "page.html"), "is inside the model folder"),
        (("predict", model, tmp_path / "texts", tmp_path / "texts" / "out"), "is inside the input folder"),
        (("convert", tmp_path / "texts", tmp_path / "texts" / "o.spacy"), "is inside the input folder"),
        (("convert", gold, tmp_path / "afile" / "out.spacy"), "afile: is a file, so"),
        (("evaluate", model, gold, "--plots", tmp_path / "afile"), "is a file: give the path of a folder"),
        (("convert", gold, tmp_path / "adir.spacy", "--overwrite"), "is a folder: give the path of a file"),
    ]:
        assert says in cli(*args, ok=False), args
    assert (model / "config.cfg").read_bytes() == config and not (model / "page.html").exists()
    assert not (tmp_path / "texts" / "out").exists()
    # a report inside an input folder is no input of a later run: written
    assert "Wrote" in cli("visualize", model, tmp_path / "texts", tmp_path / "texts" / "page.html")


def test_predict_on_annotated_brat_drops_what_refers_to_the_old_entities(model, tmp_path):
    """A relation, attribute or note of the input's entities must not end up on
    a predicted entity that happens to get the same id."""
    gold = tmp_path / "gold"
    gold.mkdir()
    (gold / "d.txt").write_text("Angela Merkel flew to Paris on Monday.")
    (gold / "d.ann").write_text("T1\tGPE 22 27\tParis\nT2\tPERSON 0 13\tAngela Merkel\nR1\tVisits Arg1:T2 Arg2:T1\n"
                                "A1\tCapital T1\n#1\tAnnotatorNotes T2\tchancellor\n")
    out = cli("predict", model, gold, tmp_path / "out")
    assert "3 annotation lines of the input other than entities" in out
    lines = (tmp_path / "out" / "d.ann").read_text().splitlines()
    assert lines and all(line.startswith("T") for line in lines)


def test_convert_overwrite_leaves_no_old_ann_beside_a_new_text(tmp_path):
    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / "a.txt").write_text("Totally different words here")
    (tmp_path / "s2").mkdir()
    (tmp_path / "s2" / "a.txt").write_text("Ada Lovelace")
    (tmp_path / "s2" / "a.ann").write_text("T1\tPER 4 12\tLovelace\n")
    assert "--overwrite" in cli("convert", tmp_path / "s1", tmp_path / "s2", ok=False)
    cli("convert", tmp_path / "s1", tmp_path / "s2", "--overwrite")
    assert (tmp_path / "s2" / "a.txt").read_text() == "Totally different words here"
    assert not (tmp_path / "s2" / "a.ann").exists()


def test_paths_that_cannot_be_read_or_written_are_named(model, tmp_path):
    data = tmp_path / "dev.data"
    data.write_text("London B-GPE\n\n")
    out = cli("evaluate", model, data, ok=False)
    assert f"{data}: cannot tell the format of this path: name it as a CoNLL file (" in out and "--from" not in out
    assert "pass --from conll|brat|spacy" in cli("convert", data, tmp_path / "x.spacy", ok=False)
    assert "no such file or folder" in cli("predict", model, tmp_path / "missing.jsonl", tmp_path / "o.jsonl", ok=False)
    assert "no such file or folder" in cli("visualize", model, tmp_path / "missing.txt", tmp_path / "p.html", ok=False)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Ada\nCaf\u00e9 in M\u00fcnchen.\n".encode("latin-1"))
    for command in ("visualize", "predict"):
        out = cli(command, model, latin, tmp_path / ("o.html" if command == "visualize" else "o"), ok=False)
        assert f"{latin}:2: cannot decode byte b'\\xe9' as utf-8" in out and "--encoding" in out
    (tmp_path / "conll").mkdir()
    (tmp_path / "conll" / "train.iob").write_text("London B-GPE\n\n")
    (tmp_path / "conll" / "README.md").write_text("not data\n")
    assert "no .txt files (texts" in cli("convert", tmp_path / "conll", tmp_path / "c.spacy", ok=False)
    out = cli("convert", tmp_path / "conll", tmp_path / "c.spacy", "--from", "conll")  # README.md is not read
    assert "Read 1 document, 1 sentence, 1 entity" in out
    (tmp_path / "empty").mkdir()
    assert "no CoNLL files" in cli("convert", tmp_path / "empty", tmp_path / "e.spacy", "--from", "conll", ok=False)
    conll = tmp_path / "conll" / "train.iob"
    out = cli("convert", conll, tmp_path / "o.parquet", "--to", "parquet", ok=False)
    assert "cannot write the format 'parquet' here: use one of conll, brat, spacy, jsonl." in out
    out = cli("convert", conll, tmp_path / "o.parquet", ok=False)
    assert "convert writes spacy, conll, brat or jsonl" in out and not (tmp_path / "o.parquet").exists()
    (tmp_path / "notmodel").mkdir()
    for command in (("evaluate",), ("predict",)):
        out = cli(*command, tmp_path / "notmodel", conll, *([tmp_path / "o"] if command[0] == "predict" else []),
                  ok=False)
        assert f"{tmp_path / 'notmodel'}: not a spaCy pipeline (no config.cfg)" in out
    assert "is a file" in cli("init-vectors", data, ok=False)
    spacy.blank("en").to_disk(tmp_path / "blank")
    assert "no component of this pipeline has entity labels" in cli("evaluate", tmp_path / "blank", conll)


def test_evaluate_training_log_errors_name_the_file(model, tmp_path):
    gold = tmp_path / "gold.iob"
    gold.write_text("Shaka B-PERSON\nKhan I-PERSON\n\n")
    log = tmp_path / "log.jsonl"
    assert "--log is drawn as the learning curve: pass --plots" in cli("evaluate", model, gold, "--log", log, ok=False)
    assert f"{log}: no such training log" in cli("evaluate", model, gold, "--plots", tmp_path / "p", "--log", log,
                                                 ok=False)
    log.write_text('{"step": 0, "scores": {"ents_f": 10.0}, "losses": {"ner": 1.0}}\n{"step": 1, oops\n')
    assert f"{log}:2: not a JSON line" in cli("evaluate", model, gold, "--plots", tmp_path / "p", "--log", log,
                                              ok=False)
    assert not (tmp_path / "p").exists()  # a bad log fails before anything is written
    log.write_text('{"step": 0, "scores": {"ents_f": 10.0}, "losses": {"ner": 1.0}}\n'
                   '{"step": 5, "scores": {"ents_f": 100.0}, "losses": {"ner": 0.1}}\n')
    assert "learning_curve.png" in cli("evaluate", model, gold, "--plots", tmp_path / "p", "--log", log)


def test_evaluate_writes_a_displacy_page_of_its_predictions(model, tmp_path):
    """`spacy evaluate --displacy-path` draws entities only for spaCy's `ner`
    factory; ours draws the predictions of the first --displacy-limit docs."""
    nlp = spacy.load(model)
    texts = ["Who is Shaka Khan?", "I like London and Berlin.", "Angela Merkel flew to Paris on Monday."]
    gold = []
    for text in texts:
        doc = nlp.make_doc(text)
        doc.ents = [Span(doc, 0, 1, "ORG")]  # not what the model predicts
        gold.append(doc)
    DocBin(docs=gold).to_disk(tmp_path / "gold.spacy")
    out = cli("evaluate", model, tmp_path / "gold.spacy", "--displacy-path", tmp_path / "page", "--displacy-limit", 2)
    assert "the predicted entities of 2 documents" in out
    page = (tmp_path / "page" / "entities.html").read_text()
    predicted = [ent for doc in nlp.pipe(texts[:2]) for ent in doc.ents]
    assert predicted and page.count("<mark") == len(predicted)
    for ent in predicted:
        assert ent.text in page
    assert "Paris" not in page  # the third doc is past the limit


def test_labels_that_could_not_be_read_back_are_not_written(tmp_path):
    nlp = spacy.blank("en")
    docs = [nlp("Ada Lovelace met Bob"), nlp("Bob met Ada")]
    docs[1].ents = [Span(docs[1], 2, 3, "MY LABEL")]
    DocBin(docs=docs).to_disk(tmp_path / "odd.spacy")
    for out in ("odd_brat", "odd.conll"):
        message = cli("convert", tmp_path / "odd.spacy", tmp_path / out, ok=False)
        assert "'MY LABEL', which holds whitespace" in message and not (tmp_path / out).exists(), message


def test_interact_skips_a_line_that_is_not_utf8(model):
    result = subprocess.run([sys.executable, "-m", "spacy_bilstm_crf", "interact", str(model), "--jsonl"],
                            input="Who is Shaka Khan?\nCaf\xe9 in Paris\nI like London.\n".encode("latin-1"),
                            capture_output=True)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == ["Who is Shaka Khan?", "I like London."]
    assert "stdin line 2: not UTF-8 text" in result.stderr.decode()


def test_evaluate_says_what_it_read_and_refuses_data_without_annotation(model, tmp_path):
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("Who is Shaka Khan?")
    (texts / "empty.txt").write_text("")  # no tokens: no annotation to score against either
    assert "holds no entity annotation" in cli("evaluate", model, texts, ok=False)
    (texts / "a.ann").write_text("T1\tPERSON 7 17\tShaka Kahn\n")
    out = cli("evaluate", model, texts)
    assert f"{texts / 'a.ann'}:1: text of T1 differs from the .txt" in out
    repaired = tmp_path / "gold.iob"
    repaired.write_text("Who O\nis O\nShaka B-PERSON\nKhan I-PERSON\nand O\nLondon I-LOC\n\n")
    assert "lenient repair" in cli("analyze", model, repaired)


def test_damaged_inputs_and_unknown_encodings_are_named(model, tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    assert f"{bad}: not a readable Parquet file" in cli("predict", model, bad, tmp_path / "o.jsonl", ok=False)
    text = tmp_path / "a.txt"
    text.write_text("Who is Shaka Khan?")
    for args in [("predict", model, text, tmp_path / "o"), ("visualize", model, text, tmp_path / "p.html")]:
        assert f"{text}: unknown encoding 'foo'" in cli(*args, "--encoding", "foo", ok=False), args
    damaged = tmp_path / "damaged"
    shutil.copytree(model, damaged)
    (damaged / "bilstm_crf_ner" / "model").write_bytes(b"garbage")
    assert f"{damaged}: cannot load this pipeline" in cli("predict", damaged, text, tmp_path / "o2", ok=False)


def test_texts_longer_than_spacys_max_length_are_read(tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "huge.txt").write_text("word " * 220_000)
    (folder / "huge.ann").write_text("T1\tX 0 4\tword\n")
    assert "wrote 1 document, 1 entity" in cli("convert", folder, tmp_path / "big.spacy")


def test_what_the_output_format_cannot_hold_is_counted(tmp_path):
    folder = tmp_path / "allk"
    folder.mkdir()
    (folder / "d.txt").write_text("Ada Lovelace met Bob")
    (folder / "d.ann").write_text("T1\tPER 0 12\tAda Lovelace\nT2\tPER 17 20\tBob\nT3\tMeet 13 16\tmet\n"
                                  "E1\tMeet:T3 A:T1 B:T2\nR1\tKnows Arg1:T1 Arg2:T2\nA1\tNeg T1\n")
    assert "4 x BRAT annotation lines other than the entities" in cli("convert", folder, tmp_path / "a.conll")
    assert "BRAT annotation lines" not in cli("convert", folder, tmp_path / "a.spacy")  # the DocBin keeps them
    tagged = tmp_path / "pos.iob"
    tagged.write_text("-DOCSTART- -X- O\n\nAda NNP B-PER\nLovelace NNP I-PER\n\n")
    said = cli("convert", tagged, tmp_path / "pos.jsonl")
    assert "1 x documents written without their -DOCSTART- line or other CoNLL columns, which jsonl" in said


def test_a_conll_txt_with_a_bad_tag_is_read_as_conll_and_named(model, tmp_path):
    typo = tmp_path / "typo.txt"
    typo.write_text("Who O\nis O\nShaka B_PERSON\nKhan I-PERSON\n\n")
    assert f"{typo}:3: invalid entity tag 'B_PERSON'" in cli("predict", model, typo, tmp_path / "out", ok=False)


def test_a_new_users_mistakes_are_refused_with_what_to_do(model, tmp_path):
    """Found by following the README as a new user: a report written over a
    file of an input folder, records named like CoNLL or a DocBin, a format
    given that the file plainly is not, a model path that is a file or
    missing, Parquet without pyarrow, a GPU without CuPy."""
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("Who is Shaka Khan?")
    (tmp_path / "gold.iob").write_text("Shaka B-PERSON\nKhan I-PERSON\n\n")
    cli("convert", tmp_path / "gold.iob", tmp_path / "gold_brat", "--to", "brat")
    ann = (tmp_path / "gold_brat" / "doc000000.ann").read_bytes()
    for args in (("visualize", model, texts, texts / "a.txt"), ("evaluate", model, tmp_path / "gold_brat", "--output",
                 tmp_path / "gold_brat" / "doc000000.ann"), ("analyze", model, tmp_path / "gold_brat", "--output",
                 tmp_path / "gold_brat" / "doc000000.txt")):
        assert "of a kind read as input: writing the output there would replace it" in cli(*args, ok=False)
    assert (texts / "a.txt").read_text() == "Who is Shaka Khan?"
    assert (tmp_path / "gold_brat" / "doc000000.ann").read_bytes() == ann
    cli("evaluate", model, tmp_path / "gold_brat", "--output", tmp_path / "gold_brat" / "scores.json")  # a new file
    # records go to JSONL, Parquet or BRAT only
    (tmp_path / "in.jsonl").write_text('{"id": 1, "text": "Who is Shaka Khan?"}\n')
    for out, extra in (("o.iob", ()), ("o.spacy", ()), ("o", ("--to", "spacy"))):
        said = cli("predict", model, tmp_path / "in.jsonl", tmp_path / out, *extra, ok=False)
        assert "are written as jsonl, parquet or brat" in said and not (tmp_path / out).exists()
    # a format given that the file is not
    cli("convert", tmp_path / "gold.iob", tmp_path / "gold.spacy")
    assert "--from brat reads a folder of NAME.txt" in cli("convert", tmp_path / "gold.iob", tmp_path / "x.spacy",
                                                           "--from", "brat", ok=False)
    said = cli("convert", tmp_path / "gold.spacy", tmp_path / "x.iob", "--from", "conll", ok=False)
    assert "is a spaCy DocBin by its name, not conll: pass --from spacy, or leave --from out." in said
    # model paths
    said = cli("predict", model / "config.cfg", texts, tmp_path / "p", ok=False)
    assert "config.cfg: is a file: pass the pipeline's folder" in said
    assert "no such pipeline folder" in cli("evaluate", tmp_path / "nope" / "model-best", tmp_path / "gold.iob",
                                             ok=False)
    # Parquet without pyarrow, a GPU without CuPy: the extra to install
    blocked = ("import sys; sys.modules['pyarrow'] = sys.modules['pyarrow.parquet'] = None; "
               "from spacy_bilstm_crf.__main__ import app; app(sys.argv[1:])")
    result = subprocess.run([sys.executable, "-c", blocked, "predict", str(model), str(texts),
                             str(tmp_path / "o.parquet")], capture_output=True, text=True)
    assert result.returncode != 0 and "pip install 'spacy-bilstm-crf[parquet]'" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "o.parquet").exists()
    if importlib.util.find_spec("cupy") is None:
        said = cli("predict", model, texts, tmp_path / "g", "--gpu-id", "0", ok=False)
        assert "--gpu-id: Cannot use GPU, CuPy is not installed: pip install 'spacy-bilstm-crf[cuda12x]'" in said
