"""The joint vocabulary of text and visual words, and the one layout of a VideoBERT input.

One vocabulary holds WordPiece ids `[0, V_text)`, then visual word `w` at `V_text + w`, then `[>]`
at `V_text + K` (K = k**depth). A sequence is one of

    [CLS] text [SEP]                 text alone (text-only pretraining, the language priors)
    [CLS] video [SEP]                video alone (video-only pretraining, pooled video embeddings)
    [CLS] text [>] video [SEP]       both: the paper's input, with its new `[>]` token

with token type 0 for [CLS] and text, 1 for [>], video and the [SEP] that closes a video.
Pretraining, zero-shot classification, generation, forecasting and retrieval all build their
inputs with `JointVocab.sequence`.

Outside vbert (the Hugging Face export's tokenizer, printed sequences) visual word `w` is the token
`[V{w}]` (`[V0]`, `[V1]`, ...) and the separator is `[>]`; `JointVocab.added_tokens()` lists them in
id order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

NEXT_TOKEN = "[>]"  # the paper's new token between text and video


def visual_token(word: int) -> str:
    """The name of visual word `word` outside vbert: `[V{word}]`."""
    return f"[V{int(word)}]"


@dataclass(frozen=True)
class JointVocab:
    """Layout of the joint text + visual vocabulary and its special ids."""

    text_size: int  # V_text: WordPiece ids [0, V_text)
    visual_size: int  # K = k**depth visual words, at ids [V_text, V_text + K)
    pad_id: int = 0
    unk_id: int = 1
    cls_id: int = 2
    sep_id: int = 3
    mask_id: int = 4

    @property
    def next_id(self) -> int:
        """The id of `[>]`, the token between text and video."""
        return self.text_size + self.visual_size

    @property
    def size(self) -> int:
        """Rows of the joint embedding table."""
        return self.text_size + self.visual_size + 1

    @property
    def text_low(self) -> int:
        """First ordinary WordPiece id (random text replacements are drawn from [text_low, V_text))."""
        return max(self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id) + 1

    @property
    def special_ids(self) -> tuple[int, ...]:
        """Ids masking never touches: [PAD], [CLS], [SEP], [MASK] and [>]."""
        return (self.pad_id, self.cls_id, self.sep_id, self.mask_id, self.next_id)

    def added_tokens(self) -> list[str]:
        """Names of the ids after the text vocabulary, in id order: `[V0]` ... `[V{K-1}]`, then `[>]`."""
        return [visual_token(w) for w in range(self.visual_size)] + [NEXT_TOKEN]

    def visual_ids(self, words: np.ndarray) -> np.ndarray:
        """Visual word numbers [n] -> joint ids [n]."""
        return np.asarray(words, dtype=np.int64) + self.text_size

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, visual_size: int) -> JointVocab:
        """Read the special ids of a BertTokenizerFast; append `visual_size` visual words and [>]."""
        ids = {
            name: tokenizer.convert_tokens_to_ids(tok)
            for name, tok in (
                ("pad_id", "[PAD]"),
                ("unk_id", "[UNK]"),
                ("cls_id", "[CLS]"),
                ("sep_id", "[SEP]"),
                ("mask_id", "[MASK]"),
            )
        }
        return cls(text_size=len(tokenizer), visual_size=visual_size, **ids)

    def to_dict(self) -> dict[str, int]:
        """Plain dict (stored in checkpoints and manifests)."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}

    def sequence(
        self, text: Sequence[int] | np.ndarray | None = None, video: Sequence[int] | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids [L], token types [L]) of `[CLS] text [>] video [SEP]`, or of text or video alone.

        `text` holds WordPiece ids, `video` joint ids (`visual_ids(words)`, or [MASK] ids to fill in).
        """
        if text is None and video is None:
            raise ValueError("a sequence needs text, video or both")
        text_ids = np.asarray([] if text is None else text, dtype=np.int64)
        video_ids = np.asarray([] if video is None else video, dtype=np.int64)
        if video is None:  # [CLS] text [SEP]
            ids = np.concatenate([[self.cls_id], text_ids, [self.sep_id]]).astype(np.int64)
            return ids, np.zeros(len(ids), dtype=np.int64)
        if text is None:  # [CLS] video [SEP]
            ids = np.concatenate([[self.cls_id], video_ids, [self.sep_id]]).astype(np.int64)
            types = np.ones(len(ids), dtype=np.int64)
            types[0] = 0
            return ids, types
        ids = np.concatenate([[self.cls_id], text_ids, [self.next_id], video_ids, [self.sep_id]]).astype(
            np.int64
        )
        types = np.concatenate(
            [np.zeros(1 + len(text_ids), dtype=np.int64), np.ones(len(video_ids) + 2, dtype=np.int64)]
        )
        return ids, types
