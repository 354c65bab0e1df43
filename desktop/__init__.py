"""Lookalike's desktop app: PySide6 views and Qt models over the engine in ``core``."""
