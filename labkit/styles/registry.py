"""The registry of delivery styles and what every layer may know of one.

A style module calls ``register(StyleInfo(...), unit)`` as it is imported;
``labkit.styles`` imports the shipped style modules with plain imports, and
since a package is imported before any of its modules, every lookup here sees
them. Figures, reports and summaries read a style's presentation and
semantics from here instead of testing its name. The settings hold style
names as data; ``check`` is where a run's names and combinations are judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from labkit.errors import ConfigError


@dataclass(frozen=True)
class StyleInfo:
    """What a style is, independent of how a run starts it."""

    name: str
    label: str
    colour: str
    marker: str
    # push: the provider sends as events happen; pull: the consumer asks.
    direction: Literal["push", "pull"]
    # True when the consumer must expose a reachable (HTTPS) endpoint to receive events.
    needs_public_endpoint: bool
    # How the consumer recognises a repeated event, in the report's words.
    dedup_key: str
    # Display order in tables and figures (lower first).
    order: int = 100


_REGISTRY: dict[str, StyleInfo] = {}
# name -> the style's unit (a labkit.styles.base.Style; typed there: this module imports nothing of the lab).
_UNITS: dict[str, Any] = {}


def register(info: StyleInfo, unit: Any = None) -> StyleInfo:
    """Add (or replace) a style, with the unit that runs it; returns the info so a module can keep it."""
    _REGISTRY[info.name] = info
    if unit is not None:
        _UNITS[info.name] = unit
    return info


def unregister(name: str) -> None:
    """Remove a style (a test's or a plug-in's); unknown names are ignored."""
    _REGISTRY.pop(name, None)
    _UNITS.pop(name, None)


def get(name: str) -> StyleInfo | None:
    """The style called ``name``, or None for a name no module registered."""
    return _REGISTRY.get(name)


def all_styles() -> list[StyleInfo]:
    """Every registered style, in display order."""
    return sorted(_REGISTRY.values(), key=lambda s: (s.order, s.name))


def names() -> tuple[str, ...]:
    """The registered style names, in display order."""
    return tuple(s.name for s in all_styles())


def unit_of(name: str) -> Any:
    """The unit registered for style ``name`` (``labkit.styles.unit`` gives it typed); ConfigError names an unknown one."""
    found = _UNITS.get(name)
    if found is None:
        known = ", ".join(repr(n) for n in sorted(_UNITS))
        raise ConfigError(f"styles: no delivery style {name!r} (known: {known})")
    return found


def refusal(name: str, settings: Any) -> str | None:
    """Why style ``name`` cannot run ``settings`` (one line naming the setting), or None."""
    reason = unit_of(name).refuse(settings)
    return str(reason) if reason else None


def check(settings: Any) -> None:
    """Refuse a run whose styles are unknown or cannot honour its settings: ConfigError, one line naming the style."""
    known = [repr(k) for k in names()]
    allowed = " or ".join([", ".join(known[:-1]), known[-1]] if len(known) > 1 else known)
    unknown = [s for s in settings.styles if s not in _REGISTRY]
    if unknown:
        raise ConfigError(f"styles: no style {unknown[0]!r}: input should be {allowed}")
    if getattr(settings, "audience", "broadcast") != "broadcast":  # until the styles route by audience (issue 22, step 2)
        raise ConfigError(f"audience: {settings.audience!r} is not delivered by the styles yet; use broadcast")
    for name in settings.styles:
        reason = refusal(name, settings)
        if reason:
            raise ConfigError(f"styles: {name}: {reason}")
