"""cloudgate's Google Compute Engine fake (see ../README.md)."""

from .server import Fake, serve

__all__ = ["Fake", "serve"]
