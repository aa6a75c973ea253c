"""Read site.toml into a `Site`, turning every problem into a clear message.

A message names the file, the key path, the bad value and what is valid.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from builder.errors import SiteError
from builder.site.model import PATTERN_MEANING, Site

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_PYDANTIC_TAG = re.compile(r"[a-z-]+\[.*\]", re.DOTALL)


def load_site(path: str | Path) -> Site:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SiteError(str(path), ["file not found"]) from None
    except OSError as exc:
        raise SiteError(str(path), [f"cannot read: {exc.strerror}"]) from None
    return parse_site(raw.decode("utf-8", errors="replace"), str(path))


def parse_site(text: str, path: str = "site.toml") -> Site:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already carries "(at line L, column C)".
        raise SiteError(path, [f"TOML syntax error: {exc}"]) from None
    return site_from_data(data, path)


def site_from_data(data: dict[str, Any], path: str = "site.toml") -> Site:
    try:
        return Site.model_validate(data)
    except ValidationError as exc:
        errors: list[dict[str, Any]] = [dict(e) for e in exc.errors()]
        raise SiteError(path, [_describe(err) for err in _relevant(errors)]) from None


def _relevant(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop "too short" errors that only echo a failed item inside the same list."""
    locs = [tuple(e["loc"]) for e in errors]
    return [
        e for e in errors
        if not (e["type"] == "too_short"
                and any(len(other) > len(e["loc"]) and other[: len(e["loc"])] == tuple(e["loc"]) for other in locs))
    ]


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and not _BARE_KEY.fullmatch(part):
            # A TOML quoted key; JSON's escapes are TOML's, so control characters stay visible.
            quoted = json.dumps(part)
            out += f".{quoted}" if out else quoted
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _describe(err: dict[str, Any]) -> str:
    loc = tuple(p for p in err["loc"] if not _is_union_branch(p))
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "site_rule":
        # Cross-field rules carry their own key in the message.
        return err["msg"]
    key = _key_path(loc)
    if kind == "extra_forbidden":
        return f"{key}: unknown key{_did_you_mean(loc)}"
    if kind == "missing":
        return f"{key}: required key is missing"
    value = err.get("input")
    shown = _show(value)
    msg = err["msg"]
    if kind == "literal_error":
        msg = f"must be one of {ctx.get('expected')}"
    elif kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        msg = f"must be {PATTERN_MEANING.get(pattern, 'text matching ' + pattern)}"
    elif kind == "too_short":
        msg = f"must have at least {ctx.get('min_length')} item(s)"
    elif kind == "tuple_type":
        msg = f"wrong type ({type(value).__name__}): must be a list (a TOML array such as [{shown}])"
    elif kind.endswith("_type"):
        msg = f"wrong type ({type(value).__name__}): {msg[0].lower()}{msg[1:]}"
    return f"{key} = {shown}: {msg}"


def _is_union_branch(part: Any) -> bool:
    # pydantic adds the chosen union member ("str", "int", "function-after[...]") and
    # "[key]" for a bad dict key to the location; users never wrote those.
    return isinstance(part, str) and (
        part in ("str", "int", "float", "bool", "none", "[key]") or _PYDANTIC_TAG.fullmatch(part) is not None
    )


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "{...}"
    if isinstance(value, tuple):
        value = list(value)  # shown as the TOML array the user wrote
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    model = _model_at(Site, loc[:-1])
    if model is None:
        return ""
    known = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f"; valid keys here: {', '.join(known)}"


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class found by walking field annotations along `loc`."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = field.annotation
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Strip Optional[...] down to the model it carries."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return annotation
