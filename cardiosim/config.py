"""Typed, validated configuration: frozen dataclasses built from plain dicts (TOML).

Every configuration section in cardiosim is a frozen dataclass. :func:`from_dict` builds
one from a mapping and rejects unknown keys, wrong types and impossible values with a
:class:`~cardiosim.errors.ConfigError` that names the key (``garment.slip_sd``), so a
typo in a recipe can never be silently ignored. :func:`to_dict` is its inverse and
:func:`dumps_toml` writes the commented TOML that recipes and datasets store.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Mapping

from .errors import ConfigError

_NUMBER = (int, float)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it in canonical form."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a table of settings, got {type(value).__name__} {value!r}")
        return from_dict(tp, value, prefix=key)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected a list of {len(args)} values, got {len(value)}: {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a table, got {type(value).__name__} {value!r}")
        args = typing.get_args(tp) or (str, Any)
        return {str(k): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, _NUMBER):
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported setting type {_type_name(tp)}")  # pragma: no cover


def from_dict(cls, data: Mapping[str, Any] | None, *, prefix: str = ""):
    """Build the frozen dataclass ``cls`` from ``data``, validating every key.

    Raises
    ------
    ConfigError
        Unknown key, wrong type, or a value the class's own ``validate`` rejects;
        the message names the full key (``prefix.key``).
    """
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or cls.__name__}: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown setting {where}{unknown[0]!s}; valid settings here: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(value, hints[name], key)
    try:
        obj = cls(**kwargs)
    except ConfigError as exc:
        if prefix and not str(exc).startswith(prefix):
            raise ConfigError(f"{prefix}.{exc}") from None
        raise
    return obj


class _Section(dict):
    """A dict that came from a config dataclass: written as a ``[section]`` in TOML."""

    _section = True


def to_dict(obj) -> dict:
    """Plain-dict form of a config dataclass (tuples become lists), the inverse of :func:`from_dict`."""
    out = _Section()
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, dict):
            value = dict(value)
        out[f.name] = value
    return out


def check_fs(fs, name: str = "sampling rate") -> float:
    """The one sampling-rate check: ``fs`` as a float, or :class:`SamplingRateError` naming
    ``name`` and the value when it is not a finite positive number of Hz."""
    from .errors import SamplingRateError

    try:
        value = float(fs)
    except (TypeError, ValueError):
        raise SamplingRateError(f"{name} must be a positive number of Hz, got {fs!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise SamplingRateError(f"{name} must be a positive number of Hz, got {fs!r}")
    return value


def check_range(key: str, value: float, lo: float | None = None, hi: float | None = None,
                *, lo_open: bool = False) -> None:
    """Raise ConfigError naming ``key`` when ``value`` is outside [lo, hi] (or (lo, hi] if lo_open)."""
    if lo is not None and (value < lo or (lo_open and value == lo)):
        bound = f"> {lo}" if lo_open else f">= {lo}"
        raise ConfigError(f"{key} must be {bound}, got {value!r}")
    if hi is not None and value > hi:
        raise ConfigError(f"{key} must be <= {hi}, got {value!r}")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise ConfigError(f"cannot write {type(value).__name__} {value!r} to TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _toml_value(str(key))


def dumps_toml(data: Mapping[str, Any], comments: Mapping[str, str] | None = None) -> str:
    """Write a nested mapping as TOML; ``comments`` maps ``section.key`` to a comment line."""
    comments = comments or {}
    lines: list[str] = []

    def emit(table: Mapping[str, Any], path: str) -> None:
        scalars = {k: v for k, v in table.items() if not (isinstance(v, Mapping) and _is_section(v))}
        sections = {k: v for k, v in table.items() if isinstance(v, Mapping) and _is_section(v)}
        if path:
            lines.append("")
            if path in comments:
                lines.append(f"# {comments[path]}")
            lines.append(f"[{path}]")
        for k, v in scalars.items():
            full = f"{path}.{k}" if path else k
            if full in comments:
                lines.append(f"# {comments[full]}")
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
        for k, v in sections.items():
            emit(v, f"{path}.{k}" if path else k)

    emit(data, "")
    return "\n".join(lines).lstrip("\n") + "\n"


def _is_section(value: Mapping) -> bool:
    # A table whose values are themselves tables or which is a known dataclass section is
    # written as [section]; small name -> number maps stay inline.
    return getattr(value, "_section", False) or any(isinstance(v, Mapping) for v in value.values()) or \
        not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values())
