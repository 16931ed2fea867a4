"""The audio front end: decoding and log-mel spectrograms (``frontend``), cutting them into the model's
96x96 inputs (``patches``), the MinMax ``scaler``, and the paper's ``mfcc`` baseline."""
