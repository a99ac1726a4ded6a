"""User-facing errors: a mistake in input or configuration, reported as one clear line."""

from __future__ import annotations


class VbertError(Exception):
    """A user mistake (bad file, bad config, bad argument): the CLI prints it without a traceback."""


class ConfigError(VbertError):
    """A configuration file or override that does not fit the typed config."""


class DataError(VbertError):
    """An input file (video, annotation, feature shard, checkpoint) that cannot be used."""


class StageError(VbertError):
    """A pipeline stage that finished only in part: what failed is named and recorded, the rest was kept."""
