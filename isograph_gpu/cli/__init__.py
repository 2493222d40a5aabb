"""The ``isograph-gpu`` command line. Subcommands live in their own modules and are
registered here; errors become one line on stderr and a non-zero exit."""

from __future__ import annotations

import click

from ..version import __version__
from .common import (  # noqa: F401  (run_command: for subcommand modules)
    DEBUG,
    PROCESS_ENTRY,
    run_command,
    set_thread_defaults,
)

#: options that take several values after one flag, as isograph's argparse nargs="*"/"+"
MULTI_VALUE_OPTIONS = ("--module-ids", "--output-format")


def expand_multi_value_options(args: list[str]) -> list[str]:
    """``--module-ids A B`` -> ``--module-ids A --module-ids B`` (click takes one value per
    flag); values run until the next token that starts with '-'. Tokens after ``--`` are
    left alone."""
    out: list[str] = []
    current: str | None = None
    for i, tok in enumerate(args):
        if tok == "--":
            out.extend(args[i:])
            return out
        if tok.startswith("-"):
            current = tok if tok in MULTI_VALUE_OPTIONS else None
            out.append(tok)
            continue
        if current is not None and out and out[-1] != current:
            out.append(current)
        out.append(tok)
    return out


def take_debug_flag(args: list[str]) -> tuple[list[str], bool]:
    """Remove ``--debug`` wherever it stands before ``--`` (before or after the
    subcommand); returns the other arguments and whether it was given."""
    end = args.index("--") if "--" in args else len(args)
    kept = [a for a in args[:end] if a != "--debug"] + args[end:]
    return kept, len(kept) != len(args)


class _Group(click.Group):
    def main(self, args=None, *a, **kw):
        import sys

        process_entry = args is None  # the console script / python -m, not a caller's test
        PROCESS_ENTRY["enabled"] = process_entry
        if process_entry:
            set_thread_defaults()  # before any command imports torch
        args, DEBUG["enabled"] = take_debug_flag(list(sys.argv[1:] if args is None else args))
        try:
            return super().main(expand_multi_value_options(args), *a, **kw)
        finally:
            if process_entry:
                skip_final_collections()


def skip_final_collections() -> None:
    """Freeze every object still alive (:func:`gc.freeze`) as the process is about to
    exit: interpreter shutdown then skips the full garbage collections over torch's and
    pandas' objects (0.5-0.9 s at every exit). Called after the command has returned or
    failed, i.e. after the output was committed and its files closed (or the staging
    folder removed); stdout/stderr are still flushed and atexit handlers still run, as
    on any exit. Objects are still freed by reference counting; only cyclic garbage is
    left to the operating system, which reclaims the whole process anyway."""
    import gc

    gc.freeze()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="isograph-gpu")
@click.option("--debug", is_flag=True,
              help="On an internal error print the full traceback (may also follow the "
                   "subcommand).")
def main(debug: bool) -> None:
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
    try:
        from .report import report

        main.add_command(report)
    except ImportError:
        pass


_register()
