"""Repository-wide pytest settings: nbval never compares what a notebook cell writes to stderr.

Warnings and progress bars go to stderr and differ between machines and library versions; only
stdout and rich outputs of cells marked `# NBVAL_CHECK_OUTPUT` are compared.
"""

from __future__ import annotations

try:
    import nbval.plugin as _nbval_plugin
except ImportError:  # nbval is a dev extra; unit tests run without it
    _nbval_plugin = None

if _nbval_plugin is not None:
    _compare_streams = _nbval_plugin.transform_streams_for_comparison

    def _streams_without_stderr(outputs):
        """nbval's stream transform, applied after dropping stderr outputs."""
        kept = [o for o in outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
        return _compare_streams(kept)

    _nbval_plugin.transform_streams_for_comparison = _streams_without_stderr
