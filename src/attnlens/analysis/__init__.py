"""Corpus passes over a model: the atlas, Ray shards, interventions, causal checks, explanations, the report.

The package is `analysis` (not `atlas`) so that `attnlens.atlas` stays the function users call.
"""
