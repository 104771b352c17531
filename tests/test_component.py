"""The component as spaCy's own `ner` tests check it."""
from contextlib import contextmanager

import numpy
import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import fix_random_seed

from spacy_bilstm_crf.gold import gold_tags
from spacy_bilstm_crf.models.tagger import sequence_lengths
from spacy_bilstm_crf.tags import is_valid, tag_names

from .helpers import TRAIN_DATA, make_examples, randomize_params, read_conll, train


def ents(doc):
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]


@pytest.fixture(scope="module")
def trained():
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner")
    losses = train(nlp, make_examples(nlp))
    return nlp, losses


def test_overfitting_IO(trained, tmp_path):
    nlp, losses = trained
    assert losses["bilstm_crf_ner"] < 0.05
    for text, gold in TRAIN_DATA:
        assert ents(nlp(text)) == gold
    # the same entities from disk, from bytes, and in batches
    texts = [text for text, _ in TRAIN_DATA] + ["Shaka Khan is in London.", ""]
    expected = [ents(nlp(t)) for t in texts]
    nlp.to_disk(tmp_path)
    nlp2 = spacy.load(tmp_path)
    assert [ents(d) for d in nlp2.pipe(texts)] == expected
    nlp3 = spacy.blank("en")
    nlp3.add_pipe("bilstm_crf_ner")
    nlp3.from_bytes(nlp.to_bytes())
    assert [ents(d) for d in nlp3.pipe(texts, batch_size=2)] == expected
    assert [ents(d) for d in nlp.pipe(texts, batch_size=1000)] == expected
    # emission scores do not depend on the batch a doc comes in
    ner = nlp.get_pipe("bilstm_crf_ner")
    docs = [nlp.make_doc(t) for t in texts if t]
    together = ner.model.predict(docs)
    for doc, scores in zip(docs, together):
        numpy.testing.assert_allclose(ner.model.predict([doc])[0], scores, rtol=1e-4, atol=1e-5)


def test_labels_and_scoring(trained):
    nlp, _ = trained
    ner = nlp.get_pipe("bilstm_crf_ner")
    assert ner.labels == ("LOC", "ORG", "PERSON")  # sorted, from the data
    assert ner.label_data == ("LOC", "ORG", "PERSON")
    scores = nlp.evaluate(make_examples(nlp))
    assert scores["ents_f"] == 1.0 and scores["ents_p"] == 1.0 and scores["ents_r"] == 1.0
    assert set(scores["ents_per_type"]) == {"LOC", "ORG", "PERSON"}


def test_nlp_pipe_n_process(trained):
    nlp, _ = trained
    texts = [t for t, _ in TRAIN_DATA] * 3
    expected = [ents(nlp(t)) for t in texts]
    assert [ents(d) for d in nlp.pipe(texts, n_process=2, batch_size=3)] == expected


def test_untrained_predicts_no_entities():
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bilstm_crf_ner")
    ner.add_label("MY_LABEL")
    nlp.initialize()
    for text in ["John is watching the news about Croatia's elections", "I live in New York", "x"]:
        doc = nlp(text)
        assert [t.ent_iob_ for t in doc] == ["O"] * len(doc)


def test_no_label_warns_and_predicts_nothing():
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner")
    with pytest.warns(UserWarning, match="no entity labels"):
        nlp.initialize()
    doc = nlp("I live in New York")
    assert [t.ent_iob_ for t in doc] == ["O"] * 5


def test_implicit_label():
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bilstm_crf_ner")
    train_examples = make_examples(nlp)
    nlp.initialize(get_examples=lambda: train_examples)
    assert set(ner.labels) == {"PERSON", "LOC", "ORG"}
    assert ner.model.get_dim("nO") == len(tag_names(ner.labels, "BILUO"))


def test_labels_given_to_initialize():
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bilstm_crf_ner")
    nlp.initialize(get_examples=lambda: make_examples(nlp))  # labels from data
    ner2 = spacy.blank("en").add_pipe("bilstm_crf_ner")
    ner2.initialize(lambda: make_examples(nlp), labels=ner.label_data)
    assert ner2.labels == ner.labels
    ner3 = spacy.blank("en").add_pipe("bilstm_crf_ner")  # labels given win over those of the data
    ner3.initialize(lambda: make_examples(nlp), labels=["ZOO"])
    assert ner3.labels == ("ZOO",)


