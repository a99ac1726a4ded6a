"""Downstream tasks (the paper's Section 4): zero-shot action classification, captioning,
text-to-video generation, forecasting, retrieval and recipe classification.

Each task is a module; `vbert eval TASK` (`vbert.tasks.cli`) runs it on SynthCook and, unchanged,
on YouCook2-format data. Importing this package imports none of them.
"""
