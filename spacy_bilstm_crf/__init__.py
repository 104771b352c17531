"""spacy-bilstm-crf: a BiLSTM-CRF named entity recognizer for spaCy v3."""
import os

import torch

from .about import __version__
from .component import BiLSTMCRFNER, make_bilstm_crf_ner
from .models import (
    build_bilstm_crf_v1, build_char_cnn_v1, build_char_lstm_v1, build_char_word_embed_v1,
    build_pretrained_vectors_v1,
)
from .monitor import monitor_logger_v1

__all__ = [
    "__version__", "BiLSTMCRFNER", "make_bilstm_crf_ner", "build_bilstm_crf_v1",
    "build_char_word_embed_v1", "build_pretrained_vectors_v1", "build_char_lstm_v1", "build_char_cnn_v1",
    "monitor_logger_v1",
]


def _one_thread_after_fork() -> None:
    # A process forked after torch has run (spaCy's nlp.pipe(n_process=...)
    # forks on Linux) deadlocks in its first parallel op; run one thread per
    # process there instead: the processes are the parallelism.
    torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_one_thread_after_fork)
