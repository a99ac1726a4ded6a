"""Stage 1, the data: the in-memory dataset (`dataset`), video decoding (`video`), the YouCook2 and
HowTo100M readers, and SynthCook (`synthcook/`), the procedural cooking videos the course runs on.
"""
