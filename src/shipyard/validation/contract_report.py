"""A self-contained HTML report of a contract check: one file, no scripts, no fetches.

Everything (styles included) is inline, so the report can be mailed, attached
to a CI run or opened offline. Values from the data are escaped.

Example:
    >>> import pandas as pd
    >>> from shipyard.validation.contracts import infer_contract
    >>> from shipyard.validation.contract_checks import check_contract
    >>> contract = infer_contract(pd.DataFrame({"x": [1.0, 2.0]}))
    >>> result = check_contract(contract, pd.DataFrame({"x": [5.0]}))
    >>> html = render_contract_report(contract, result)
    >>> "<table" in html and "between" in html
    True
"""

from __future__ import annotations

from datetime import datetime

from jinja2 import Environment, select_autoescape

from shipyard.clock import utc_now
from shipyard.validation.contract_checks import ContractResult
from shipyard.validation.contracts import DataContract

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Data contract check: {{ title }}</title>
<style>
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem;
         color: #1f2328; background: #fff; }
  h1 { font-size: 1.4rem; margin: 0 0 .3rem; }
  h2 { font-size: 1.1rem; margin: 1.8rem 0 .6rem; }
  .meta { color: #59636e; margin-bottom: 1rem; }
  .badge { display: inline-block; padding: .15rem .6rem; border-radius: 1rem; font-weight: 600;
           color: #fff; }
  .pass { background: #1a7f37; } .fail { background: #cf222e; } .warn { background: #9a6700; }
  .cards { display: flex; gap: 1rem; flex-wrap: wrap; margin: 1rem 0; }
  .card { border: 1px solid #d1d9e0; border-radius: .5rem; padding: .6rem 1rem; min-width: 9rem; }
  .card b { display: block; font-size: 1.3rem; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #d1d9e0;
           vertical-align: top; }
  th { background: #f6f8fa; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  code { background: #f6f8fa; padding: 0 .25rem; border-radius: .25rem; }
  .bar { background: #ffebe9; height: .5rem; border-radius: .25rem; overflow: hidden;
         width: 6rem; display: inline-block; vertical-align: middle; }
  .bar span { background: #cf222e; display: block; height: 100%; }
  .ok { color: #59636e; }
</style>
</head>
<body>
<h1>Data contract check: {{ title }}</h1>
<div class="meta">{% if source %}{{ source }} &middot; {% endif %}checked {{ when }}</div>
<span id="status" class="badge {{ status_class }}">{{ status }}</span>
<span>{{ result.summary() }}</span>
<div class="cards">
  <div class="card"><b>{{ result.n_rows }}</b>rows</div>
  <div class="card"><b>{{ result.expectations_checked }}</b>expectations checked</div>
  <div class="card"><b id="error-count">{{ result.errors|length }}</b>errors</div>
  <div class="card"><b id="warning-count">{{ result.warnings|length }}</b>warnings
    {{ '(fail: strict)' if result.strict else '' }}</div>
  <div class="card"><b>{{ result.rows_flagged }}</b>rows with a violation</div>
</div>

<h2>Violations</h2>
{% if result.violations %}
<table id="violations">
  <thead><tr><th>Column</th><th>Severity</th><th>Expectation</th><th>Expected</th><th>Failing</th>
  <th>Share</th><th>Example rows (0-based)</th><th>Example values</th></tr></thead>
  <tbody>
  {% for v in result.violations %}
  <tr class="violation" data-severity="{{ v.severity }}">
    <td><code>{{ v.column }}</code></td>
    <td>{{ v.severity }}</td>
    <td>{{ v.expectation }}</td>
    <td>{{ v.expected }}</td>
    <td class="num">{{ v.count }} / {{ v.checked }}</td>
    <td><span class="bar"><span style="width: {{ (v.fraction * 100)|round(1) }}%"></span></span>
        {{ '%.1f'|format(v.fraction * 100) }}%</td>
    <td>{{ v.rows|join(', ') if v.rows else '-' }}</td>
    <td>{% for value in v.values %}<code>{{ value }}</code>{{ ', ' if not loop.last }}
        {% else %}-{% endfor %}</td>
  </tr>
  {% endfor %}
  </tbody>
</table>
{% else %}
<p class="ok">No expectation was violated.</p>
{% endif %}
{% if result.extra_columns %}
<p class="ok">Columns not in the contract (not checked):
  {% for c in result.extra_columns %}<code>{{ c }}</code>{{ ', ' if not loop.last }}{% endfor %}</p>
{% endif %}

<h2>The contract</h2>
<table id="contract">
  <thead><tr><th>Column</th><th>Type</th><th>Nullable</th><th>Bounds (hard)</th>
  <th>Expected range (soft)</th><th>Categories</th>
  <th>p01 .. p99</th></tr></thead>
  <tbody>
  {% for c in contract.columns %}
  <tr>
    <td><code>{{ c.name }}</code>{{ '' if c.required else ' (optional)' }}</td>
    <td>{{ c.dtype }}</td>
    <td>{{ 'yes' if c.nullable else 'no' }}</td>
    <td>{% if c.has_bounds %}{{ fmt(c.lower_bound) }} ..
        {{ fmt(c.upper_bound) }}{% else %}-{% endif %}</td>
    <td>{% if c.minimum is not none or c.maximum is not none %}{{ fmt(c.minimum) }} ..
        {{ fmt(c.maximum) }}{% else %}-{% endif %}</td>
    <td>{{ c.categories|join(', ') if c.categories else '-' }}</td>
    <td>{% if c.quantiles %}{{ fmt(c.quantiles.get('p01')) }} ..
        {{ fmt(c.quantiles.get('p99')) }}{% else %}-{% endif %}</td>
  </tr>
  {% endfor %}
  </tbody>
</table>
<p class="meta">Contract inferred from {{ contract.rows_profiled }} rows; tail checks run on
batches of {{ contract.min_rows_for_distribution }}+ values. Errors break a hard expectation
(type, missing values, bounds, categories); warnings a soft one (expected range, tail share),
which fail the check only when it is strict
{{- ' (this contract is)' if contract.strict else '' }}.</p>
</body>
</html>
"""

_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def render_contract_report(
    contract: DataContract,
    result: ContractResult,
    *,
    title: str = "data",
    source: str = "",
    now: datetime | None = None,
) -> str:
    """The HTML report of ``result`` (a check of data against ``contract``), as a string."""
    template = _ENV.from_string(_TEMPLATE)
    when = (now or utc_now()).strftime("%Y-%m-%d %H:%M:%S UTC")
    if not result.passed:
        status, status_class = "FAILED", "fail"
    elif result.warnings:
        status, status_class = "PASSED WITH WARNINGS", "warn"
    else:
        status, status_class = "PASSED", "pass"
    return template.render(
        contract=contract,
        result=result,
        title=title,
        source=source,
        when=when,
        fmt=_fmt,
        status=status,
        status_class=status_class,
    )


__all__ = ["render_contract_report"]
