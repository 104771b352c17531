"""Property-based tests: random valid documents round-trip exactly through
every format; random bytes give a FormatError or a valid result, never a crash."""
import re
import tempfile
from pathlib import Path

import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.tokens import DocBin

from spacy_bilstm_crf.errors import FormatError
from spacy_bilstm_crf.formats.brat import find_documents, read_brat, write_brat
from spacy_bilstm_crf.formats.conll import read_conll, write_conll

NLP = spacy.blank("en")
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LABELS = ["PER", "LOC", "B-CELL", "X"]
word = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=8).filter(
    lambda w: w.split() == [w] and w != "-DOCSTART-")


@st.composite
def iob2_sentence(draw):
    words = draw(st.lists(word, min_size=1, max_size=12))
    tags, prev = [], "O"
    for _ in words:
        choice = draw(st.sampled_from(["O", "B", "I"]))
        if choice == "I" and prev != "O":
            tags.append("I-" + prev[2:])
        elif choice == "O":
            tags.append("O")
        else:
            tags.append("B-" + draw(st.sampled_from(LABELS)))
        prev = tags[-1]
    return words, tags


def through_docbin(docs):
    data = DocBin(docs=docs, store_user_data=True).to_bytes()
    return list(DocBin().from_bytes(data).get_docs(NLP.vocab))


@SETTINGS
@given(st.lists(iob2_sentence(), min_size=1, max_size=6), st.integers(0, 3))
def test_conll_round_trip(sents, n_sents):
    text = "".join("".join(f"{w}\t{t}\n" for w, t in zip(*s)) + "\n" for s in sents)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.conll"
        path.write_text(text, encoding="utf8")
        docs = read_conll(path, NLP.vocab, n_sents=n_sents)
    assert write_conll(through_docbin(docs))[0] == text


@st.composite
def brat_document(draw):
    pieces = draw(st.lists(st.one_of(word, st.sampled_from([" ", "  ", "\n", "\r\n", "\t", "😀", "é", "東京"])),
                           min_size=1, max_size=25))
    text = "".join(pieces)
    n = len(text)
    spans = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 6), st.sampled_from(LABELS)), max_size=8))
    lines = []
    for i, (start, length, label) in enumerate(spans):
        end = min(n, start + length)
        shown = " ".join(text[start:end].split()) or "_"
        lines.append(f"T{i + 1}\t{label} {start} {end}\t{shown}\n")
    if lines and draw(st.booleans()):
        lines.append("#1\tAnnotatorNotes T1\ta note\n")
        lines.append(f"R1\tRel Arg1:T1 Arg2:T{len(spans)}\n")
    return text, "".join(lines)


@SETTINGS
@given(brat_document())
def test_brat_round_trip(document):
    text, ann = document
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        src.mkdir()
        (src / "d.txt").write_bytes(text.encode("utf8"))
        (src / "d.ann").write_bytes(ann.encode("utf8"))
        docs = [read_brat(p, NLP, root=src) for p in find_documents(src)]
        for doc in through_docbin(docs):
            write_brat(doc, out)
        assert (out / "d.txt").read_bytes() == text.encode("utf8")
        assert (out / "d.ann").read_bytes() == ann.encode("utf8")
        (doc,) = docs
        for line in ann.splitlines():  # every contiguous entity keeps its exact offsets
            if line.startswith("T"):
                _, offsets, _ = line.split("\t")
                _, start, end = offsets.split()
                assert doc.char_span(int(start), int(end)) is not None


# bytes that often make a CoNLL file: rows of a token and a tag (now and then a bad byte or tag)
conll_token = st.sampled_from([b"a", b"\xc3\xa9", b"-DOCSTART-", b"O", b"\xff"])
conll_tag = st.sampled_from([b"O", b"B-X", b"I-Y", b"L-X", b"U-Y", b"E-X", b"S-Y", b"Q-X"])
conll_rows = st.lists(st.tuples(st.one_of(st.just(()), st.tuples(conll_token, conll_tag)),
                                st.sampled_from([b" ", b"\t"]), st.sampled_from([b"\n", b"\r\n", b"\r"])), max_size=12)
conll_like = st.builds(lambda bom, rows: bom + b"".join(sep.join(cols) + end for cols, sep, end in rows),
                       st.sampled_from([b"", b"\xef\xbb\xbf"]), conll_rows)


@SETTINGS
@given(st.one_of(st.binary(max_size=300), conll_like), st.binary(max_size=300))
def test_random_bytes_never_crash_the_readers(txt, ann):
    """A FormatError naming the file, or docs holding what the file holds:
    each CoNLL row's token, in an entity exactly where its tag is not O; the
    .txt's text, every byte of it."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "d.conll").write_bytes(txt)
        (tmp / "d.txt").write_bytes(txt)
        (tmp / "d.ann").write_bytes(ann)
        try:
            docs = read_conll(tmp / "d.conll", NLP.vocab)
        except FormatError as err:
            assert str(err).startswith(str(tmp))
        else:
            rows = [cols for cols in (line.split() for line in re.split(r"\r\n|\r|\n", txt.decode("utf-8-sig")))
                    if cols and cols[0] != "-DOCSTART-"]
            assert [t.text for doc in docs for t in doc] == [cols[0] for cols in rows]
            assert [t.ent_iob_ != "O" for doc in docs for t in doc] == [cols[-1] != "O" for cols in rows]
        try:
            doc = read_brat(tmp / "d.txt", NLP, root=tmp)
        except FormatError as err:
            assert str(err).startswith(str(tmp))
        else:
            assert doc.text == txt.decode("utf-8")