def test_label_with_hyphen_and_malformed_labels():
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bilstm_crf_ner")
    assert ner.add_label("LARGE-ANIMAL") == 1
    assert ner.add_label("LARGE-ANIMAL") == 0
    assert ner.tags == ["O", "B-LARGE-ANIMAL", "I-LARGE-ANIMAL", "L-LARGE-ANIMAL", "U-LARGE-ANIMAL"]
    for bad in ["", " ", "TWO WORDS", "O", "-", 5, None, "TAB\t"]:
        with pytest.raises(ValueError, match="Invalid entity label"):
            ner.add_label(bad)


def test_initialize_examples():
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner")
    train_examples = make_examples(nlp)
    with pytest.warns(UserWarning, match="W001"):  # no labels: it says it will predict nothing
        nlp.initialize()  # a dummy example, as spaCy does
    nlp.initialize(get_examples=lambda: train_examples)
    with pytest.raises(TypeError):
        nlp.initialize(get_examples=lambda: None)
    with pytest.raises(TypeError):
        nlp.initialize(get_examples=train_examples)


def test_predict_before_initialize_is_a_clear_error():
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner").add_label("X")
    with pytest.raises(ValueError, match="not been initialized"):
        nlp("hello world")


def test_train_empty():
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner")
    data = [("Who is Shaka Khan?", [(7, 17, "PERSON")]), ("", [])]
    examples = make_examples(nlp, data)
    optimizer = nlp.initialize(get_examples=lambda: examples)
    for _ in range(2):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
        assert numpy.isfinite(losses["bilstm_crf_ner"]) and losses["bilstm_crf_ner"] > 0
        empty = {}
        nlp.update(examples[1:], sgd=optimizer, losses=empty)  # a batch of only empty docs
        assert empty["bilstm_crf_ner"] == 0
    docs = list(nlp.pipe(["", " ", "Shaka"]))
    assert [len(d) for d in docs] == [0, 1, 1]
    assert docs[0].ents == () and docs[1].ents == ()


def test_missing_annotation_is_not_penalized():
    """A doc without entity annotation contributes no loss and no gradient;
    one with annotation on some tokens only is trained on those."""
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bilstm_crf_ner")
    nlp.initialize(get_examples=lambda: make_examples(nlp))
    doc = nlp.make_doc("Angela Merkel flew to Paris")
    unannotated = Example(doc, nlp.make_doc(doc.text))
    scores = ner.model.predict([doc])
    loss, d_scores = ner.get_loss([unannotated], scores)
    assert abs(loss) < 1e-5
    assert numpy.abs(d_scores[0]).max() < 1e-5
    # annotate only "Paris": the other tokens' gradients are much smaller than
    # the gradient of a fully annotated doc
    partial = nlp.make_doc(doc.text)
    partial.set_ents([Span(partial, 4, 5, "LOC")], default="missing")
    full = nlp.make_doc(doc.text)
    full.set_ents([Span(full, 4, 5, "LOC")], default="outside")
    _, d_partial = ner.get_loss([Example(doc, partial)], scores)
    _, d_full = ner.get_loss([Example(doc, full)], scores)
    assert numpy.abs(d_partial[0][4]).sum() > 0
    assert numpy.abs(d_partial[0][:2]).sum() < 0.5 * numpy.abs(d_full[0][:2]).sum()


def test_incomplete_data_trains():
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner")
    examples = []
    for text, annots in TRAIN_DATA:
        ref = nlp.make_doc(text)
        spans = [ref.char_span(s, e, label=l) for s, e, l in annots]
        # the first entity is known, the others' tokens are missing
        ref.set_ents(spans[:1], missing=spans[1:], default="outside")
        examples.append(Example(nlp.make_doc(text), ref))
    losses = train(nlp, examples, n_iter=40)
    assert numpy.isfinite(losses["bilstm_crf_ner"])
    doc = nlp("Who is Shaka Khan?")
    assert ents(doc) == [(7, 17, "PERSON")]


