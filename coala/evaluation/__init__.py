"""Downstream evaluation: the three datasets' layouts and tasks (``datasets``, ``task``), the paper's
classification protocol (``protocol``) and the results file with its table and pictures (``report``)."""
