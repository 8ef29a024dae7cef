"""Inference: generation engine (chat and the OpenAI-compatible server build on it)."""
