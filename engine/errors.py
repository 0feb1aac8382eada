"""Exceptions with messages meant for users (the CLI prints them as one line)."""


class SalrtError(Exception):
    """Base class of salrt's user-facing errors."""


class CheckpointError(SalrtError, ValueError):
    """A weights file that is missing, unreadable, or does not match the model."""


class MediaError(SalrtError):
    """An input that cannot be opened or decoded, or an unsupported input option."""