def test_misaligned_tokenization_uses_aligned_gold():
    """Gold docs tokenized differently from the predicted docs are aligned."""
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bilstm_crf_ner")
    ref = Doc(nlp.vocab, words=["Shaka", "Khan", "visited", "New", "York"])
    # "York" alone is an entity: its boundary falls inside the token "New York"
    ref.ents = [Span(ref, 0, 2, "PERSON"), Span(ref, 4, 5, "LOC")]
    pred = Doc(nlp.vocab, words=["Shaka", "Khan", "visited", "New York"], spaces=[True, True, True, False])
    eg = Example(pred, ref)
    nlp.initialize(get_examples=lambda: [eg])
    gold = gold_tags([eg], ner.labels, ner.scheme, nlp.vocab.strings)
    names = ner.tags
    assert [names[i] if i >= 0 else None for i in gold] == ["B-PERSON", "L-PERSON", "O", None]


def test_ruler_before_ner():
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ner = nlp.add_pipe("bilstm_crf_ner")
    ner.add_label("MY_LABEL")
    nlp.initialize()
    ruler.add_patterns([{"label": "THING", "pattern": "This"}])
    doc = nlp("This is Antti Korhonen speaking in Finland")
    assert [t.ent_iob_ for t in doc] == ["B", "O", "O", "O", "O", "O", "O"]
    assert [t.ent_type_ for t in doc] == ["THING", "", "", "", "", "", ""]


def test_ner_before_ruler():
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner", name="uner").add_label("MY_LABEL")
    nlp.initialize()
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "THING", "pattern": "This"}])
    doc = nlp("This is Antti Korhonen speaking in Finland")
    assert [t.ent_iob_ for t in doc] == ["B", "O", "O", "O", "O", "O", "O"]
    assert [t.ent_type_ for t in doc] == ["THING", "", "", "", "", "", ""]


@Language.component("block_2_5")
def block_2_5(doc):
    doc.set_ents([], blocked=[doc[2:5]], default="unmodified")
    return doc


def test_block_ner(trained):
    nlp, _ = trained
    text = "Angela Merkel flew to Paris on Monday."
    assert ents(nlp(text)) == [(0, 13, "PERSON"), (22, 27, "LOC")]
    blocked = spacy.blank("en")
    blocked.add_pipe("block_2_5")
    blocked.add_pipe("bilstm_crf_ner", source=nlp)
    doc = blocked(text)
    # "flew to Paris" is blocked: it stays unlabelled, Merkel is still found
    assert [t.ent_iob_ for t in doc][2:5] == ["B", "B", "B"]
    assert [t.ent_type_ for t in doc][2:5] == ["", "", ""]
    assert ents(doc) == [(0, 13, "PERSON")]


def test_preset_entities_are_kept_and_decoded_around(trained):
    nlp, _ = trained
    ner = nlp.get_pipe("bilstm_crf_ner")
    doc = nlp.make_doc("Angela Merkel flew to Paris on Monday.")
    # a preset entity that cuts the model's PERSON in two, with a new label
    doc.set_ents([Span(doc, 1, 2, "TITLE", kb_id="Q1")], default="unmodified")
    doc = ner(doc)
    assert "TITLE" in ner.labels  # added implicitly, the model resized
    assert (7, 13, "TITLE") in ents(doc)
    assert not any(e.start <= 1 < e.end for e in doc.ents if e.label_ != "TITLE")
    assert doc[1].ent_kb_id_ == "Q1"  # the preset entity is untouched
    assert (22, 27, "LOC") in ents(doc)
    # a preset entity with a known label forces those tags
    doc = nlp.make_doc("Angela Merkel flew to Paris on Monday.")
    doc.set_ents([Span(doc, 3, 5, "ORG")], default="unmodified")
    assert ents(ner(doc)) == [(0, 13, "PERSON"), (19, 27, "ORG")]


def test_overwrite_preset_outside(trained):
    """Tokens preset as O (not blocked) may become entities, as in spaCy."""
    nlp, _ = trained
    doc = nlp.make_doc("Angela Merkel flew to Paris on Monday.")
    doc.set_ents([], default="outside")
    assert ents(nlp.get_pipe("bilstm_crf_ner")(doc)) == [(0, 13, "PERSON"), (22, 27, "LOC")]


