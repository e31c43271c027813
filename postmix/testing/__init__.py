"""Offline test fixtures: a tiny trainable chat model and a fake OpenAI-compatible server."""
