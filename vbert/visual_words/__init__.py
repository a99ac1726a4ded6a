"""Stage 3, visual words: hierarchical k-means (`kmeans`, `kmeans_level`, `kmeans_io`), fitting the
vocabulary (`vocab`, the "vocab" stage), every clip to its word (`tokenize`, the "tokenize" stage),
the token file they write (`token_file`) and the figures that show what a word means (`figures`).
"""
