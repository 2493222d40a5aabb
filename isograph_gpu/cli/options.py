"""Parameter types shared by the subcommands: every value is range-checked where click
parses it, so a bad value is one usage line naming the flag (exit 2), before any work."""

from __future__ import annotations

import math

import click

#: memory size suffixes (binary units)
_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses NaN and +-inf (a NaN passes every comparison,
    so a plain FloatRange accepts ``nan``); ``nonzero`` refuses 0."""

    def __init__(self, min: float | None = None, max: float | None = None, *,
                 min_open: bool = False, max_open: bool = False, nonzero: bool = False) -> None:
        super().__init__(min, max, min_open=min_open, max_open=max_open)
        self.nonzero = nonzero

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        number = click.FloatRange.convert(self, value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        if self.nonzero and number == 0.0:
            self.fail(f"{value!r} must be non-zero.", param, ctx)
        return number

    def _describe_range(self) -> str:
        bounds = (super()._describe_range() if self.min is not None or self.max is not None
                  else "finite")
        return f"{bounds}, non-zero" if self.nonzero else bounds


class MemorySize(click.ParamType):
    """'2G', '512M', '1.5GB', '64K' or a byte count -> a positive, finite number of bytes."""

    name = "size"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if isinstance(value, int) and not isinstance(value, bool):
            number = float(value)
        else:
            text = str(value).strip().upper().removesuffix("IB").removesuffix("B")
            digits, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "")
            try:
                number = float(digits) * _UNITS[unit]
            except ValueError:
                self.fail(f"cannot read memory size {value!r} (e.g. 4G, 512M).", param, ctx)
        if not math.isfinite(number) or number < 1:
            self.fail(f"{value!r} must be a positive, finite size (e.g. 4G, 512M).", param, ctx)
        return int(number)


MEMORY_SIZE = MemorySize()
