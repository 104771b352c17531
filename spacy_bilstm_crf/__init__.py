"""spacy-bilstm-crf: a BiLSTM-CRF named entity recognizer for spaCy v3."""
from .about import __version__
from .component import BiLSTMCRFNER, make_bilstm_crf_ner
from .models import (
    build_bilstm_crf_v1, build_char_cnn_v1, build_char_lstm_v1, build_char_word_embed_v1,
    build_pretrained_vectors_v1,
)

__all__ = [
    "__version__", "BiLSTMCRFNER", "make_bilstm_crf_ner", "build_bilstm_crf_v1",
    "build_char_word_embed_v1", "build_pretrained_vectors_v1", "build_char_lstm_v1", "build_char_cnn_v1",
]
