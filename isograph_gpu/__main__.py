"""``python -m isograph_gpu``: the ``isograph-gpu`` command line."""

from .cli import main

main()
