"""CoNLL reading and writing: real corpora round-trip byte for byte, every
scheme decodes to the same entities, and bad files fail at file:line."""

import pytest
import spacy
from spacy.tokens import Doc, Span

from spacy_bilstm_crf.errors import FormatError
from spacy_bilstm_crf.formats.conll import (ReadStats, detect_scheme, looks_tagged, read_conll, tags_to_spans,
                                          write_conll)

from .helpers import DATASETS

CORPORA = [
    "conll2003/train.txt", "conll2003/valid.txt", "conll2003/test.txt",
    "bio/BC2GM-IOB/train.tsv", "bio/BC2GM-IOB/devel.tsv", "bio/BC2GM-IOB/test.tsv",
    "bio/NCBI-disease-IOB/train.tsv", "bio/NCBI-disease-IOB/devel.tsv", "bio/NCBI-disease-IOB/test.tsv",
]


@pytest.fixture
def vocab():
    return spacy.blank("en").vocab


def write(tmp_path, text, name="data.conll", mode="w"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf8")
    return path


@pytest.mark.parametrize("corpus", CORPORA)
def test_corpus_round_trip_is_byte_identical(corpus, vocab):
    path = DATASETS / corpus
    if not path.exists():
        pytest.skip(f"{path} not found")
    stats = ReadStats()
    docs = read_conll(path, vocab, stats=stats)
    assert stats.scheme == "IOB2" and not stats.repairs
    text, changes = write_conll(docs)
    assert not changes
    assert text == path.read_text(encoding="utf8")


def test_windows_line_ends_and_a_byte_order_mark_are_written_back(vocab, tmp_path):
    data = "\ufeff-DOCSTART- -X- O\r\n\r\nAda\tB-PER\r\nLovelace\tI-PER\r\n\r\nParis\tB-LOC\r\n\r\n".encode("utf8")
    path = write(tmp_path, data)
    docs = read_conll(path, vocab, n_sents=1)
    assert [[(e.text, e.label_) for e in d.ents] for d in docs] == [[("Ada Lovelace", "PER")], [("Paris", "LOC")]]
    text, _ = write_conll(docs)
    assert text.encode("utf8") == data
    assert write_conll(docs[1:])[0] == "Paris\tB-LOC\r\n\r\n"  # the mark only heads the file's first doc


def test_conll2003_test_entity_count(vocab):
    path = DATASETS / "conll2003" / "test.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    stats = ReadStats()
    docs = read_conll(path, vocab, n_sents=0, stats=stats)
    assert sum(len(d.ents) for d in docs) == stats.entities == 5648
    assert stats.sentences == 3453 and stats.tokens == 46435
    assert len(docs) == 231  # one per -DOCSTART- document with n_sents=0


SAME_ENTITIES = {
    "IOB2": ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "O", "B-ORG"],
    "IOB1": ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "O", "I-ORG"],
    "BIOES": ["B-PER", "E-PER", "O", "S-LOC", "B-LOC", "E-LOC", "O", "S-ORG"],
    "BILUO": ["B-PER", "L-PER", "O", "U-LOC", "B-LOC", "L-LOC", "O", "U-ORG"],
}
WORDS = ["Ada", "Lovelace", "in", "Paris", "New", "York", "and", "UNESCO"]
EXPECTED = [(0, 2, "PER"), (3, 4, "LOC"), (4, 6, "LOC"), (7, 8, "ORG")]


@pytest.mark.parametrize("scheme", list(SAME_ENTITIES))
def test_schemes_detected_decoded_and_written_back(scheme, vocab, tmp_path):
    tags = SAME_ENTITIES[scheme]
    path = write(tmp_path, "".join(f"{w} NNP {t}\n" for w, t in zip(WORDS, tags)) + "\n")
    stats = ReadStats()
    (doc,) = read_conll(path, vocab, stats=stats)
    assert stats.scheme == scheme and not stats.repairs
    assert [(e.start, e.end, e.label_) for e in doc.ents] == EXPECTED
    assert write_conll([doc])[0] == path.read_text()  # written in the scheme it was read in
    for other, other_tags in SAME_ENTITIES.items():
        assert [line.split()[-1] for line in write_conll([doc], scheme=other)[0].split("\n") if line] == other_tags


