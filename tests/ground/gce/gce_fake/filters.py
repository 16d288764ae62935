"""List `filter` expressions, the two dialects Compute accepts.

AIP-160 style:  name = foo   labels.env != "prod"   labels.owner:*   (a = 1) OR (b = 2)
regex style:    name eq 'web-.*'   (name ne .*-old) (description eq "x")

Juxtaposition means AND; in AIP-160 OR binds tighter than AND.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Callable

Predicate = Callable[[dict], bool]


class FilterError(ValueError):
    pass


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lp>\() | (?P<rp>\)) |
        (?P<op>!=|<=|>=|=|<|>|:) |
        (?P<dq>"(?:[^"\\]|\\.)*") | (?P<sq>'(?:[^'\\]|\\.)*') |
        (?P<word>[^\s()=!<>:"']+)
    )""",
    re.X,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FilterError(f"unexpected character at {pos}")
        pos = m.end()
        kind = m.lastgroup
        val = m.group(kind)
        if kind in ("dq", "sq"):
            val = re.sub(r"\\(.)", r"\1", val[1:-1])
            kind = "str"
        out.append((kind, val))
    return out


def lookup(obj: Any, path: str) -> Any:
    cur = obj
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return None
    return cur


def _as_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return ""
    return str(v)


def _compare(op: str, actual: Any, want: str) -> bool:
    if op == ":":
        if want == "*":
            return actual is not None
        if isinstance(actual, list):
            return any(_as_text(a) == want for a in actual)
        if isinstance(actual, dict):
            return want in actual
        return actual is not None and want in _as_text(actual)
    if op in ("eq", "ne"):
        hit = re.fullmatch(want, _as_text(actual)) is not None
        return hit if op == "eq" else not hit
    text = _as_text(actual)
    if op in ("=", "!="):
        if isinstance(actual, list):
            hit = any(_as_text(a) == want for a in actual)
        elif "*" in want:
            hit = fnmatch.fnmatchcase(text, want)
        else:
            hit = text == want
        return hit if op == "=" else not hit
    try:
        a, b = float(text), float(want)
    except ValueError:
        a, b = text, want  # type: ignore[assignment]
    if actual is None:
        return False
    return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]


def parse(text: str | None) -> Predicate:
    if not text or not text.strip():
        return lambda _obj: True
    toks = _tokens(text)
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else (None, None)

    def take():
        nonlocal pos
        t = toks[pos]
        pos += 1
        return t

    def conj() -> Predicate:  # AND of disjunctions
        parts = [disj()]
        while True:
            k, v = peek()
            if k is None or k == "rp":
                break
            if k == "word" and v == "AND":
                take()
            parts.append(disj())
        return lambda o: all(p(o) for p in parts)

    def disj() -> Predicate:
        parts = [unary()]
        while peek() == ("word", "OR"):
            take()
            parts.append(unary())
        return lambda o: any(p(o) for p in parts)

    def unary() -> Predicate:
        k, v = peek()
        if k == "word" and v in ("NOT", "-"):
            take()
            inner = unary()
            return lambda o: not inner(o)
        if k == "lp":
            take()
            inner = conj()
            if peek()[0] != "rp":
                raise FilterError("missing )")
            take()
            return inner
        return comparison()

    def comparison() -> Predicate:
        k, field = take() if pos < len(toks) else (None, None)
        if k != "word":
            raise FilterError("expected a field name")
        k2, op = take() if pos < len(toks) else (None, None)
        if k2 == "op":
            pass
        elif k2 == "word" and op in ("eq", "ne"):
            pass
        else:
            raise FilterError(f"expected an operator after {field}")
        k3, value = take() if pos < len(toks) else (None, None)
        if k3 not in ("word", "str"):
            raise FilterError(f"expected a value after {field} {op}")
        if op in ("eq", "ne"):
            try:
                re.compile(value)
            except re.error as e:
                raise FilterError(f"bad regular expression {value!r}: {e}") from e
        return lambda o, f=field, op=op, val=value: _compare(op, lookup(o, f), val)

    pred = conj()
    if pos != len(toks):
        raise FilterError("unexpected trailing tokens")
    return pred
