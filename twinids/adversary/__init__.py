"""Attacks on a trained detector: membership inference (what its weights reveal about its training windows)."""
