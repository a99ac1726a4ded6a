"""The sequence figure draws one box per token, coloured by kind, with types and hidden tokens written."""

from __future__ import annotations

from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from vbert.pretraining.figures import KIND_COLOURS, PREDICTED_EDGE, ROW_PITCH, plot_sequence, token_kind
from vbert.pretraining.joint_vocab import JointVocab

VOCAB = JointVocab(text_size=10, visual_size=4)  # text ids [0, 10), visual words [10, 14), [>] = 14
WORDS = {5: "cut", 6: "the", 7: "eggs"}


def name(token_id: int) -> str:
    """A readable name for every id of VOCAB."""
    specials = {VOCAB.cls_id: "[CLS]", VOCAB.sep_id: "[SEP]", VOCAB.mask_id: "[MASK]", VOCAB.next_id: "[>]"}
    if VOCAB.text_size <= token_id < VOCAB.next_id:
        return f"v{token_id - VOCAB.text_size}"
    return specials.get(token_id, WORDS.get(token_id, str(token_id)))


def test_token_kinds() -> None:
    kinds = [token_kind(i, VOCAB) for i in (VOCAB.cls_id, 5, VOCAB.mask_id, VOCAB.next_id, 11, VOCAB.sep_id)]
    assert kinds == ["special", "text", "mask", "special", "video", "special"]


def test_one_box_per_token_with_names_types_and_hidden_tokens() -> None:
    # [CLS] cut [MASK] [>] v0 v2 [SEP] [PAD] [PAD]: position 2 hides "the", position 5 is a predicted v2
    ids = [VOCAB.cls_id, 5, VOCAB.mask_id, VOCAB.next_id, 10, 12, VOCAB.sep_id, VOCAB.pad_id, VOCAB.pad_id]
    types = [0, 0, 0, 1, 1, 1, 1, 0, 0]
    ax = Figure().add_subplot()
    boxes = plot_sequence(ax, ids, types, VOCAB, name, targets={2: 6, 5: 12}, label="video-text")

    assert len(boxes) == 7 and len(ax.patches) == 7  # padding is not drawn
    assert [b.get_label() for b in boxes] == ["[CLS]", "cut", "[MASK]", "[>]", "v0", "v2", "[SEP]"]
    assert [round(b.get_x() + b.get_width() / 2, 6) for b in boxes] == list(range(7))  # one per position
    expected = ["special", "text", "mask", "special", "video", "video", "special"]
    assert [to_hex(b.get_facecolor()) for b in boxes] == [KIND_COLOURS[k] for k in expected]
    outlined = [i for i, b in enumerate(boxes) if to_hex(b.get_edgecolor()) == PREDICTED_EDGE]
    assert outlined == [2, 5]

    texts = [t.get_text() for t in ax.texts]
    assert texts.count("video-text") == 1
    assert texts.count("0") == 3 and texts.count("1") == 4  # one token type under each box
    hidden = [t.get_text() for t in ax.texts if to_hex(t.get_color()) == PREDICTED_EDGE]
    assert hidden == ["the", "v2"]  # the original token above each predicted position


def test_sequences_stack_on_one_axes() -> None:
    ax = Figure().add_subplot()
    first = plot_sequence(ax, [VOCAB.cls_id, 5, VOCAB.sep_id], [0, 0, 0], VOCAB, name)
    second = plot_sequence(ax, [VOCAB.cls_id, 10, 11, VOCAB.sep_id], [0, 1, 1, 1], VOCAB, name, y=-ROW_PITCH)
    assert len(ax.patches) == len(first) + len(second) == 7
    bottom, top = ax.get_ylim()
    assert bottom < second[0].get_y() and first[0].get_y() + first[0].get_height() < top
    assert ax.get_xlim()[1] >= second[-1].get_x() + second[-1].get_width()  # the longer row fits