def test_lenient_repairs_are_counted():
    spans, repairs = tags_to_spans(["O", "I-PER", "I-PER", "I-LOC", "O"], "IOB2")
    assert spans == [(1, 3, "PER"), (3, 4, "LOC")]
    assert sum(repairs.values()) == 2
    spans, repairs = tags_to_spans(["B-PER", "O", "I-LOC", "E-LOC", "E-ORG"], "BIOES")
    assert spans == [(0, 1, "PER"), (2, 4, "LOC"), (4, 5, "ORG")]
    assert sum(repairs.values()) == 3  # B- not closed, I- after O, E- without B-
    assert detect_scheme([["I-PER", "O", "I-LOC", "B-LOC"]]) == "IOB1"
    assert detect_scheme([["B-PER", "O", "I-LOC"]]) == "IOB2"


def test_documents_sentences_columns_and_grouping(vocab, tmp_path):
    text = "-DOCSTART- -X- O\n\n" + "a X O\nb Y B-T\n\nc Z O\n\n" * 3 + "-DOCSTART- -X- O\n\nd W I-T\n\n"
    path = write(tmp_path, text)
    docs = read_conll(path, vocab, n_sents=4)
    assert [len(list(d.sents)) for d in docs] == [4, 2, 1]
    assert docs[0].user_data["conll"]["docstart"] == "-DOCSTART- -X- O"
    assert docs[1].user_data["conll"]["docstart"] is None
    assert write_conll(docs)[0] == text.replace("d W I-T", "d W B-T")  # a lone I- is written as B-


def test_old_mac_line_ends_are_read_and_written_back(vocab, tmp_path):
    path = write(tmp_path, "Ada B-PER\rLovelace I-PER\rmet O\r\rParis B-LOC\r\r")
    (doc,) = read_conll(path, vocab)
    assert [(e.text, e.label_) for e in doc.ents] == [("Ada Lovelace", "PER"), ("Paris", "LOC")]
    assert write_conll([doc])[0].encode("utf8") == path.read_bytes()


def test_whitespace_tokens_and_entities_are_left_out_and_counted(vocab):
    doc = Doc(vocab, words=["Ada", " ", "Lovelace", " ", "met", "Bob", " "], spaces=[False] * 7)
    doc.set_ents([Span(doc, 1, 2, "MISC"), Span(doc, 3, 5, "PER"), Span(doc, 5, 7, "PER")])
    text, changes = write_conll([doc])
    # an entity that starts or ends with whitespace is tagged over its other tokens
    assert text == "Ada O\nLovelace O\nmet B-PER\nBob B-PER\n\n"
    assert changes == {"whitespace tokens left out": 3, "entities of only whitespace left out": 1}


def test_labels_with_whitespace_are_refused(vocab, tmp_path):
    doc = Doc(vocab, words=["Ada", "Lovelace"])
    doc.set_ents([Span(doc, 0, 2, "MY LABEL")])
    with pytest.raises(FormatError, match=r"^out.conll: document 2 has the entity label 'MY LABEL'"):
        write_conll([Doc(vocab, words=["a"]), doc], path="out.conll")


def test_bom_crlf_and_tabs(vocab, tmp_path):
    path = write(tmp_path, "\ufeffJohn\tB-PER\r\nSmith\tI-PER\r\n\r\n".encode("utf8"))
    (doc,) = read_conll(path, vocab)
    assert [t.text for t in doc] == ["John", "Smith"] and doc.ents[0].label_ == "PER"


