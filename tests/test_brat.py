"""BRAT standoff: exact round trips (real corpora and tricky generated files)
and clear errors at file:line."""
import pytest
import spacy
from spacy.tokens import DocBin

from spacy_bilstm_crf.errors import FormatError
from spacy_bilstm_crf.formats.brat import (BratStats, ann_lines, find_documents, read_brat, safe_name,
                                         write_annotation_conf, write_brat)

from .helpers import DATASETS

BRAT_CORPORA = ["NCBI-disease", "CoNLL-ST_2002-esp", "CoNLL-ST_2002-ned"]


@pytest.fixture
def nlp():
    return spacy.blank("en")


def round_trip(nlp, root, out):
    """brat -> DocBin bytes -> brat; returns the docs read."""
    stats = BratStats()
    docs = [read_brat(p, nlp, root=root, stats=stats) for p in find_documents(root)]
    data = DocBin(docs=docs, store_user_data=True).to_bytes()
    for doc in DocBin().from_bytes(data).get_docs(nlp.vocab):
        write_brat(doc, out)
    return docs, stats


def same_files(a, b, suffixes=(".txt", ".ann")):
    for path in sorted(a.rglob("*")):
        if path.suffix in suffixes:
            assert path.read_bytes() == (b / path.relative_to(a)).read_bytes(), path


@pytest.mark.parametrize("corpus", BRAT_CORPORA)
def test_corpus_round_trip(corpus, nlp, tmp_path):
    root = DATASETS / "brat" / corpus
    if not root.exists():
        pytest.skip(f"{root} not found")
    docs, stats = round_trip(nlp, root, tmp_path)
    same_files(root, tmp_path)
    n_t_lines = sum(1 for p in root.glob("*.ann") for line in p.read_text().splitlines() if line.startswith("T"))
    assert stats.entities + sum(stats.notes.values()) >= n_t_lines > 0
    for doc in docs:  # every entity keeps its exact offsets
        for line in doc.user_data["brat"]["ann"]:
            if line.startswith("T"):
                _, label_offsets, text = line.rstrip("\n").split("\t")
                label, start, end = label_offsets.split()
                assert doc.char_span(int(start), int(end)) is not None


TRICKY_TXT = "Dr.Smith  met\r\nJürgen Müller in São Paulo 😀.\r\nIBM-owned firms\n"
TRICKY_ANN = (
    "T1\tPER 3 8\tSmith\n"  # starts inside the token "Dr.Smith"
    "T2\tPER 15 28\tJürgen Müller\n"
    "T3\tPER 15 21\tJürgen\n"  # overlaps T2
    "T4\tLOC 32 41\tSão Paulo\n"
    "T5\tORG 46 49;50 55\tIBM owned\n"  # discontinuous
    "T6\tMISC 8 10\t  \n"  # whitespace between tokens
    "T7\tMeet 10 13\tmet\n"
    "E1\tMeet:T7 Agent:T1 Other:T2\n"
    "R1\tKnows Arg1:T1 Arg2:T2\n"
    "A1\tNegated E1\n"
    "M1\tSpeculation E1\n"
    "N1\tReference T4 Wikipedia:123\tSão Paulo\n"
    "#1\tAnnotatorNotes T1\tcheck the title\n"
    "*\tEquiv T2 T3\n"
    "\n"
    "T8\tORG 46 49\tIBM\r\n"
)


def make_corpus(root, txt=TRICKY_TXT, ann=TRICKY_ANN, name="sub/doc.one"):
    path = root / f"{name}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(txt.encode("utf8"))
    if ann is not None:
        (root / f"{name}.ann").write_bytes(ann.encode("utf8"))
    return path


