"""Stage 5, joint pretraining: the joint vocabulary and sequence (`joint_vocab`), the three regimes and
their batches (`data`), VideoBERT's heads and losses (`videobert`), the trainer (`trainer`, with
`optim` and `checkpoint`), the finished model's folder (`saved`), the "pretrain" stage (`stage`) and
the speed benchmark (`bench`).
"""
