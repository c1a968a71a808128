"""Multimodal embeddings: presets, jobs, the reply format, output files and the local index."""
