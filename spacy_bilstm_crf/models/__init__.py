"""Registered Thinc architectures."""
from .chars import build_char_cnn_v1, build_char_lstm_v1
from .embed import build_char_word_embed_v1, build_char_word_embed_v2, build_pretrained_vectors_v1
from .tagger import build_bilstm_crf_v1

__all__ = [
    "build_bilstm_crf_v1", "build_char_word_embed_v1", "build_char_word_embed_v2", "build_pretrained_vectors_v1",
    "build_char_lstm_v1", "build_char_cnn_v1",
]
