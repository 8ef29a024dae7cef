"""Evaluation: losses and metrics on tokenized data."""
