"""The `bilstm_crf_ner` pipeline component: a drop-in for spaCy's `ner`."""
import functools
from itertools import islice
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple
import warnings

import numpy
import torch
from spacy.attrs import ENT_IOB
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.pipeline.ner import ner_score
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.util import minibatch
from spacy.vocab import Vocab
from thinc.api import Config, Model, set_dropout_rate
from thinc.types import Floats2d, Ints1d

from . import confidence
from .errors import Errors, Warnings
from .gold import forced_tags, gold_allowed, gold_tags, incorrect_spans, incorrect_spans_loss
from .models import crf, vocab_embed
from .models.packing import pack_index, packed, unpacked
from .models.tagger import resize_output, sequence_lengths
from .tags import (IOB_B, IOB_I, MISSING, allowed_transitions, check_scheme, n_tags, split_entities_at,
                   tag_ids_to_spans, tag_names)

DEFAULT_BILSTM_CRF_MODEL_CONFIG = """
[model]
@architectures = "spacy_bilstm_crf.BiLSTMCRF.v1"
hidden_width = 100
depth = 1
dropout = 0.5
use_crf = true
max_length = 512

[model.tok2vec]
@architectures = "spacy_bilstm_crf.CharWordEmbed.v2"
word_width = 100
word_rows = 18000
word_attr = "NORM"
word_vocab = true
unk_rate = 0.5
unk_alpha = 20.0
shape_width = 16
shape_rows = 1000
include_static_vectors = false
fine_tune_vectors = false
vectors_attr = null
dropout = 0.5

[model.tok2vec.char_encoder]
@architectures = "spacy_bilstm_crf.CharLSTM.v1"
char_width = 25
hidden_width = 25
rows = 4096
max_length = 32
"""
DEFAULT_BILSTM_CRF_MODEL = Config().from_str(DEFAULT_BILSTM_CRF_MODEL_CONFIG)["model"]
FACTORY = "bilstm_crf_ner"