def test_whitespace_tokens_do_not_start_entities(trained):
    """A model pushed to tag every token U-PERSON still starts no entity on a
    whitespace token."""
    nlp = copy_of(trained[0])
    ner = nlp.get_pipe("bilstm_crf_ner")
    output = ner.model.get_ref("output")
    bias = output.get_param("b").copy()
    bias[ner.tags.index("U-PERSON")] += 50
    output.set_param("b", bias)
    doc = nlp("Who is  Shaka Khan?\n\nI like London  and Berlin.")
    assert any(t.is_space for t in doc)
    assert len(doc.ents) >= 8 and not any(e[0].is_space for e in doc.ents)


def copy_of(nlp):
    copy = spacy.blank("en")
    copy.add_pipe("bilstm_crf_ner")
    return copy.from_bytes(nlp.to_bytes())


TEXTS = [text for text, _ in TRAIN_DATA] + ["Shaka Khan flew to Rome.", "My dog Rex barks."]


def test_new_label_is_not_predicted_until_trained(trained, tmp_path):
    """As spaCy's test_overfitting_IO: adding a label leaves the predictions
    as they were, however the label comes (add_label, or a preset entity of
    an entity_ruler), until an update has a gold entity of it."""
    nlp = copy_of(trained[0])
    ner = nlp.get_pipe("bilstm_crf_ner")
    before = [ents(nlp(text)) for text in TEXTS]
    assert "ANIMAL" not in ner.untrained_labels
    ner.add_label("ANIMAL")
    assert ner.untrained_labels[-1] == "ANIMAL"
    assert [ents(nlp(text)) for text in TEXTS] == before
    ruler = nlp.add_pipe("entity_ruler", first=True)
    ruler.add_patterns([{"label": "PRODUCT", "pattern": "Monday"}])
    assert ents(nlp(TEXTS[2])) == before[2] + [(31, 37, "PRODUCT")]
    nlp.remove_pipe("entity_ruler")
    assert ner.untrained_labels[-2:] == ("ANIMAL", "PRODUCT")
    assert [ents(nlp(text)) for text in TEXTS] == before
    nlp.to_disk(tmp_path)
    assert spacy.load(tmp_path).get_pipe("bilstm_crf_ner").untrained_labels == ner.untrained_labels
    optimizer = nlp.resume_training()
    nlp.update(make_examples(nlp, [("My dog Rex barks.", [(7, 10, "ANIMAL")])]), sgd=optimizer)
    assert "ANIMAL" not in ner.untrained_labels and "PRODUCT" in ner.untrained_labels


@pytest.mark.parametrize("seed", range(8))
def test_untrained_depth_0_cnn_predicts_nothing(seed):
    """Without the BiLSTM the emission scores are not bounded; no untrained
    label is predicted all the same."""
    fix_random_seed(seed)
    nlp = spacy.blank("en")
    config = {"model": {"depth": 0, "tok2vec": {"char_encoder": {"@architectures": "spacy_bilstm_crf.CharCNN.v1"}}}}
    nlp.add_pipe("bilstm_crf_ner", config=config).add_label("MY_LABEL")
    nlp.initialize()
    doc = nlp("John is watching the news about Croatia's elections")
    assert [t.ent_iob_ for t in doc] == ["O"] * len(doc)


def test_rehearse_keeps_what_the_model_predicted(trained):
    """Training on a new label alone makes the model forget the old ones;
    rehearsing on texts alone (nlp.rehearse, after nlp.resume_training) keeps
    its predictions there, and the new label is learned all the same."""
    kept = {}
    for rehearse in (False, True):
        nlp = copy_of(trained[0])
        before = [ents(nlp(text)) for text in TEXTS]
        optimizer = nlp.resume_training()
        raw = [Example(nlp.make_doc(text), nlp.make_doc(text)) for text, _ in TRAIN_DATA]
        losses = nlp.rehearse(raw, sgd=optimizer, losses={})
        assert 0 <= losses["bilstm_crf_ner"] < 1e-3  # the model is its own tutor yet
        animal = [("My dog Rex barks.", [(7, 10, "ANIMAL")]), ("Her cat Tom sleeps.", [(8, 11, "ANIMAL")])]
        for _ in range(40):
            nlp.update(make_examples(nlp, animal), sgd=optimizer)
            if rehearse:
                losses = nlp.rehearse(raw, sgd=optimizer, losses={})
        after = [ents(nlp(text)) for text in TEXTS]
        assert after[-1] == [(7, 10, "ANIMAL")]
        kept[rehearse] = sum(a == b for a, b in zip(before[:4], after[:4]))
    assert kept == {False: 0, True: 4}


