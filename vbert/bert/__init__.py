"""Stage 4, the language model: attention (`attention`), the BERT encoder and MLM head (`model`),
masking (`masking`), the WordPiece tokenizer (`wordpiece`) and Hugging Face import and export (`hf`).
Nothing here knows about video: VideoBERT is this BERT with visual words appended to its vocabulary.
"""
