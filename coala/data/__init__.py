"""Training data: the HDF5 release layout (``hdf5``), tag preprocessing and vocabularies (``tags``), and
building both from a folder of tagged audio (``builder``). ``stopwords_en_nltk.txt`` is NLTK's list."""
