"""The paper's networks under the paper's module name: ``from models_t1000 import AudioEncoder``.

They live in ``coala.models.networks``; this module keeps code written for the paper's repository running.
"""
from coala.models.networks import CNN, DROPOUT, N_TAGS, AudioDecoder, AudioEncoder, TagDecoder, TagEncoder

__all__ = ["AudioEncoder", "AudioDecoder", "TagEncoder", "TagDecoder", "CNN", "N_TAGS", "DROPOUT"]
