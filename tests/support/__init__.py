"""Helpers shared by the test suite: a scripted OpenAI-compatible server and media fixtures."""