def test_rehearse_on_docs_with_an_entity_of_a_new_label(trained):
    """An entity preset on a doc (here of a label added after
    resume_training, which the tutor lacks) does not constrain rehearsal."""
    nlp = copy_of(trained[0])
    optimizer = nlp.resume_training()
    doc = nlp.make_doc("My dog Rex barks.")
    doc.set_ents([Span(doc, 2, 3, "ANIMAL")])
    nlp.get_pipe("bilstm_crf_ner").add_label("ANIMAL")
    losses = nlp.rehearse([Example(doc, doc)], sgd=optimizer, losses={})
    assert 0 <= losses["bilstm_crf_ner"] < 1e-3


def test_rehearse_without_resume_training_does_nothing(trained):
    nlp = copy_of(trained[0])
    weights = nlp.get_pipe("bilstm_crf_ner").model.get_ref("output").get_param("W").copy()
    raw = [Example(nlp.make_doc(text), nlp.make_doc(text)) for text in TEXTS]
    assert nlp.rehearse(raw, sgd=nlp.create_optimizer(), losses={}) == {"bilstm_crf_ner": 0.0}
    numpy.testing.assert_array_equal(nlp.get_pipe("bilstm_crf_ner").model.get_ref("output").get_param("W"), weights)


def test_pipeline_pickles(trained):
    """What nlp.pipe(n_process=2) needs where processes are spawned
    (macOS, Windows)."""
    import pickle

    nlp = trained[0]
    assert [ents(d) for d in pickle.loads(pickle.dumps(nlp)).pipe(TEXTS)] == [ents(nlp(t)) for t in TEXTS]


def test_negative_label_notation_is_refused():
    """As spaCy (E869): "!PERSON" in the gold is no label; incorrect spans go
    in doc.spans with incorrect_spans_key."""
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bilstm_crf_ner")
    optimizer = nlp.initialize(lambda: make_examples(nlp))
    example = Example.from_dict(nlp.make_doc("I like London."), {"entities": [(7, 13, "!LOC")]})
    with pytest.raises(ValueError, match="incorrect_spans_key"):
        nlp.update([example], sgd=optimizer)
    assert "!LOC" not in ner.labels


def test_labels_reach_the_strings_without_the_vocab(trained):
    """As spaCy's test_serialize_parser_strings."""
    data = trained[0].get_pipe("bilstm_crf_ner").to_bytes(exclude=["vocab"])
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner").from_bytes(data, exclude=["vocab"])
    assert all(label in nlp.vocab.strings for label in ("LOC", "ORG", "PERSON"))


def test_resize_keeps_training():
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bilstm_crf_ner")
    examples = make_examples(nlp)
    train(nlp, examples, n_iter=10)
    n = ner.model.get_dim("nO")
    W = ner.model.get_ref("output").get_param("W").copy()
    assert ner.add_label("ANIMAL") == 1
    assert ner.model.get_dim("nO") == n + 4
    new_W = ner.model.get_ref("output").get_param("W")
    numpy.testing.assert_array_equal(new_W[:n], W)
    assert not new_W[n:].any()
    optimizer = nlp.resume_training()
    animal = [("My dog Rex barks.", [(7, 10, "ANIMAL")])] * 2
    for _ in range(100):
        nlp.update(make_examples(nlp, animal + TRAIN_DATA), sgd=optimizer)
    assert ents(nlp("My dog Rex barks.")) == [(7, 10, "ANIMAL")]


