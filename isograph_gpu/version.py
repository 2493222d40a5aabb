"""The package's version and the isograph release whose outputs it reproduces (imported
by the package root, the CLI and the run manifest; imports nothing)."""

__version__ = "0.1.0"
#: the isograph release whose outputs this package reproduces
REFERENCE_VERSION = "0.1.5"
