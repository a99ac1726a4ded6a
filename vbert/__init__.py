"""vbert: VideoBERT (Sun et al., ICCV 2019) built from scratch, for a course and for research.

The pipeline flows one way, one module a stage: video -> features / extract -> visual_vocab
(visual words) -> visual_tokens -> text -> pretrain_data -> model / videobert -> train / pretrain
-> tasks. docs/architecture.md has the module map, the README the course map.
"""

__version__ = "0.1.0"

from vbert.config import Config, load_config  # noqa: E402
from vbert.core.device import seed_everything, select_device  # noqa: E402

__all__ = ["Config", "__version__", "load_config", "seed_everything", "select_device"]
