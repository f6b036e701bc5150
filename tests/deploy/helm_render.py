"""A stand-in for ``helm template``: renders deploy/helm/shipyard with the small part of
Go templates (and Helm's functions) that the chart uses.

There is no ``helm`` binary on the test machines (Debian does not package it); Helm's
own engine renders the chart in ``test_helm_template.py`` (``helm_engine.py``), which
checks that this stand-in gives the same objects.

This renderer knows: ``{{ .Values.a.b }}``, ``{{ .Release.Name }}``, ``{{ .Chart.X }}``,
string/number/bool literals, pipelines into ``quote``, ``toYaml``, ``nindent N``,
``indent N`` and ``default X``, ``{{ if PIPELINE }} ... {{ else }} ... {{ end }}``, and
``{{-`` / ``-}}`` whitespace trimming. Anything else (``range``, ``include``,
``define``, a function it does not know, a value the values do not have) is an error,
never a silent blank: the chart cannot use what this stand-in would render wrong.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import yaml

_TOKEN = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_WORD = re.compile(r'"(?:[^"\\]|\\.)*"|[^\s|]+|\|')
_SPACE = " \t\r\n"


class RenderError(ValueError):
    """The template uses something this stand-in does not render."""


def _to_yaml(value: Any) -> str:
    # Helm's toYaml: sorted keys, block style, no trailing newline.
    return yaml.safe_dump(value, sort_keys=True, default_flow_style=False).rstrip("\n")


def _indent(width: int, text: Any) -> str:
    return "\n".join(" " * int(width) + line for line in str(text).split("\n"))


_FUNCTIONS = {
    "quote": lambda value: json.dumps(_format(value)),
    "toYaml": _to_yaml,
    "indent": _indent,
    "nindent": lambda width, text: "\n" + _indent(width, text),
    "default": lambda fallback, value=None: value if _truthy(value) else fallback,
}


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, "") and value != [] and value != {}


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise RenderError(f"cannot print {value!r} without toYaml")


def _lookup(path: str, context: dict[str, Any]) -> Any:
    value: Any = context
    for key in path.lstrip(".").split("."):
        if not isinstance(value, dict) or key not in value:
            raise RenderError(f"{path}: no such value")
        value = value[key]
    return value


def _argument(word: str, context: dict[str, Any]) -> Any:
    if word.startswith('"'):
        return json.loads(word)
    if word.startswith("."):
        return _lookup(word, context)
    if re.fullmatch(r"-?\d+", word):
        return int(word)
    if word in ("true", "false"):
        return word == "true"
    raise RenderError(f"unknown word {word!r}")


def _pipeline(expression: str, context: dict[str, Any]) -> Any:
    words = _WORD.findall(expression)
    commands: list[list[str]] = [[]]
    for word in words:
        if word == "|":
            commands.append([])
        else:
            commands[-1].append(word)
    value: Any = None
    for index, (head, *rest) in enumerate(commands):
        if head in _FUNCTIONS:
            args = [_argument(w, context) for w in rest] + ([value] if index else [])
            value = _FUNCTIONS[head](*args)
        elif index == 0 and not rest:
            value = _argument(head, context)
        else:
            raise RenderError(f"unsupported command {' '.join([head, *rest])!r}")
    return value


def _tokens(template: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position, trim_next = 0, False
    for match in _TOKEN.finditer(template):
        text = template[position : match.start()]
        if trim_next:
            text = text.lstrip(_SPACE)
        if match.group(1):
            text = text.rstrip(_SPACE)
        tokens += [("text", text), ("action", match.group(2).strip())]
        trim_next, position = bool(match.group(3)), match.end()
    tail = template[position:]
    tokens.append(("text", tail.lstrip(_SPACE) if trim_next else tail))
    return tokens


def _parse(tokens: list[tuple[str, str]], i: int) -> tuple[list[Any], int, str | None]:
    """Nodes up to the next ``else``/``end`` (its index and word) or the end (None)."""
    nodes: list[Any] = []
    while i < len(tokens):
        kind, value = tokens[i]
        word = value.split()[0] if value.split() else ""
        if kind == "text":
            nodes.append(("text", value))
        elif word in ("else", "end"):
            return nodes, i, word
        elif word == "if":
            then, i, how = _parse(tokens, i + 1)
            other: list[Any] = []
            if how == "else":
                other, i, how = _parse(tokens, i + 1)
            if how != "end":
                raise RenderError(f"{{{{ {value} }}}} has no {{{{ end }}}}")
            nodes.append(("if", value[2:].strip(), then, other))
        elif word in ("range", "with", "define", "template", "include", "block") or (
            word.startswith("/*")
        ):
            raise RenderError(f"{{{{ {word} }}}} is not supported by this stand-in")
        else:
            nodes.append(("out", value))
        i += 1
    return nodes, i, None


def _run(nodes: list[Any], context: dict[str, Any]) -> str:
    out = []
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "out":
            out.append(_format(_pipeline(node[1], context)))
        else:
            _, condition, then, other = node
            out.append(_run(then if _truthy(_pipeline(condition, context)) else other, context))
    return "".join(out)


def render(template: str, context: dict[str, Any]) -> str:
    nodes, _, stray = _parse(_tokens(template), 0)
    if stray is not None:
        raise RenderError(f"{{{{ {stray} }}}} without an if")
    return _run(nodes, context)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def render_chart(
    chart: Path, *, release: str = "shipyard", values: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every document the chart's templates render (``values`` over values.yaml)."""
    context = {
        "Values": _merge(yaml.safe_load((chart / "values.yaml").read_text()), values or {}),
        "Release": {"Name": release, "Namespace": "default"},
        "Chart": yaml.safe_load((chart / "Chart.yaml").read_text()),
    }
    documents = []
    for template in sorted((chart / "templates").glob("*.yaml")):
        text = render(template.read_text(), context)
        try:
            documents += [d for d in yaml.safe_load_all(text) if d]
        except yaml.YAMLError as exc:
            raise RenderError(f"{template.name} renders invalid YAML: {exc}\n{text}") from exc
    return documents
