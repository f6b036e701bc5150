"""The run search language: MLflow's filter syntax (the subset people use), parsed once.

    metrics.accuracy > 0.9 and params.C = '1.0' and tags.team = 'risk'
    attributes.status = 'FINISHED' and params.model LIKE 'xgb%'
    metrics.`val loss` <= 0.2 and attributes.run_id IN ('a1b2...', 'c3d4...')

A filter is comparisons joined by ``and`` (case-insensitive; there is no
``or``, as in MLflow). Each compares an entity to a value:

- ``metrics.<key>`` (or ``metric.``): ``= != < <= > >=`` against a number;
  a run's *latest* value of the metric is compared.
- ``params.<key>`` / ``tags.<key>`` (or ``param.``/``tag.``): ``= != LIKE
  ILIKE IN NOT IN`` against quoted strings.
- ``attributes.<name>`` (or ``attribute.``, ``attr.``, ``run.``): ``run_id``,
  ``run_name``, ``status``, ``user_id``, ``parent_run_id`` (strings, as
  params) and ``start_time``, ``end_time`` (milliseconds since the epoch,
  compared as numbers).

A key with spaces or other characters is quoted with backticks or double
quotes. Anything else raises :class:`~shipyard.errors.InvalidInputError`
naming the token and what was expected there.

>>> [c.entity for c in parse_filter("metrics.acc > 0.9 and params.C = '1'")]
['metrics', 'params']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from shipyard.errors import InvalidInputError

__all__ = ["ATTRIBUTES", "Comparison", "OrderKey", "parse_filter", "parse_order_by"]

Entity = Literal["metrics", "params", "tags", "attributes"]
Value = float | str | tuple[str, ...]

_PREFIXES: dict[str, Entity] = {
    "metric": "metrics",
    "metrics": "metrics",
    "param": "params",
    "params": "params",
    "parameter": "params",
    "parameters": "params",
    "tag": "tags",
    "tags": "tags",
    "attribute": "attributes",
    "attributes": "attributes",
    "attr": "attributes",
    "run": "attributes",
}
#: Attribute name -> whether it is compared as a number (times) or a string.
ATTRIBUTES: dict[str, str] = {
    "run_id": "string",
    "run_name": "string",
    "status": "string",
    "user_id": "string",
    "parent_run_id": "string",
    "start_time": "number",
    "end_time": "number",
}
_ATTRIBUTE_ALIASES = {"id": "run_id", "name": "run_name", "created_by": "user_id"}
_NUMBER_OPS = ("=", "!=", "<", "<=", ">", ">=")
_STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
  | (?P<backtick>`[^`]*`)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<word>[A-Za-z_][\w\-/:]*)
  | (?P<dot>\.)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Comparison:
    """``entity.key op value``: one condition of a filter."""

    entity: Entity
    key: str
    op: str
    value: Value


@dataclass(frozen=True)
class OrderKey:
    entity: Entity
    key: str
    descending: bool


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise InvalidInputError(
                f"Invalid filter at {text[pos : pos + 20]!r} (character {pos + 1}): "
                "unexpected character; expected e.g. metrics.accuracy > 0.9 and params.C = '1.0'."
            )
        kind = match.lastgroup or ""
        if kind != "ws":
            out.append(_Tok(kind, match.group(), pos))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok | None:
        tok = self.peek()
        self.i += 1
        return tok

    def fail(self, tok: _Tok | None, expected: str) -> InvalidInputError:
        if tok is None:
            return InvalidInputError(
                f"Invalid filter {self.text!r}: it ends where {expected} was expected."
            )
        return InvalidInputError(
            f"Invalid filter at {tok.text!r} (character {tok.pos + 1}): expected {expected}."
        )

    def entity(self) -> tuple[Entity, str, _Tok]:
        """``prefix.key``; the key may be quoted and contain dots (``metrics.val.loss``)."""
        tok = self.take()
        if tok is None or tok.kind != "word":
            raise self.fail(tok, "metrics.<key>, params.<key>, tags.<key> or attributes.<name>")
        entity = _PREFIXES.get(tok.text.lower())
        dot = self.peek()
        if entity is None or dot is None or dot.kind != "dot":
            known = "metrics., params., tags. or attributes."
            raise self.fail(tok, f"an entity starting with {known} (e.g. metrics.{tok.text})")
        self.take()
        key_tok = self.take()
        if key_tok is None or key_tok.kind not in ("word", "backtick", "string", "number"):
            raise self.fail(key_tok, f"a key after {tok.text}.")
        if key_tok.kind in ("backtick", "string"):
            key = key_tok.text[1:-1]
        else:
            key = key_tok.text
            # An unquoted key may itself have dots: metrics.val.loss
            while (nxt := self.peek()) is not None and nxt.kind == "dot":
                self.take()
                part = self.take()
                if part is None or part.kind not in ("word", "number"):
                    raise self.fail(part, f"the rest of the key {key}.")
                key += "." + part.text
        if not key:
            raise self.fail(key_tok, "a non-empty key")
        if entity == "attributes":
            name = _ATTRIBUTE_ALIASES.get(key.lower(), key.lower())
            if name not in ATTRIBUTES:
                raise self.fail(key_tok, f"an attribute among {', '.join(ATTRIBUTES)}")
            key = name
        return entity, key, key_tok

    def operator(self) -> _Tok:
        tok = self.take()
        if tok is not None and tok.kind == "op":
            return _Tok("op", {"==": "=", "<>": "!="}.get(tok.text, tok.text), tok.pos)
        if tok is not None and tok.kind == "word":
            word = tok.text.upper()
            if word == "NOT":
                nxt = self.take()
                if nxt is None or nxt.kind != "word" or nxt.text.upper() not in ("IN", "LIKE"):
                    raise self.fail(nxt, "IN or LIKE after NOT")
                word = f"NOT {nxt.text.upper()}"
            if word in ("LIKE", "ILIKE", "IN", "NOT IN", "NOT LIKE"):
                return _Tok("op", word, tok.pos)
        raise self.fail(tok, "a comparison (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN)")

    def value(self, entity: Entity, key: str, op: _Tok) -> Value:
        numeric = entity == "metrics" or (entity == "attributes" and ATTRIBUTES[key] == "number")
        allowed = _NUMBER_OPS if numeric else (*_STRING_OPS, "NOT LIKE")
        if op.text not in allowed:
            what = "a metric" if entity == "metrics" else f"{entity}.{key}"
            raise InvalidInputError(
                f"Invalid filter at {op.text!r} (character {op.pos + 1}): {what} can be "
                f"compared with {', '.join(allowed)}."
            )
        if op.text in ("IN", "NOT IN"):
            return self.string_list()
        tok = self.take()
        if numeric:
            if tok is None or tok.kind != "number":
                raise self.fail(tok, f"a number to compare {entity}.{key} with")
            return float(tok.text)
        if tok is None or tok.kind != "string":
            raise self.fail(tok, f"a quoted string to compare {entity}.{key} with, e.g. '1.0'")
        return _unquote(tok.text)

    def string_list(self) -> tuple[str, ...]:
        tok = self.take()
        if tok is None or tok.kind != "lparen":
            raise self.fail(tok, "a parenthesised list of quoted strings, e.g. ('a', 'b')")
        items: list[str] = []
        while True:
            tok = self.take()
            if tok is None or tok.kind != "string":
                raise self.fail(tok, "a quoted string in the list")
            items.append(_unquote(tok.text))
            tok = self.take()
            if tok is not None and tok.kind == "rparen":
                return tuple(items)
            if tok is None or tok.kind != "comma":
                raise self.fail(tok, "',' or ')' in the list")

    def parse(self) -> list[Comparison]:
        out: list[Comparison] = []
        if not self.toks:
            return out
        while True:
            entity, key, _ = self.entity()
            op = self.operator()
            out.append(Comparison(entity, key, op.text, self.value(entity, key, op)))
            tok = self.take()
            if tok is None:
                return out
            if tok.kind != "word" or tok.text.upper() != "AND":
                hint = (
                    " (OR is not supported: run two searches)" if tok.text.upper() == "OR" else ""
                )
                raise self.fail(tok, f"AND between comparisons{hint}")


def _unquote(text: str) -> str:
    body = text[1:-1]
    quote = text[0]
    return body.replace(quote * 2, quote).replace("\\" + quote, quote)


def parse_filter(text: str | None) -> list[Comparison]:
    """The comparisons of ``text`` (all must hold); empty or None matches every run."""
    if text is None:
        return []
    if not isinstance(text, str):
        raise InvalidInputError(f"A filter is a string, got {type(text).__name__}.")
    return _Parser(text).parse()


def parse_order_by(clauses: list[str] | None) -> list[OrderKey]:
    """``["metrics.accuracy DESC", "params.C"]`` into sort keys (ascending unless DESC)."""
    out: list[OrderKey] = []
    for clause in clauses or []:
        if not isinstance(clause, str):
            raise InvalidInputError(f"order_by items are strings, got {clause!r}.")
        parser = _Parser(clause)
        entity, key, _ = parser.entity()
        descending = False
        tok = parser.take()
        if tok is not None:
            if tok.kind != "word" or tok.text.upper() not in ("ASC", "DESC"):
                raise parser.fail(tok, "ASC or DESC after the sort key")
            descending = tok.text.upper() == "DESC"
            extra = parser.take()
            if extra is not None:
                raise parser.fail(extra, "the end of the order_by clause")
        out.append(OrderKey(entity, key, descending))
    return out
