"""Audio beside the paper's front end (which is ``coala.core.frontend``): the scaler's files (``scaler``:
this project's JSON, the paper's pickle read safely) and the paper's ``mfcc`` baseline."""
