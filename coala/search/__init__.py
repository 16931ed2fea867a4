"""Cross-modal search in COALA's shared space: clips for tag words or a sound, tags for a clip, and how
well the space retrieves (docs/search.md).

    from coala.search import load_pair, build_index, open_index, query_tags, query_audio, tag_files
    pair = load_pair("saved_models/dual_ae_c")               # audio + tag encoder, latest epoch
    build_index(pair, ["my_audio/"], "my_index")
    hits, unknown = query_tags(open_index("my_index", pair), pair, "dog bark", top=5)
"""
from coala.search.index import Hit, SearchIndex, build_index, build_index_from_embeddings, open_index
from coala.search.metrics import Evaluation, evaluate_release
from coala.search.model import ModelPair, load_pair
from coala.search.query import TagScore, clip_vectors, query_audio, query_tags, tag_files

__all__ = ["Hit", "SearchIndex", "build_index", "build_index_from_embeddings", "open_index", "Evaluation",
           "evaluate_release", "ModelPair", "load_pair", "TagScore", "clip_vectors", "query_audio", "query_tags",
           "tag_files"]
