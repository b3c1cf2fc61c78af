"""Evaluation: sliding-window inference (``inference``), LCC post-processing (``postprocess``), per-case
metrics and summaries (``metrics``), and the per-case loop that writes ``per_case.csv`` / ``summary.json``
(``cases``)."""
