"""Input checks shared by the whole package, each raising a ``ValueError`` that names the value and the rule.

This module imports nothing from the package, so every other module (configs, data, masking,
training) checks its input the same way.
"""

from __future__ import annotations

import math
import numbers


def check_choice(name: str, value, choices) -> None:
    """Raise a ValueError that names the bad value and lists the valid choices."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(map(repr, choices))}")


def check_switch(name: str, value) -> None:
    """A setting that is ``"auto"``, ``True`` or ``False`` (bf16 autocast, channels_last)."""
    if not (isinstance(value, bool) or value == "auto"):
        raise ValueError(f"{name} must be 'auto', True or False, got {value!r}")


def check_number(
    name: str,
    value,
    *,
    integer: bool = False,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    below: float | None = None,
    optional: bool = False,
):
    """Check that ``value`` is a finite real number (an integer if ``integer``) within the given bounds.

    ``minimum`` / ``maximum`` are inclusive, ``above`` / ``below`` exclusive; ``optional`` also
    accepts ``None``. NumPy scalars count as numbers; booleans do not. Returns ``value`` as a
    plain ``int`` or ``float`` (or ``None``).
    """
    if value is None and optional:
        return None
    kind = numbers.Integral if integer else numbers.Real
    low = f"[{minimum}" if minimum is not None else f"({above}" if above is not None else None
    high = f"{maximum}]" if maximum is not None else f"{below})" if below is not None else None
    if low and high:
        rule = f"in {low}, {high}"
    elif low:
        rule = (">= " if minimum is not None else "> ") + low[1:]
    elif high:
        rule = ("<= " if maximum is not None else "< ") + high[:-1]
    else:
        rule = ""
    what = ("an integer" if integer else "a finite number") + (f" {rule}" if rule else "") + (" (or None)" if optional else "")
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    value = int(value) if integer else float(value)
    ok = (minimum is None or value >= minimum) and (above is None or value > above)
    ok = ok and (maximum is None or value <= maximum) and (below is None or value < below)
    if not ok:
        raise ValueError(f"{name} must be {what if integer and not optional else rule + (' (or None)' if optional else '')}, got {value!r}")
    return value
