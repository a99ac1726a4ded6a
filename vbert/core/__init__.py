"""Plumbing every stage shares: manifests and the stage cache, stages and the resolver that builds
what a stage needs, run folders, safe weight files, device choice, distributed setup, signals and
progress bars. Nothing here knows about video, text or models.
"""