@pytest.mark.parametrize(
    "config",
    [
        {"scheme": "BIO"},
        {"model": {"use_crf": False}},
        {"model": {"depth": 2}},
        {"model": {"depth": 0, "tok2vec": {"char_encoder": {"@architectures": "spacy_bilstm_crf.CharCNN.v1"}}}},
        {"model": {"tok2vec": {"char_encoder": None, "shape_width": 0}}},
    ],
)
def test_variants_overfit(config):
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner", config=config)
    train(nlp, make_examples(nlp), n_iter=80)
    for text, gold in TRAIN_DATA:
        assert ents(nlp(text)) == gold


def test_decoding_always_valid_random_model():
    """Constrained decoding of an untrained, randomly perturbed model."""
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bilstm_crf_ner")
    for label in ["A", "B-C", "D"]:
        ner.add_label(label)
    nlp.initialize()
    randomize_params(ner, scale=5, seed=0)
    docs = [nlp.make_doc(" ".join(["w%d" % i for i in range(n)])) for n in [1, 2, 3, 7, 30]]
    for doc, pred in zip(docs, ner.predict(docs)):
        assert is_valid(pred.tags, 3, "BILUO")


def test_nan_loss_is_a_clear_error():
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bilstm_crf_ner")
    examples = make_examples(nlp)
    nlp.initialize(get_examples=lambda: examples)
    scores = ner.model.predict([eg.predicted for eg in examples])
    scores[0][0, 0] = numpy.nan
    with pytest.raises(ValueError, match="nan at update 0: training has diverged"):
        ner.get_loss(examples, scores)


def test_tok2vec_listener():
    """The head on spaCy's own tok2vec through a listener."""
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec")
    config = {
        "model": {
            "@architectures": "spacy_bilstm_crf.BiLSTMCRF.v1",
            "hidden_width": 32,
            "depth": 1,
            "tok2vec": {"@architectures": "spacy.Tok2VecListener.v1", "width": 96, "upstream": "*"},
        }
    }
    nlp.add_pipe("bilstm_crf_ner", config=config)
    train(nlp, make_examples(nlp), n_iter=80)
    for text, gold in TRAIN_DATA:
        assert ents(nlp(text)) == gold


def blank_with_vectors():
    """A blank English pipeline whose vocab has random 8-d vectors for
    the lowercase words of TRAIN_DATA."""
    nlp = spacy.blank("en")
    rng = numpy.random.default_rng(0)
    for word in ["shaka", "khan", "london", "berlin", "paris", "rome", "angela", "merkel"]:
        nlp.vocab.set_vector(word, rng.normal(size=8).astype("f"))
    return nlp


def test_static_vectors_frozen_and_fine_tuned(tmp_path):
    for fine_tune in (False, True):
        nlp = blank_with_vectors()
        table = nlp.vocab.vectors.data.copy()
        config = {"model": {"tok2vec": {"include_static_vectors": True, "fine_tune_vectors": fine_tune}}}
        ner = nlp.add_pipe("bilstm_crf_ner", config=config)
        train(nlp, make_examples(nlp), n_iter=60)
        for text, gold in TRAIN_DATA:
            assert ents(nlp(text)) == gold
        nlp.to_disk(tmp_path / str(fine_tune))
        nlp2 = spacy.load(tmp_path / str(fine_tune))
        assert [ents(d) for d in nlp2.pipe(t for t, _ in TRAIN_DATA)] == [g for _, g in TRAIN_DATA]
        numpy.testing.assert_array_equal(nlp.vocab.vectors.data, table)  # the vocab's table is never written
        has_copy = any(n.name == "pretrained_vectors" and n.has_param("E") for n in ner.model.walk())
        assert has_copy == fine_tune


def test_static_vectors_without_word_table():
    """word_width = 0: words are known by their vectors, characters and shape only."""
    nlp = blank_with_vectors()
    config = {"model": {"tok2vec": {"include_static_vectors": True, "word_width": 0}}}
    ner = nlp.add_pipe("bilstm_crf_ner", config=config)
    train(nlp, make_examples(nlp), n_iter=60)
    for text, gold in TRAIN_DATA:
        assert ents(nlp(text)) == gold
    assert not any(n.name == "word_vocab_embed" for n in ner.model.walk())


