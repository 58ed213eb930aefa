"""labkit: webhooks or polling, settled by measurement."""

from labkit._version import __version__

__all__ = ["__version__"]
