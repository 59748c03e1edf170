"""The package version, in a module of its own so any layer can read it without importing
the root package (which imports the public surface, i.e. the layers above)."""

__version__ = "0.1.0"