def test_no_token_features_is_a_clear_error():
    nlp = spacy.blank("en")
    config = {"model": {"tok2vec": {"word_width": 0, "shape_width": 0, "char_encoder": None}}}
    with pytest.raises(ValueError, match="no features to embed a token with"):
        nlp.add_pipe("bilstm_crf_ner", config=config)


def test_static_vectors_missing_is_a_clear_error():
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner", config={"model": {"tok2vec": {"include_static_vectors": True}}})
    with pytest.raises(ValueError, match=r"\[initialize\] vectors"):
        nlp.initialize(get_examples=lambda: make_examples(nlp))


@contextmanager
def max_length(ner, n):
    """The component cutting its sequences every n tokens for a while."""
    saved = ner.model.attrs["max_length"]
    ner.model.attrs["max_length"] = n
    try:
        yield
    finally:
        ner.model.attrs["max_length"] = saved


def test_long_and_odd_docs(trained):
    nlp, _ = trained
    ner = nlp.get_pipe("bilstm_crf_ner")
    long_text = " ".join(["Shaka Khan visited London ."] * 300)  # 1500 tokens: cut in pieces of 512
    texts = [long_text, "", "   ", "\n", "😀 東京 مرحبا e\u0301", "x" * 500]
    for doc in nlp.pipe(texts):
        for ent in doc.ents:
            assert ent.label_ in ner.labels
    doc = nlp(long_text)
    assert len(doc) == 1500 and all(e.label_ in ner.labels for e in doc.ents)
    assert sequence_lengths([doc], 512).tolist() == [512, 512, 476]
    with max_length(ner, 5):  # every piece is one 5-token training-like sentence
        assert len(nlp(long_text).ents) == 600
    # with sentence boundaries the sequences are the sentences, as in training
    nlp.add_pipe("sentencizer", first=True)
    assert len(nlp(long_text).ents) == 600
    nlp.remove_pipe("sentencizer")


def test_conll_sentences_overfit(conll_train):
    """The acceptance check: 80 CoNLL-2003 sentences, 80 passes, train F1 >= 0.95."""
    nlp = spacy.blank("en")
    nlp.add_pipe("bilstm_crf_ner")
    docs = read_conll(conll_train, 80, nlp.vocab)
    examples = [Example(Doc(nlp.vocab, words=[t.text for t in d]), d) for d in docs]
    train(nlp, examples, n_iter=80, drop=0.5, batch_size=16)
    assert nlp.evaluate(examples)["ents_f"] >= 0.95


def test_fixed_seed_gives_the_same_weights_and_predictions():
    def run():
        nlp = spacy.blank("en")
        nlp.add_pipe("bilstm_crf_ner")
        train(nlp, make_examples(nlp), n_iter=5, drop=0.5, seed=7)
        ner = nlp.get_pipe("bilstm_crf_ner")
        return ner.model.to_bytes(), [ents(d) for d in nlp.pipe(t for t, _ in TRAIN_DATA)]

    first, second = run(), run()
    assert first[0] == second[0] and first[1] == second[1]


def test_one_very_long_sentence(trained):
    """10,000 tokens with no sentence boundaries: cut in 512-token pieces for
    the BiLSTM and the CRF, all packed without padding."""
    nlp, _ = trained
    ner = nlp.get_pipe("bilstm_crf_ner")
    words = (["Shaka", "Khan", "visited", "London", "and"] * 2000)
    doc = nlp(Doc(nlp.vocab, words=words))
    assert len(doc) == 10000
    assert all(e.label_ in ner.labels for e in doc.ents)
    assert sequence_lengths([doc], 512).tolist() == [512] * 19 + [272]
    with max_length(ner, 5):  # a PERSON and a LOC in each 5-token piece
        doc = nlp(Doc(nlp.vocab, words=words))
    assert [e.label_ for e in doc.ents] == ["PERSON", "LOC"] * 2000


