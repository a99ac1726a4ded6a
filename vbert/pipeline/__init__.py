"""The whole pipeline: the stage list and `vbert run` (`runner`), and the report it writes (`report`)."""
