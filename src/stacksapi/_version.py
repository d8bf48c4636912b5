"""The package version, read by the build backend and re-exported as ``stacksapi.__version__``."""

__all__ = ["__version__"]

__version__ = "0.1.0"