def test_pretrained_vectors_looked_up_by_configured_attr(tmp_path):
    from spacy_bilstm_crf.models.embed import build_pretrained_vectors_v1

    nlp = spacy.blank("en")
    nlp.vocab.set_vector("london", numpy.ones(4, dtype="f"))
    nlp.to_disk(tmp_path)  # spaCy does not save the vectors' attr: it is lost here
    nlp = spacy.load(tmp_path)
    doc = nlp("London london LONDON Paris")
    for attr, expected in ((None, [0, 1, 0, 0]), ("LOWER", [1, 1, 1, 0])):
        layer = build_pretrained_vectors_v1(attr=attr)
        layer.initialize(X=[doc])
        (out,) = layer.predict([doc])
        assert (out.sum(axis=1) > 0).astype(int).tolist() == expected


def test_parameter_averages_reach_the_torch_layers(tmp_path):
    """With use_averages, spaCy evaluates and saves the model inside
    nlp.use_params(optimizer.averages): the BiLSTMs must take their averaged
    weights there too (Thinc's PyTorchShim missed them), and get their own
    back after."""
    import torch
    from thinc.api import Adam

    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bilstm_crf_ner")
    examples = make_examples(nlp)
    fix_random_seed(0)
    nlp.initialize(get_examples=lambda: examples)
    optimizer = Adam(0.01, use_averages=True)
    for _ in range(5):
        nlp.update(examples, sgd=optimizer, drop=0.1)
    shims = [node.shims[0] for node in ner.model.walk() if node.shims]
    assert len(shims) == 2  # the context BiLSTM and the character BiLSTM
    raw = [{k: v.clone() for k, v in shim._model.state_dict().items()} for shim in shims]
    with nlp.use_params(optimizer.averages):
        for shim in shims:
            for name, param in shim._model.named_parameters():
                assert numpy.allclose(param.detach().numpy(), optimizer.averages[(shim.id, name)])
        averaged = [{k: v.clone() for k, v in shim._model.state_dict().items()} for shim in shims]
        nlp.to_disk(tmp_path / "averaged")
    assert any(not torch.equal(averaged[0][k], raw[0][k]) for k in raw[0])
    for shim, before in zip(shims, raw):
        assert all(torch.equal(v, before[k]) for k, v in shim._model.state_dict().items())
    loaded = spacy.load(tmp_path / "averaged").get_pipe("bilstm_crf_ner")
    loaded_shims = [node.shims[0] for node in loaded.model.walk() if node.shims]
    for shim, saved in zip(loaded_shims, averaged):
        assert all(torch.equal(v, saved[k]) for k, v in shim._model.state_dict().items())


def test_settings_of_a_trained_pipeline_come_from_its_config(trained, tmp_path):
    """spans_key, alternatives_threshold and incorrect_spans_key given when
    loading (or edited in config.cfg) are used, as nlp.config says; labels
    stay the trained model's."""
    nlp, _ = trained
    nlp.to_disk(tmp_path / "model")
    text = TRAIN_DATA[0][0]
    doc = spacy.load(tmp_path / "model")(text)
    assert [s.text for s in doc.spans["bilstm_crf_ner"]] == ["Shaka Khan"]
    settings = {"spans_key": "alt", "alternatives_threshold": 0.0001, "incorrect_spans_key": "neg"}
    loaded = spacy.load(tmp_path / "model", config={"components": {"bilstm_crf_ner": settings}})
    ner = loaded.get_pipe("bilstm_crf_ner")
    assert loaded.config["components"]["bilstm_crf_ner"]["spans_key"] == "alt"
    assert ner.labels == nlp.get_pipe("bilstm_crf_ner").labels and ner.incorrect_spans_key == "neg"
    doc = loaded(text)
    assert "bilstm_crf_ner" not in doc.spans and len(doc.spans["alt"]) > 1  # the entity and its alternatives
    assert doc.spans["alt"][0].text == "Shaka Khan"
    off = spacy.load(tmp_path / "model", config={"components": {"bilstm_crf_ner": {"spans_key": None}}})
    doc = off(text)
    assert len(doc.spans) == 0 and [e.text for e in doc.ents] == ["Shaka Khan"]
    config = (tmp_path / "model" / "config.cfg").read_text()
    (tmp_path / "model" / "config.cfg").write_text(config.replace('spans_key = "bilstm_crf_ner"', 'spans_key = "edited"'))
    assert list(spacy.load(tmp_path / "model")(text).spans) == ["edited"]
