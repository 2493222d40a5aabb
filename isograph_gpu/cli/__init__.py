"""The ``isograph-gpu`` command line. Subcommands live in their own modules and are
registered here; errors become one line on stderr and a non-zero exit."""

from __future__ import annotations

import click

from .. import __version__
from .common import run_command  # noqa: F401  (re-exported for subcommand modules)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="isograph-gpu")
def main() -> None:
    """Explain IsoGraph gene/isoform modules on the GPU (or the CPU)."""


def _register() -> None:
    from .demo import demo
    from .explain import explain_module

    main.add_command(explain_module)
    main.add_command(demo)
    try:  # commands owned by optional parts are registered when present
        from .structure import annotate_structure

        main.add_command(annotate_structure)
    except ImportError:
        pass
    try:
        from .plot import plot

        main.add_command(plot)
    except ImportError:
        pass


_register()
