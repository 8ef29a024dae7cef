"""Workarounds for third-party packages, each gated on the version that needs it, each with a test."""
