"""The paper, readable in one sitting; everything else in ``coala`` is plumbing around it.

- ``frontend``: audio -> log-mel -> 96x96 patches -> MinMax scaling (every constant of the pipeline)
- ``model``: the sizes (``ModelDims``), the five networks, the objective, the trainable kinds, and ``embed``
- ``contextual``: the follow-up paper's tag encoder (self-attention over a clip's tag word vectors)
- ``errors``: the one error base class, ``CoalaError``, and its kinds

This package imports nothing else of ``coala`` (a test checks it), so it can be read, and reused, alone.
"""
