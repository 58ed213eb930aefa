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

from labkit.config.faults import Family
from labkit.errors import ConfigError

# How a style reaches its consumer (``Family``, declared in labkit.config.faults beside the plans that apply
# per family): the provider pushes to an endpoint the consumer exposes (push), the consumer asks (pull), or
# the provider pushes down a connection the consumer opened and holds (stream).


@dataclass(frozen=True)
class Variant:
    """One variant of a style as results and reports name it, and the decision's option it measures.

    ``name`` is what ``Style.variant`` returns for a results row that measured it. ``option`` is the
    name of the option the decision report weighs and lists in its options table, or None for a
    variant that is only evidence for its family (batched webhooks, adaptive polling). A ``hybrid``
    option is listed after the plain ones. ``holds_request`` (the provider holds each request until
    an event arrives), ``fetches_body`` (the consumer fetches each event's body through the API) and
    ``reconciles`` (a poller of the cursor feed recovers what push missed) are the capabilities the
    decision reasons about.
    """

    name: str
    option: str | None
    family: Family
    hybrid: bool = False
    holds_request: bool = False
    fetches_body: bool = False
    # the consumer also reads the cursor feed to recover what push gave up on or delayed (webhooks + a reconciling poller)
    reconciles: bool = False


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
    # The variants a results row of this style can measure, the plain one first (``Style.variant`` names one).
    # None: one variant, named by the label, an option of the style's family.
    variants: tuple[Variant, ...] | None = None
    # The consumer counters (beyond ``requests``) the pipeline brackets over the workload window.
    window_counters: tuple[str, ...] = ()
    # True: a run that names no styles runs this one (the article's comparison: a push and a pull style).
    in_default_comparison: bool = False

    @property
    def family(self) -> Family:
        """push, pull or stream: a push without a public endpoint on the consumer is a held stream."""
        if self.direction == "pull":
            return "pull"
        return "push" if self.needs_public_endpoint else "stream"

    @property
    def declared_variants(self) -> tuple[Variant, ...]:
        """The declared variants, or the one the label names."""
        return self.variants if self.variants is not None else (Variant(self.label, self.label, self.family),)


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


def variants() -> list[tuple[StyleInfo, Variant]]:
    """Every registered style's variants with their style, in display order (a style's plain variant first)."""
    return [(info, v) for info in all_styles() for v in info.declared_variants]


def options(family: Family | None = None) -> tuple[str, ...]:
    """The decision options the registered variants measure (of ``family``, or all), plain before hybrid, in display order."""
    chosen = [v for _, v in variants() if v.option is not None and (family is None or v.family == family)]
    ordered = [v for v in chosen if not v.hybrid] + [v for v in chosen if v.hybrid]
    return tuple(dict.fromkeys(str(v.option) for v in ordered))


def styles_of(family: Family) -> tuple[str, ...]:
    """The names of the registered styles of ``family``, in display order."""
    return tuple(s.name for s in all_styles() if s.family == family)


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


def fault_styles(plan: Any) -> tuple[str, ...]:
    """The registered styles a fault plan applies to: those of the families it names (``plan.families``)."""
    return tuple(s.name for s in all_styles() if s.family in plan.families)


def default_names() -> tuple[str, ...]:
    """The styles a run that names none compares, in display order."""
    return tuple(s.name for s in all_styles() if s.in_default_comparison)


def resolve(settings: Any) -> Any:
    """``settings`` with its styles named: the default comparison when it names none."""
    return settings if settings.styles else settings.model_copy(update={"styles": default_names()})


def check(settings: Any) -> None:
    """Refuse a run whose styles are unknown, outside its fault's families or unable to honour its settings.

    ConfigError, one line naming the style.
    """
    known = [repr(k) for k in names()]
    allowed = " or ".join([", ".join(known[:-1]), known[-1]] if len(known) > 1 else known)
    settings = resolve(settings)
    unknown = [s for s in settings.styles if s not in _REGISTRY]
    if unknown:
        raise ConfigError(f"styles: no style {unknown[0]!r}: input should be {allowed}")
    fault = getattr(settings, "fault", None)
    if fault is not None:
        wrong = [s for s in settings.styles if _REGISTRY[s].family not in fault.families]
        if wrong:
            only = ", ".join(repr(s) for s in fault_styles(fault))
            raise ConfigError(f"fault {fault.kind!r} does not apply to {wrong[0]!r}; set styles to {only}")
    for name in settings.styles:
        reason = refusal(name, settings)
        if reason:
            raise ConfigError(f"styles: {name}: {reason}")