@Language.factory(
    FACTORY,
    assigns=["doc.ents", "token.ent_iob", "token.ent_type", "doc.spans"],
    default_config={
        "model": DEFAULT_BILSTM_CRF_MODEL,
        "scheme": "BILUO",
        "spans_key": "bilstm_crf_ner",
        "alternatives_threshold": None,
        "incorrect_spans_key": None,
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    },
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_bilstm_crf_ner(
    nlp: Language, name: str, model: Model[List[Doc], List[Floats2d]], scheme: str,
    spans_key: Optional[str], alternatives_threshold: Optional[float], incorrect_spans_key: Optional[str],
    scorer: Optional[Callable],
) -> "BiLSTMCRFNER":
    """Create a BiLSTM-CRF named entity recognizer.

    model (Model[List[Doc], List[Floats2d]]): Emission scores per token, with
        the CRF's parameters under the ref "crf" (spacy_bilstm_crf.BiLSTMCRF.v1).
    scheme (str): Tag scheme: "BILUO" (default) or "BIO".
    spans_key (Optional[str]): Also write the predicted entities to
        doc.spans[spans_key], with their probabilities in
        doc.spans[spans_key].attrs["scores"] (spancat's convention). None: don't
        (and skip computing them).
    alternatives_threshold (Optional[float]): Also put in that span group every
        other span whose probability of being an entity is at least this.
    incorrect_spans_key (Optional[str]): As in spaCy's ner: the spans in
        doc.spans[incorrect_spans_key] of a training example's reference doc
        are known not to be entities (exactly that span with that label), and
        the model learns not to predict them.
    scorer (Optional[Callable]): The scoring method; spaCy's ner scorer.
    """
    return BiLSTMCRFNER(nlp.vocab, model, name, scheme=scheme, spans_key=spans_key,
                        alternatives_threshold=alternatives_threshold,
                        incorrect_spans_key=incorrect_spans_key, scorer=scorer)


# settings of use, not of the trained model: a trained pipeline takes them from its config
SETTINGS = ("spans_key", "alternatives_threshold", "incorrect_spans_key")


class DocPrediction(NamedTuple):
    """What `predict` finds in one doc: the best tag ids, and spans (start,
    end, label index) with the probability that each is an entity: the
    decoded entities first, then alternatives."""

    tags: Ints1d
    spans: numpy.ndarray  # shape: (n, 3)
    scores: numpy.ndarray  # shape: (n,)


class BiLSTMCRFNER(TrainablePipe):
    """Named entities from a BiLSTM-CRF: sets doc.ents, keeping the entities
    already on the doc and never labelling blocked tokens."""

    def __init__(
        self, vocab: Vocab, model: Model, name: str = "bilstm_crf_ner", *,
        scheme: str = "BILUO", spans_key: Optional[str] = "bilstm_crf_ner",
        alternatives_threshold: Optional[float] = None, incorrect_spans_key: Optional[str] = None,
        scorer: Optional[Callable] = ner_score,
    ) -> None:
        if alternatives_threshold is not None and not 0.0 < alternatives_threshold <= 1.0:
            raise ValueError(Errors.E008.format(value=alternatives_threshold))
        self.vocab = vocab
        self.model = model
        self.name = name
        self.cfg: Dict = {"labels": [], "scheme": check_scheme(scheme), "spans_key": spans_key,
                          "alternatives_threshold": alternatives_threshold,
                          "incorrect_spans_key": incorrect_spans_key, "untrained_labels": []}
        self._settings = {key: self.cfg[key] for key in SETTINGS}
        self.scorer = scorer
        self._n_updates = 0
        self._rehearsal_model: Optional[Model] = None  # set by nlp.resume_training()

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> Tuple[str, ...]:
        return self.labels

    @property
    def scheme(self) -> str:
        return self.cfg["scheme"]

    @property
    def tags(self) -> List[str]:
        return tag_names(self.labels, self.scheme)

    @property
    def is_initialized(self) -> bool:
        return self.model.get_ref("output").has_param("W")

    @property
    def untrained_labels(self) -> Tuple[str, ...]:
        """Labels no update has had a gold entity of yet: never predicted, so
        a label added to a trained model (by `add_label`, or met on a doc)
        leaves its predictions as they were until it is trained."""
        return tuple(self.cfg.get("untrained_labels", ()))

    def add_label(self, label: str) -> int:
        if not isinstance(label, str) or not label.strip() or label != "".join(label.split()) or label in ("O", "-"):
            raise ValueError(Errors.E002.format(label=label))
        if label.startswith("!"):
            raise ValueError(Errors.E011.format(label=label))
        if label in self.cfg["labels"]:
            return 0
        self.cfg["labels"].append(label)
        self.cfg.setdefault("untrained_labels", []).append(label)
        self.vocab.strings.add(label)
        if self.is_initialized:
            resize_output(self.model, n_tags(len(self.labels), self.scheme))
        return 1

    def initialize(
        self, get_examples: Callable[[], Iterable[Example]], *,
        nlp: Optional[Language] = None, labels: Optional[Sequence[str]] = None,
    ) -> None:
        """Infer the labels (sorted) from the examples' entities unless given,
        and size the model from a sample of the examples."""
        validate_get_examples(get_examples, "BiLSTMCRFNER.initialize")
        if labels is None:
            labels = sorted({ent.label_ for eg in get_examples() for ent in eg.reference.ents})
        for label in labels:
            self.add_label(label)
        if not self.labels:
            warnings.warn(Warnings.W001.format(name=self.name))
        self._learn_vocabularies(get_examples)
        sample = [eg.predicted for eg in islice(get_examples(), 10) if len(eg.predicted)]
        if not sample:
            sample = [Doc(self.vocab, words=["x"])]
        self.model.set_dim("nO", n_tags(len(self.labels), self.scheme), force=True)
        self.model.initialize(X=sample)
        self._init_tag_prior(get_examples)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "BiLSTMCRFNER":
        super().from_bytes(bytes_data, exclude=exclude)
        self._loaded()
        return self

    def from_disk(self, path, *, exclude: Iterable[str] = tuple()) -> "BiLSTMCRFNER":
        super().from_disk(path, exclude=exclude)
        self._loaded()
        return self

    def _loaded(self) -> None:
        """After the saved cfg is read: the settings are those this component
        was made with (the config spacy.load read, overrides included), not
        those saved with the model, so that nlp.config tells what is used;
        labels, scheme and untrained labels are the model's."""
        self.cfg.update(self._settings)
        self._add_label_strings()

    def _add_label_strings(self) -> None:
        """The labels in the vocab's strings also when the vocab was not loaded
        with the component (as spaCy's ner)."""
        for label in self.labels:
            self.vocab.strings.add(label)

    @property
    def spans_key(self) -> Optional[str]:
        return self.cfg.get("spans_key")

    @property
    def incorrect_spans_key(self) -> Optional[str]:
        return self.cfg.get("incorrect_spans_key")

    def predict(self, docs: Iterable[Doc]) -> List[DocPrediction]:
        """The best tag ids of each doc, decoded under the tag scheme's
        constraints and around the entities already on the doc, and (with a
        spans_key) the probability of each entity."""
        docs = list(docs)
        if not self.is_initialized:
            raise ValueError(Errors.E004.format(name=self.name))
        self._add_labels_of(docs)
        if not any(len(doc) for doc in docs):
            return [DocPrediction(numpy.zeros((len(doc),), dtype=numpy.int64), *_no_spans()) for doc in docs]
        scores = self.model.predict(docs)
        with torch.inference_mode():
            return self._decode(docs, scores)

    def set_annotations(self, docs: Iterable[Doc], predictions: List[DocPrediction]) -> None:
        labels = self.labels
        key = self.spans_key
        for doc, (ids, spans, probs) in zip(docs, predictions):
            iob = doc.to_array(ENT_IOB).astype(numpy.int64)
            preset = (iob == IOB_B) | (iob == IOB_I)  # entities and blocked tokens
            ents = []
            taken = preset.copy()
            for start, end, label in tag_ids_to_spans(ids, self.scheme):
                if not preset[start:end].any():
                    ents.append(Span(doc, start, end, label=labels[label]))
                    taken[start:end] = True
            doc.set_ents(ents, outside=_runs(doc, ~taken), default="unmodified")
            if key is not None:
                keep = [i for i, (s, e, _) in enumerate(spans) if not preset[s:e].any()]
                group = SpanGroup(doc, name=key, spans=[Span(doc, int(s), int(e), label=labels[l])
                                                        for s, e, l in spans[keep]])
                group.attrs["scores"] = probs[keep]
                doc.spans[key] = group

    def update(
        self, examples: Iterable[Example], *, drop: float = 0.0,
        sgd: Optional[Callable] = None, losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "BiLSTMCRFNER.update")
        if not any(len(eg.predicted) for eg in examples):
            return losses
        self._add_labels_of([eg.reference for eg in examples])
        if self.untrained_labels:
            trained = {ent.label_ for eg in examples for ent in eg.reference.ents}
            self.cfg["untrained_labels"] = [label for label in self.untrained_labels if label not in trained]
        self._n_updates += 1
        losses[self.name] += self._step([eg.predicted for eg in examples], lambda s: self._loss(examples, s), drop, sgd)
        return losses

    def rehearse(
        self, examples: Iterable[Example], *, drop: float = 0.0,
        sgd: Optional[Callable] = None, losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Teach the model to keep predicting what the model it had at
        `nlp.resume_training()` predicts on these examples' texts (against
        "catastrophic forgetting" while training on new data): minimizes the
        KL divergence from that model's distribution over tag sequences to
        this one's. The loss recorded is the divergence per token."""
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "BiLSTMCRFNER.rehearse")
        docs = [eg.predicted for eg in examples]
        if self._rehearsal_model is None or not any(len(doc) for doc in docs):
            return losses
        tutor_scores = self._rehearsal_model.predict(docs)
        losses[self.name] += self._step(docs, lambda s: self._rehearse_loss(docs, s, tutor_scores), drop, sgd)
        return losses

    def _step(self, docs: List[Doc], loss_of: Callable, drop: float, sgd: Optional[Callable]) -> float:
        """One gradient step of a loss of the scores (loss_of returns the loss,
        the scores' gradients and the CRF parameters'); returns the loss."""
        set_dropout_rate(self.model, drop)
        scores, backprop = self.model.begin_update(docs)
        loss, d_scores, d_crf = loss_of(scores)
        backprop(d_scores)
        crf_layer = self.model.get_ref("crf")
        for name, grad in d_crf.items():
            crf_layer.inc_grad(name, grad)
        if sgd is not None:
            self.finish_update(sgd)
        return loss

    def get_loss(self, examples: Iterable[Example], scores: List[Floats2d]) -> Tuple[float, List[Floats2d]]:
        """The CRF's negative log-likelihood of the gold tags (summed over the
        tag sequences consistent with them where annotation is missing), per
        token, and its gradient with respect to the scores."""
        examples = list(examples)
        validate_examples(examples, "BiLSTMCRFNER.get_loss")
        loss, d_scores, _ = self._loss(examples, scores)
        return loss, d_scores

    # internals -------------------------------------------------------------

    def _init_tag_prior(self, get_examples: Callable[[], Iterable[Example]]) -> None:
        """Start the output bias at the log frequency of each tag in the
        training data (add-one smoothed): training starts from the tag prior
        instead of having to learn it, and an untrained model predicts O."""
        counts = numpy.ones(n_tags(len(self.labels), self.scheme))
        for batch in minibatch(get_examples(), size=256):
            gold = gold_tags(batch, self.labels, self.scheme, self.vocab.strings)
            counts += numpy.bincount(gold[gold != MISSING], minlength=len(counts))
        if counts.sum() > len(counts):
            output = self.model.get_ref("output")
            output.set_param("b", self.model.ops.asarray1f(numpy.log(counts / counts.sum())))

    def _learn_vocabularies(self, get_examples: Callable[[], Iterable[Example]]) -> None:
        """Layers that embed the training data's words count them here, in
        one pass over the examples (the model's own init sees only a sample)."""
        for node in self.model.walk():
            if node.name == vocab_embed.NAME:
                counts = vocab_embed.count_words(node, (eg.predicted for eg in get_examples()))
                vocab_embed.set_vocabulary(node, counts)

    def _add_labels_of(self, docs: Iterable[Doc]) -> None:
        known = set(self.cfg["labels"])
        for label in sorted({ent.label_ for doc in docs for ent in doc.ents} - known):
            self.add_label(label)

    def _transition_scores(self, model: Optional[Model] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Leaf tensors of the CRF parameters (zeros without a CRF) of the
        component's model, or of another with the same architecture."""
        model = self.model if model is None else model
        layer = model.get_ref("crf")
        use_crf = model.attrs["use_crf"]
        return tuple(
            torch.from_numpy(model.ops.to_numpy(layer.get_param(name))).requires_grad_(use_crf)
            if use_crf else torch.zeros(layer.get_param(name).shape)
            for name in ("transitions", "start", "end")
        )

    def _constrained(self, transitions, start, end):
        n_labels = (len(start) - 1) // (n_tags(1, self.scheme) - 1)
        allowed = _allowed_transitions(n_labels, self.scheme)
        return tuple(crf.constrain(x, ok) for x, ok in zip((transitions, start, end), allowed))

    def _rehearse_loss(self, docs: List[Doc], scores: List[Floats2d], tutor_scores: List[Floats2d]):
        """KL(tutor || model) over each sequence's tag sequences, under the
        constraints of prediction but for entities preset on the docs, and its
        gradients. Tags the tutor lacks (labels added since) have probability
        0 under it."""
        lengths = sequence_lengths(docs, self.model.attrs["max_length"])
        pack = pack_index(lengths)
        allowed = self._forced(docs, lengths, presets=False)  # the tutor may lack a preset entity's label
        flat = self._emissions(scores, requires_grad=True)
        n_tutor = tutor_scores[0].shape[1]

        def chain(model, emissions, allowed):
            params = self._transition_scores(model)
            if not model.attrs["use_crf"]:
                emissions = torch.log_softmax(emissions, dim=1)
            return packed(crf.constrain(emissions, allowed), pack), params, self._constrained(*params)

        def expected_score(seq, params, counts):
            return sum((count * x).sum() for count, x in zip(counts, (seq.data, *params)))

        tutor_seq, tutor_params, tutor_trans = chain(
            self._rehearsal_model, self._emissions(tutor_scores, requires_grad=False),
            None if allowed is None else allowed[:, :n_tutor])
        counts = crf.expectations(tutor_seq, *tutor_trans)
        tutor_log_z = crf.log_partition(tutor_seq, *tutor_trans).sum()
        tutor_entropy = tutor_log_z - expected_score(tutor_seq, tutor_params, counts)
        n_tags_ = flat.shape[1]
        new = n_tags_ - n_tutor
        counts = [torch.nn.functional.pad(c, [0, new, 0, new] if c is counts[1] else [0, new]) for c in counts]
        seq, params, trans = chain(self.model, flat, allowed)
        cross_entropy = crf.log_partition(seq, *trans).sum() - expected_score(seq, params, counts)
        return self._gradients((cross_entropy - tutor_entropy) / len(flat), docs, flat, params)

    def _gradients(self, loss: torch.Tensor, docs: List[Doc], flat: torch.Tensor, params: Tuple[torch.Tensor, ...]):
        """(loss, gradients of the scores per doc, gradients of the CRF
        parameters by name) of a loss of the flat emissions and the CRF's
        parameter tensors."""
        loss.backward()
        d_scores = self.model.ops.unflatten(self.model.ops.asarray2f(flat.grad.numpy()), [len(doc) for doc in docs])
        d_crf = {}
        if self.model.attrs["use_crf"]:
            d_crf = {n: self.model.ops.asarray(p.grad.numpy()) for n, p in zip(("transitions", "start", "end"), params)}
        return loss.item(), d_scores, d_crf

    def _emissions(self, scores: List[Floats2d], requires_grad: bool) -> torch.Tensor:
        flat = torch.from_numpy(numpy.ascontiguousarray(self.model.ops.to_numpy(self.model.ops.flatten(scores))))
        flat = flat.requires_grad_(requires_grad)
        return flat

    def _forced(self, docs: List[Doc], lengths: numpy.ndarray, presets: bool = True) -> Optional[torch.Tensor]:
        """gold.forced_tags with this component's labels, scheme and untrained labels."""
        return forced_tags(docs, lengths, self.labels, self.scheme, self.vocab.strings, self.untrained_labels, presets)

    def _decode(self, docs: List[Doc], scores: List[Floats2d]) -> List[DocPrediction]:
        lengths = sequence_lengths(docs, self.model.attrs["max_length"])
        flat = self._emissions(scores, requires_grad=False)
        if not self.model.attrs["use_crf"]:
            flat = torch.log_softmax(flat, dim=1)
        flat = crf.constrain(flat, self._forced(docs, lengths))
        pack = pack_index(lengths)
        transitions = self._constrained(*self._transition_scores())
        tags, _ = crf.viterbi(packed(flat, pack), *transitions)
        tags = unpacked(tags, pack).numpy()
        doc_starts = numpy.cumsum([len(doc) for doc in docs])[:-1]
        if self.spans_key is None:
            return [DocPrediction(ids, *_no_spans()) for ids in numpy.split(tags, doc_starts)]
        spans = numpy.array(tag_ids_to_spans(tags, self.scheme), dtype=numpy.int64).reshape(-1, 3)
        lat = confidence.lattice(flat, pack, lengths, *transitions)
        spans, probs = confidence.scored_spans(lat, spans, len(self.labels), self.scheme,
                                               self.cfg.get("alternatives_threshold"))
        doc_of = numpy.searchsorted(doc_starts, spans[:, 0], side="right")
        offsets = numpy.concatenate([[0], doc_starts])
        return [
            DocPrediction(ids, spans[doc_of == i] - [offsets[i], offsets[i], 0], probs[doc_of == i])
            for i, ids in enumerate(numpy.split(tags, doc_starts))
        ]

    def _loss(self, examples: List[Example], scores: List[Floats2d]):
        docs = [eg.predicted for eg in examples]
        lengths = sequence_lengths(docs, self.model.attrs["max_length"])
        d_zero = [self.model.ops.alloc2f(*s.shape) for s in scores]
        if not len(lengths):
            return 0.0, d_zero, {}
        n_tags_ = n_tags(len(self.labels), self.scheme)
        gold = gold_tags(examples, self.labels, self.scheme, self.vocab.strings)
        gold = split_entities_at(gold, numpy.cumsum(lengths) - lengths, self.scheme)
        allowed_by_gold = torch.from_numpy(gold_allowed(gold, lengths, self.scheme, n_tags_))
        flat = self._emissions(scores, requires_grad=True)
        pack = pack_index(lengths)
        params = self._transition_scores()
        if self.model.attrs["use_crf"]:
            trans = self._constrained(*params)
            emissions = flat
            log_z = crf.log_partition(packed(flat, pack), *trans)
            if (gold == MISSING).any():  # sum over the paths consistent with the gold
                log_z_gold = crf.log_partition(packed(crf.constrain(flat, allowed_by_gold), pack), *trans)
            else:
                log_z_gold = crf.path_score(flat, torch.from_numpy(gold), torch.from_numpy(lengths), *trans)
            total = (log_z - log_z_gold).sum()
        else:  # independent tags: a CRF with no transition scores over log-probabilities
            emissions = torch.log_softmax(flat, dim=1)
            trans = tuple(torch.zeros(p.shape) for p in params)
            log_p_gold = torch.logsumexp(crf.constrain(emissions, allowed_by_gold), dim=1)
            total = -log_p_gold.sum()
            seq_of = torch.from_numpy(numpy.repeat(numpy.arange(len(lengths)), lengths))
            log_z_gold = torch.zeros(len(lengths), dtype=log_p_gold.dtype).index_add(0, seq_of, log_p_gold)
        incorrect = incorrect_spans(examples, self.labels, self.incorrect_spans_key, lengths)
        if len(incorrect):
            total = total + incorrect_spans_loss(emissions, trans, allowed_by_gold, log_z_gold, lengths,
                                                 incorrect, self.scheme)
        loss = total / len(flat)
        if not torch.isfinite(loss):
            raise ValueError(Errors.E003.format(name=self.name, loss=loss.item(), step=self._n_updates))
        return self._gradients(loss, docs, flat, params)


@functools.lru_cache(maxsize=8)
def _allowed_transitions(n_labels: int, scheme: str) -> Tuple[torch.Tensor, ...]:
    """`tags.allowed_transitions` as tensors, kept: with 1,000 labels the masks
    take 0.1 s to build, every update and every batch predicted."""
    return tuple(torch.from_numpy(m) for m in allowed_transitions(n_labels, scheme))


def _no_spans() -> Tuple[numpy.ndarray, numpy.ndarray]:
    return numpy.zeros((0, 3), dtype=numpy.int64), numpy.zeros((0,), dtype=numpy.float32)


def _runs(doc: Doc, mask: numpy.ndarray) -> List[Span]:
    """The maximal spans of consecutive tokens where mask is True."""
    edges = numpy.diff(numpy.concatenate([[0], mask.astype(numpy.int8), [0]]))
    return [Span(doc, int(s), int(e)) for s, e in zip(numpy.flatnonzero(edges == 1), numpy.flatnonzero(edges == -1))]