def test_tricky_round_trip(nlp, tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    make_corpus(src)
    (doc,), stats = round_trip(nlp, src, out)
    same_files(src, out)
    assert doc.text == TRICKY_TXT
    ents = [(e.start_char, e.end_char, e.label_) for e in doc.ents]
    # T2 is longer than T3; T7 is an event trigger; T5 is discontinuous
    assert ents == [(3, 8, "PER"), (8, 10, "MISC"), (15, 28, "PER"), (32, 41, "LOC"), (46, 49, "ORG")]
    assert len(doc.spans["brat"]) == 6  # every contiguous entity, overlaps included
    assert stats.notes["overlapping entities kept out of doc.ents (in doc.spans['brat'])"] == 1
    assert stats.notes["discontinuous entities kept out of doc.ents"] == 1


def test_bom_is_a_character(nlp, tmp_path):
    txt = "\ufeffAda Lovelace"
    make_corpus(tmp_path, txt, "T1\tPER 1 13\tAda Lovelace\n", name="bom")
    doc = read_brat(tmp_path / "bom.txt", nlp, root=tmp_path)
    assert doc.ents[0].text == "Ada Lovelace"
    out = tmp_path / "out"
    write_brat(doc, out)
    assert (out / "bom.txt").read_bytes() == txt.encode("utf8")


def test_changed_entities_are_written_with_new_ids(nlp, tmp_path):
    make_corpus(tmp_path)
    doc = read_brat(tmp_path / "sub/doc.one.txt", nlp, root=tmp_path)
    doc.set_ents([doc.char_span(3, 8, "PER"), doc.char_span(46, 55, "ORG", alignment_mode="expand")])
    ids = [line.split("\t")[0] for line in ann_lines(doc)]
    # gone: T6 and T8 (no longer entities, nothing refers to them); kept: T1
    # (still an entity), T2 and T4 (other lines refer to them); new: T9
    assert [i for i in ids if i.startswith("T")] == ["T1", "T2", "T3", "T4", "T5", "T7", "T9"]
    assert ann_lines(doc)[-1] == "T9\tORG 46 55\tIBM-owned\n"


def test_text_differing_from_offsets_is_a_warning_with_line(nlp, tmp_path):
    make_corpus(tmp_path, "Ada Lovelace", "T1\tPER 0 3\tAda\nT2\tPER 4 12\tBabbage\n", name="d")
    stats = BratStats()
    doc = read_brat(tmp_path / "d.txt", nlp, root=tmp_path, stats=stats)
    assert len(doc.ents) == 2  # the offsets are kept
    (note,) = stats.notes
    assert note.startswith(f"{tmp_path / 'd.ann'}:2: text of T2 differs")


@pytest.mark.parametrize(
    "ann,line,message",
    [
        ("T1\tPER 0 3\tAda\nT2 PER 0 3 Ada\n", 2, "cannot read this T-line"),
        ("T1\tPER 0 30\tAda\n", 1, "outside the text"),
        ("T1\tPER 5 3\tAda\n", 1, "outside the text"),
        ("T1\tPER 0 3\tAda\nT1\tPER 4 12\tLovelace\n", 2, "id T1 is used again (first on line 1)"),
        ("X1\tfoo\n", 1, "unknown annotation line"),
        ("T1\tPER 0 3\tAda\nR1\t\n", 2, "cannot read this R-line"),
        ("T1\tPER 0 0\t\n", 1, "is empty"),
        ("T1\tPER 3 3;4 12\tLovelace\n", 1, "is empty"),  # every fragment is checked
        ("T1\tPER 0 3\tAda\nR1\tKnows\n", 2, "cannot read this R-line"),
    ],
)
def test_bad_ann_fails_at_file_and_line(ann, line, message, nlp, tmp_path):
    make_corpus(tmp_path, "Ada Lovelace", ann, name="d")
    with pytest.raises(FormatError) as err:
        read_brat(tmp_path / "d.txt", nlp, root=tmp_path)
    assert err.value.line == line and message in str(err.value)
    assert str(err.value).startswith(f"{tmp_path / 'd.ann'}:{line}:")


def test_labels_with_whitespace_are_refused(nlp, tmp_path):
    doc = nlp("Ada Lovelace")
    doc.set_ents([doc.char_span(0, 12, "MY LABEL")])
    with pytest.raises(FormatError, match=r"document 'a/d' has the entity label 'MY LABEL'"):
        write_brat(doc, tmp_path, name="a/d")
    assert not (tmp_path / "a").exists()  # nothing written


def test_ann_without_txt_and_txt_without_ann(nlp, tmp_path):
    (tmp_path / "lonely.ann").write_text("T1\tPER 0 3\tAda\n")
    with pytest.raises(FormatError, match="no .txt beside it"):
        find_documents(tmp_path)
    (tmp_path / "lonely.ann").unlink()
    make_corpus(tmp_path, "Ada Lovelace", None, name="raw")
    doc = read_brat(tmp_path / "raw.txt", nlp, root=tmp_path)
    assert not doc.has_annotation("ENT_IOB")  # unannotated, not "no entities"
    write_brat(doc, tmp_path / "out")  # and written back as it was: no .ann
    assert (tmp_path / "out" / "raw.txt").exists() and not (tmp_path / "out" / "raw.ann").exists()


def test_undecodable_text(nlp, tmp_path):
    (tmp_path / "d.txt").write_bytes(b"ok\n\xff\xfe bad")
    with pytest.raises(FormatError, match=r"d.txt:2: cannot decode .*--encoding"):
        read_brat(tmp_path / "d.txt", nlp, root=tmp_path)


@pytest.mark.parametrize(
    "name,expected",
    [("../../etc/passwd", "etc/passwd"), ("/abs/path", "abs/path"), ("a/./b", "a/b"), ("..", "doc"),
     ("ok name?", "ok_name_"), ("C:\\x\\y", "C_/x/y"), (".hidden", "hidden")],
)
def test_names_cannot_leave_the_output_folder(name, expected, nlp, tmp_path):
    assert safe_name(name) == expected
    doc = nlp("Ada")
    doc.user_data["brat"] = {"name": name}
    ann = write_brat(doc, tmp_path / "out")
    assert (tmp_path / "out") in ann.resolve().parents


def test_ann_with_bom_and_dangling_references(nlp, tmp_path):
    ann = "\ufeffT1\tPER 0 3\tAda\nR1\tKnows Arg1:T1 Arg2:T9\n"
    make_corpus(tmp_path / "src", "Ada Lovelace", ann, name="d")
    stats = BratStats()
    doc = read_brat(tmp_path / "src" / "d.txt", nlp, root=tmp_path / "src", stats=stats)
    assert [e.text for e in doc.ents] == ["Ada"]
    (note,) = stats.notes
    assert note.startswith(f"{tmp_path / 'src' / 'd.ann'}: references to ids with no annotation line (T9)")
    write_brat(doc, tmp_path / "out")
    assert (tmp_path / "out" / "d.ann").read_bytes() == ann.encode("utf8")


def test_annotation_conf_keeps_the_source_declarations(tmp_path):
    source = tmp_path / "src.conf"
    source.write_text("[entities]\n\nDisease\n\tSpecificDisease\n!Abstract\n\n[attributes]\n\n"
                      "Category Arg:Disease, Value:A|B\n\n[relations]\n[events]\n", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    write_annotation_conf(out, {"Disease", "Gene", "Abstract"}, source=source)
    lines = (out / "annotation.conf").read_text(encoding="utf-8").splitlines()
    # the new label joins the entity section; the hierarchy and attributes stay as written
    assert lines[:6] == ["[entities]", "", "Disease", "\tSpecificDisease", "!Abstract", "Gene"]
    assert "Category Arg:Disease, Value:A|B" in lines
    # no [entities] section in the source: one is made, first
    source.write_text("[attributes]\nNegated Arg:<ENTITY>\n", encoding="utf-8")
    (out / "annotation.conf").unlink()
    write_annotation_conf(out, {"Gene"}, source=source)
    assert (out / "annotation.conf").read_text(encoding="utf-8") == ("[entities]\nGene\n\n[attributes]\n"
                                                                     "Negated Arg:<ENTITY>\n")
    # an existing annotation.conf in the output folder is never replaced
    write_annotation_conf(out, {"Other"}, source=None)
    assert "Other" not in (out / "annotation.conf").read_text(encoding="utf-8")
