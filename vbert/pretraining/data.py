"""Pretraining data: the three regimes, masking and fixed-shape batches.

Token files are read by `vbert.visual_words.token_file`; the joint vocabulary and the layout of a
sequence are `vbert.pretraining.joint_vocab`'s. Sequences are built in three regimes (the paper's):

    text-only    [CLS] text [SEP]                 masked prediction of text
    video-only   [CLS] video [SEP]                masked prediction of visual words
    video-text   [CLS] text [>] video [SEP]       masked prediction + linguistic-visual alignment

The paper's noise: a random number of neighbouring sentences concatenated (1 to
`max_concat_sentences`), and the video subsampled at a random rate from 1 to `max_subsample`.
A share `alignment_share` of the video-text pairs trains alignment (all of them by default):
misaligned (label 0) with probability `negative_prob`, the video then coming from another time of
the same video (share `negative_same_video`) or from another video, and masked like the others
unless `mask_alignment_pairs` is false; the other pairs are aligned and train masked prediction.

Every batch has the same shape: `[B, max_seq_len]` ids padded with [PAD], a fixed number of
prediction slots (`vbert.bert.masking.prediction_capacity`), and a fixed count of examples per regime,
so a compiled model never recompiles and never waits on the host. Batch `i` is a pure function of
(seed, i, rank): the data position in a checkpoint is a single integer.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vbert.bert.masking import mask_tokens, predicted_positions, prediction_capacity
from vbert.bert.model import IGNORE_INDEX
from vbert.config import PretrainConfig
from vbert.core.graceful_stop import detach_worker_from_signals
from vbert.errors import DataError
from vbert.pretraining.joint_vocab import JointVocab

TEXT, VIDEO, JOINT = 0, 1, 2  # regime ids, in the order of PretrainConfig.regime_mix
REGIMES = ("text", "video", "video-text")


# ---------------------------------------------------------------- token files


@dataclass
class VideoTokens:
    """One video of a token file: its visual words, and its sentences as (text ids, video words)."""

    video_id: str
    words: np.ndarray  # [num_clips] visual word numbers (not joint ids)
    texts: list[np.ndarray]  # per sentence: WordPiece ids
    video_words: list[np.ndarray]  # per sentence: visual word numbers of the clips in its span


def tokenize_records(records: list[dict], tokenizer: Any) -> list[VideoTokens]:
    """Turn each record's sentence texts into WordPiece ids (one batched call)."""
    texts = [s["text"] for r in records for s in r["sentences"]]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    out, k = [], 0
    for r in records:
        n = len(r["sentences"])
        out.append(
            VideoTokens(
                video_id=str(r["video_id"]),
                words=np.asarray(r["words"], dtype=np.int64),
                texts=[np.asarray(ids, dtype=np.int64) for ids in encoded[k : k + n]],
                video_words=[np.asarray(s["video_words"], dtype=np.int64) for s in r["sentences"]],
            )
        )
        k += n
    return out


# ---------------------------------------------------------------- examples of each regime


@dataclass
class Example:
    """One sequence before padding: joint ids, token types, regime and alignment label."""

    ids: np.ndarray  # [n] joint ids
    types: np.ndarray  # [n] token types
    regime: int
    aligned: int = IGNORE_INDEX  # 1 aligned, 0 misaligned, IGNORE_INDEX when it trains no alignment
    masked: bool = True  # False: no word is masked (an alignment pair, see PretrainConfig.alignment_share)