def test_other_encodings(vocab, tmp_path):
    path = write(tmp_path, "Zürich B-LOC\n\n".encode("latin-1"))
    with pytest.raises(FormatError, match=r"data.conll:1: cannot decode .* --encoding"):
        read_conll(path, vocab)
    (doc,) = read_conll(path, vocab, encoding="latin-1")
    assert doc[0].text == "Zürich"
    path = write(tmp_path, "Basel B-LOC\r\rZürich B-LOC\r".encode("latin-1"))  # the line counts CR line ends
    with pytest.raises(FormatError, match=r"data.conll:3: cannot decode"):
        read_conll(path, vocab)


@pytest.mark.parametrize(
    "text,line,message",
    [
        ("a O\nb X-PER\n", 2, "invalid entity tag 'X-PER'"),
        ("a O\nb B-\n", 2, "invalid entity tag 'B-'"),
        ("a NN O\nb B-PER\n", 2, "found 2 columns, expected 3 as on line 1"),
        ("a\nb\n", 1, "no tag column"),
        ("", None, "no tokens found"),
        ("-DOCSTART- O\n\n\n", None, "no tokens found"),
        ("a O\nb Person\n", 2, "invalid entity tag 'Person'"),
        ("a O\rb X-PER\r", 2, "invalid entity tag 'X-PER'"),  # a lone CR ends a line
        ("a O\nb B-PER\x0bc O\n", 2, "holds '\\x0b' (a vertical tab"),
        ("New\u00a0York B-LOC\nis O\nbig O\n", 1, "found 3 columns, expected 2 as on line 2"),
        ("is O\n10\u00a0000 O\n", 2, "holds whitespace that looks like none: U+00A0"),
        ("a NN O\nb NN O\nc B-PER\nd NN O\n", 3, "found 2 columns, expected 3 as on line 1"),
    ],
)
def test_bad_files_fail_at_file_and_line(text, line, message, vocab, tmp_path):
    path = write(tmp_path, text)
    with pytest.raises(FormatError) as err:
        read_conll(path, vocab)
    assert err.value.line == line and message in str(err.value)
    assert str(err.value).startswith(f"{path}:{line}:" if line else f"{path}:")


def test_tag_column_option(vocab, tmp_path):
    path = write(tmp_path, "Paris B-LOC NNP\n\n")
    with pytest.raises(FormatError, match="invalid entity tag 'NNP'.*--tag-column"):
        read_conll(path, vocab)
    (doc,) = read_conll(path, vocab, tag_column=1)
    assert doc.ents[0].label_ == "LOC"
    assert write_conll([doc])[0] == "Paris B-LOC NNP\n\n"


def test_looks_tagged_tells_conll_from_raw_text_in_the_files_encoding(tmp_path):
    tagged, raw = "-DOCSTART- -X- O\n\nAda NNP B-PER\nLovelace NNP I-PER\nmet VBD O\n", "Ada Lovelace met Babbage.\n"
    for encoding in ("utf-8", "utf-16"):
        (tmp_path / "t.txt").write_bytes(tagged.encode(encoding))
        (tmp_path / "r.txt").write_bytes(raw.encode(encoding))
        assert looks_tagged(tmp_path / "t.txt", encoding) and not looks_tagged(tmp_path / "r.txt", encoding)
    # lines ending in words shaped like tags are raw text: no line ends in O,
    # and there is no -DOCSTART- line, even where the lines are of one width
    for raw in ("Angela Merkel took the S-Bahn\nShe flew a B-52\nto the I-95\n", "Angela Merkel took the S-Bahn\n",
                "Crash on I-95\nDelays on I-80\nRoadworks on I-76\n"):
        (tmp_path / "r.txt").write_text(raw)
        assert not looks_tagged(tmp_path / "r.txt"), raw
    (tmp_path / "t.txt").write_text("-DOCSTART- O\n\nAda NNP B-PER\nLovelace NNP I-PER\n\nParis NNP B-LOC\n")
    assert looks_tagged(tmp_path / "t.txt")  # no O, but a -DOCSTART- line
    (tmp_path / "e.txt").write_text("-DOCSTART- -X- O\n\n")
    assert not looks_tagged(tmp_path / "e.txt")  # no token line at all
