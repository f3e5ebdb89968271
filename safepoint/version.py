"""The version of safepoint (of the code; the storage format is `model.FORMAT`)."""

__version__ = "0.1.0"
