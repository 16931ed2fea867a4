"""The paper's analysis of its embeddings (``analyse.py``): acoustic descriptors of the validation clips
(``descriptors``), their canonical correlation with the audio embeddings (``cca``), and t-SNE maps of
audio and tag embeddings (``maps``); ``embeddings`` embeds the validation set for both."""
