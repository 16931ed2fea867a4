"""The paper's networks under the paper's module name: ``from models_t1000 import AudioEncoder``.

They live in ``coala.core.model``; this module keeps code written for the paper's repository running.
"""
from coala.core.model import CNN, DROPOUT, N_TAGS, AudioDecoder, AudioEncoder, TagDecoder, TagEncoder

__all__ = ["AudioEncoder", "AudioDecoder", "TagEncoder", "TagDecoder", "CNN", "N_TAGS", "DROPOUT"]
