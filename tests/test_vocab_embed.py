"""The trained word table: which words fall back to UNK in training."""
from collections import Counter

import numpy
import pytest
import spacy

from spacy_bilstm_crf.models import vocab_embed
from spacy_bilstm_crf.models.vocab_embed import WordVocabEmbed


def replaced_rates(unk_alpha, rate=0.5, trials=4000):
    nlp = spacy.blank("en")
    train = [nlp.make_doc("rare once twice twice three three three")]
    model = WordVocabEmbed(8, "LOWER", 100, unk_rate=rate, unk_alpha=unk_alpha)
    vocab_embed.set_vocabulary(model, vocab_embed.count_words(model, train))
    model.initialize(X=train)
    doc = nlp.make_doc("once twice three unseen")
    numpy.random.seed(0)
    rows = numpy.stack([vocab_embed._rows(model, [doc], is_train=True) for _ in range(trials)])
    assert (vocab_embed._rows(model, [doc], is_train=False)[:3] > 0).all()  # never replaced in prediction
    assert (rows[:, 3] == 0).all()  # unseen words are UNK anyway
    return (rows[:, :3] == 0).mean(axis=0)  # for words seen 1, 2 and 3 times


def test_singletons_only_by_default():
    once, twice, three = replaced_rates(None)
    assert once == pytest.approx(0.5, abs=0.03)
    assert twice == 0 and three == 0


def test_word_dropout_the_rarer_the_likelier():
    once, twice, three = replaced_rates(1.0)
    assert once == pytest.approx(1 / 2, abs=0.03)
    assert twice == pytest.approx(1 / 3, abs=0.03)
    assert three == pytest.approx(1 / 4, abs=0.03)
    # the rate is each update's drop: half the drop, half the probability; none without dropout
    assert replaced_rates(1.0, rate=0.25)[0] == pytest.approx(1 / 4, abs=0.03)
    assert (replaced_rates(1.0, rate=0.0) == 0).all()


def test_v1_is_v2_without_word_dropout():
    from spacy.util import registry

    v1 = registry.architectures.get("spacy_bilstm_crf.CharWordEmbed.v1")(None)
    v2 = registry.architectures.get("spacy_bilstm_crf.CharWordEmbed.v2")(None, unk_alpha=1.0)
    alphas = [[n.attrs.get("unk_alpha") for n in m.walk() if n.name == vocab_embed.NAME] for m in (v1, v2)]
    assert alphas == [[None], [1.0]]
    assert Counter(n.name for n in v1.walk()) == Counter(n.name for n in v2.walk())