def regime_counts(batch_size: int, mix: tuple[float, ...]) -> list[int]:
    """Examples per regime in a batch of `batch_size`: largest remainders of batch_size * mix."""
    if len(mix) != 3 or any(m < 0 for m in mix) or sum(mix) <= 0:
        raise DataError(f"pretrain.regime_mix must be three non-negative shares, got {mix}")
    share = np.asarray(mix, dtype=np.float64) / sum(mix) * batch_size
    counts = np.floor(share).astype(int)
    for i in np.argsort(-(share - counts), kind="stable")[: batch_size - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


class ExampleBuilder:
    """Draws examples of the three regimes from a corpus, with the paper's noise and our negatives."""

    def __init__(
        self, videos: list[VideoTokens], vocab: JointVocab, config: PretrainConfig, source: str = "corpus"
    ) -> None:
        self.videos, self.vocab, self.config = videos, vocab, config
        self.sentences = [
            (v, s)
            for v, video in enumerate(videos)
            for s in range(len(video.texts))
            if len(video.texts[s]) > 0
        ]
        self.paired = [(v, s) for v, s in self.sentences if len(videos[v].video_words[s]) > 0]
        self.with_words = [v for v, video in enumerate(videos) if len(video.words) > 0]
        self.paired_videos = {v for v, _ in self.paired}
        need = dict(zip(REGIMES, (self.sentences, self.with_words, self.paired)))
        for (name, pool), share in zip(need.items(), config.regime_mix):
            if share > 0 and not pool:
                raise DataError(
                    f"{source}: no material for the {name} regime (no narrated sentences "
                    "or no visual words): the dataset is empty for it"
                )
        if config.max_seq_len < 8 or config.max_text_len >= config.max_seq_len - 3:
            raise DataError(
                f"pretrain.max_text_len ({config.max_text_len}) must leave room for video "
                f"in max_seq_len ({config.max_seq_len})"
            )

    def _span(self, rng: np.random.Generator, video: int, start: int) -> range:
        """Neighbouring sentences [start, start + n) with n drawn from 1..max_concat_sentences."""
        n = int(rng.integers(1, self.config.max_concat_sentences + 1))
        return range(start, min(start + n, len(self.videos[video].texts)))

    def _subsample(self, rng: np.random.Generator, words: np.ndarray, limit: int) -> np.ndarray:
        """Every r-th word (r in 1..max_subsample) from a random offset, at most `limit` words."""
        rate = int(rng.integers(1, self.config.max_subsample + 1))
        offset = int(rng.integers(0, rate)) if len(words) > rate else 0
        return words[offset::rate][:limit]

    def text_only(self, rng: np.random.Generator) -> Example:
        """[CLS] text [SEP] from neighbouring sentences."""
        v, s = self.sentences[int(rng.integers(len(self.sentences)))]
        video = self.videos[v]
        text = np.concatenate([video.texts[i] for i in self._span(rng, v, s)])[: self.config.max_seq_len - 2]
        ids, types = self.vocab.sequence(text=text)
        return Example(ids, types, TEXT)

    def video_only(self, rng: np.random.Generator) -> Example:
        """[CLS] video [SEP] from a random window of a video's words, subsampled."""
        video = self.videos[self.with_words[int(rng.integers(len(self.with_words)))]]
        length = min(self.config.video_only_len, self.config.max_seq_len - 2)
        window = length * self.config.max_subsample
        start = int(rng.integers(0, max(1, len(video.words) - window + 1)))
        words = self._subsample(rng, video.words[start : start + window], length)
        ids, types = self.vocab.sequence(video=self.vocab.visual_ids(words))
        return Example(ids, types, VIDEO)

    def _negative_words(self, rng: np.random.Generator, v: int, span: range) -> np.ndarray | None:
        """Video words misaligned with sentences `span` of video `v`: another time, or another video."""
        same = [
            s
            for s in range(len(self.videos[v].video_words))
            if (s < span.start or s >= span.stop) and len(self.videos[v].video_words[s]) > 0
        ]
        others = len(self.paired_videos - {v}) > 0
        if same and (not others or rng.random() < self.config.negative_same_video):
            s = same[int(rng.integers(len(same)))]
            stop = min(s + len(span), len(self.videos[v].video_words))
            return np.concatenate([self.videos[v].video_words[i] for i in range(s, stop)])
        if others:
            w = v
            while w == v:  # rejection sampling: uniform over the other videos' sentences
                w, s = self.paired[int(rng.integers(len(self.paired)))]
            return np.concatenate([self.videos[w].video_words[i] for i in self._span(rng, w, s)])
        return None  # a corpus of one single-sentence video has no negatives

    def video_text(self, rng: np.random.Generator, align: bool = True) -> Example:
        """[CLS] text [>] video [SEP]; an alignment pair (share alignment_share) is misaligned with
        probability negative_prob and is unmasked unless mask_alignment_pairs."""
        v, s = self.paired[int(rng.integers(len(self.paired)))]
        video, span = self.videos[v], self._span(rng, v, s)
        text = np.concatenate([video.texts[i] for i in span])[: self.config.max_text_len]
        words = np.concatenate([video.video_words[i] for i in span])
        aligned, masked = IGNORE_INDEX, True
        if rng.random() < self.config.alignment_share and align:
            aligned, masked = 1, self.config.mask_alignment_pairs
            if rng.random() < self.config.negative_prob:
                negative = self._negative_words(rng, v, span)
                if negative is not None and len(negative) > 0:
                    words, aligned = negative, 0
        words = self._subsample(rng, words, self.config.max_seq_len - 3 - len(text))
        ids, types = self.vocab.sequence(text, self.vocab.visual_ids(words))
        return Example(ids, types, JOINT, aligned, masked)

    def examples(self, rng: np.random.Generator, batch_size: int, step: int = 0) -> list[Example]:
        """A batch's examples: fixed counts per regime (text-only, video-only, video-text, in that order).

        Before `alignment_from_step` (a training step), no video-text pair trains alignment.
        """
        counts = regime_counts(batch_size, self.config.regime_mix)
        align = step >= self.config.alignment_from_step
        makers = (self.text_only, self.video_only, lambda r: self.video_text(r, align))
        return [make(rng) for make, n in zip(makers, counts) for _ in range(n)]


# ---------------------------------------------------------------- collate and masking


def collate(
    examples: list[Example], vocab: JointVocab, config: PretrainConfig, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Pad to [B, max_seq_len], mask within each modality, gather a fixed number of prediction slots."""
    batch, length = len(examples), config.max_seq_len
    ids = torch.full((batch, length), vocab.pad_id, dtype=torch.long)  # [B, L]
    types = torch.zeros((batch, length), dtype=torch.long)  # [B, L]
    attention = torch.zeros((batch, length), dtype=torch.long)  # [B, L]
    for i, ex in enumerate(examples):
        n = len(ex.ids)
        ids[i, :n], types[i, :n], attention[i, :n] = torch.from_numpy(ex.ids), torch.from_numpy(ex.types), 1
    special = torch.isin(ids, torch.tensor(vocab.special_ids))  # [B, L]
    special |= torch.tensor([not ex.masked for ex in examples])[:, None]  # unmasked alignment pairs
    is_video = (ids >= vocab.text_size) & (ids < vocab.next_id)  # [B, L]
    low = torch.where(is_video, vocab.text_size, vocab.text_low)  # same-modality replacements
    high = torch.where(is_video, vocab.next_id, vocab.text_size)
    masked, labels = mask_tokens(
        ids,
        special,
        vocab.mask_id,
        (low, high),
        config.mask_prob,
        config.mask_frac,
        config.random_frac,
        generator,
    )
    positions, targets = predicted_positions(labels, prediction_capacity(batch * length, config.mask_prob))
    return {
        "input_ids": masked,  # [B, L]
        "token_type_ids": types,  # [B, L]
        "attention_mask": attention,  # [B, L] 1 = token, 0 = padding
        "mlm_positions": positions,  # [N] flat indices into B*L (padded slots point at 0)
        "mlm_labels": targets,  # [N] original ids, IGNORE_INDEX in padded slots
        "regime": torch.tensor([ex.regime for ex in examples], dtype=torch.long),  # [B]
        "align_labels": torch.tensor([ex.aligned for ex in examples], dtype=torch.long),  # [B]
    }


class PretrainBatches:
    """Endless fixed-shape batches for one process; batch i depends only on (seed, i, rank).

    Iterating continues from `position`, which `state_dict()` / `load_state_dict()` checkpoint.
    With `num_workers > 0` a DataLoader builds batches in worker processes, pinned for the GPU.
    """

    def __init__(
        self,
        builder: ExampleBuilder,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
        grad_accum: int = 1,
    ) -> None:
        if batch_size <= 0:
            raise DataError(f"batch size must be positive, got {batch_size}")
        self.builder, self.batch_size, self.seed, self.rank = builder, batch_size, seed, rank
        self.grad_accum = (
            grad_accum  # micro-batches per optimizer step: batch i belongs to step i // grad_accum
        )
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.position = 0

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        """Batch number `index` of this rank (deterministic)."""
        rng = np.random.default_rng([self.seed, index, self.rank])
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        examples = self.builder.examples(rng, self.batch_size, index // self.grad_accum)
        return collate(examples, self.builder.vocab, self.builder.config, generator)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.batch(index)

    def __iter__(self):
        if self.num_workers == 0:
            while True:
                batch = self.batch(self.position)
                self.position += 1
                yield {k: v.pin_memory() for k, v in batch.items()} if self.pin_memory else batch
        loader = torch.utils.data.DataLoader(
            self,
            batch_size=None,
            sampler=itertools.count(self.position),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            worker_init_fn=detach_worker_from_signals,
        )
        for batch in loader:
            self.position += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """The data position: the index of the next batch."""
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a checkpointed position."""
        self.position = int(state["position"])


# ---------------------------------------------------------------- synthetic batches (benchmarks)


def synthetic_batch(
    batch_size: int,
    seq_len: int,
    text_vocab: int,
    visual_vocab: int,
    device: torch.device | str = "cpu",
    mask_prob: float = 0.15,
    seed: int = 0,
    config: PretrainConfig | None = None,
) -> dict[str, torch.Tensor]:
    """A realistic video-text batch of the given sizes (random ids, real layout and masking), on `device`.

    Every sequence fills `seq_len` exactly, as long narrated videos do; the regime mix and the
    alignment labels follow `config` (default PretrainConfig). Made for benchmark loops.
    """
    config = config or PretrainConfig()
    config = PretrainConfig(**{**config.__dict__, "max_seq_len": seq_len, "mask_prob": mask_prob})
    vocab = JointVocab(text_size=text_vocab, visual_size=visual_vocab)
    rng = np.random.default_rng(seed)
    examples = []
    for regime, n in zip((TEXT, VIDEO, JOINT), regime_counts(batch_size, config.regime_mix)):
        for _ in range(n):
            if regime == TEXT:
                body = rng.integers(vocab.text_low, text_vocab, seq_len - 2)
                examples.append(Example(*vocab.sequence(text=body), TEXT))
            elif regime == VIDEO:
                body = vocab.visual_ids(rng.integers(0, visual_vocab, seq_len - 2))
                examples.append(Example(*vocab.sequence(video=body), VIDEO))
            else:
                n_text = int(rng.integers(8, min(config.max_text_len, seq_len - 8) + 1))
                text = rng.integers(vocab.text_low, text_vocab, n_text)
                video = vocab.visual_ids(rng.integers(0, visual_vocab, seq_len - 3 - n_text))
                ids, types = vocab.sequence(text, video)
                examples.append(Example(ids, types, JOINT, int(rng.random() >= config.negative_prob)))
    batch = collate(examples, vocab, config, torch.Generator().manual_seed(seed))
    return {k: v.to(device) for k, v in batch.items()}
