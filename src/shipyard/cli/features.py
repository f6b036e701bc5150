"""``shipyard features ...``: define, build training sets, materialize, read online, check skew."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from shipyard.cli._common import (
    JsonOption,
    command_group,
    console,
    get_client,
    print_json,
    table,
    when,
    writing_to,
)
from shipyard.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

app = command_group(
    "Feature store: definitions, point-in-time training sets, online features, skew."
)


@app.command("apply")
def apply_command(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="YAML file of entities, sources and feature views."),
    force: bool = typer.Option(
        False, "--force", help="Allow a breaking change to a view a registered model uses."
    ),
    reason: str | None = typer.Option(None, "--reason", help="Why (needed with --force)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and list changes only."),
    as_json: bool = JsonOption,
) -> None:
    """Validate definitions against their sources and record a new version of each changed one."""
    result = get_client(ctx).features.apply(file, force=force, reason=reason, dry_run=dry_run)
    if as_json:
        print_json(result)
        return
    if not result.changes:
        console.print(f"No changes: {len(result.unchanged)} definitions already applied.")
        return
    rows = [
        [
            c.kind,
            c.name,
            "new" if c.old_version is None else f"v{c.old_version}",
            "(dry run)" if c.new_version is None else f"v{c.new_version}",
            "; ".join(c.breaking) or "-",
        ]
        for c in result.changes
    ]
    title = "Would apply" if dry_run else "Applied"
    console.print(table(title, ["kind", "name", "from", "to", "breaking"], rows))


@app.command("list")
def list_command(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List feature views (and on-demand views) at their newest versions."""
    from shipyard.features.definitions import format_ttl

    catalog = get_client(ctx).features.catalog()
    if as_json:
        print_json(
            {
                "views": {
                    n: {"version": v.version, **v.view.spec()} for n, v in catalog.views.items()
                },
                "on_demand": {
                    n: {"version": ver, **o.spec()} for n, (o, ver) in catalog.on_demand.items()
                },
            }
        )
        return
    rows = [
        [
            n,
            f"v{v.version}",
            ", ".join(v.join_keys),
            format_ttl(v.view.ttl),
            ", ".join(f.name for f in v.view.features),
            v.source.path,
        ]
        for n, v in sorted(catalog.views.items())
    ]
    rows += [
        [n, f"v{ver}", "-", "on demand", ", ".join(f.name for f in o.features), o.function]
        for n, (o, ver) in sorted(catalog.on_demand.items())
    ]
    if not rows:
        console.print("No feature views yet: `shipyard features apply FILE` defines them.")
        return
    console.print(
        table("Feature views", ["view", "version", "keys", "ttl", "features", "source"], rows)
    )


@app.command("show")
def show_command(ctx: typer.Context, view: str, as_json: bool = JsonOption) -> None:
    """Show one feature view: its features, source, and every version."""
    from shipyard.features.registry import view_versions

    service = get_client(ctx).features
    versions = view_versions(service.store, view)
    latest = versions[-1]
    if as_json:
        print_json({"name": view, "versions": versions})
        return
    spec = latest.spec
    console.print(f"[bold]{escape(view)}[/] v{latest.version} ({latest.kind})")
    if latest.kind == "view":
        from shipyard.features.definitions import format_ttl

        resolved = spec["resolved"]
        console.print(
            f"keys {', '.join(resolved['join_keys'])}; ttl {format_ttl(spec['ttl'])}; "
            f"source {resolved['source']['path']} (time {resolved['source']['timestamp_field']})",
            markup=False,
        )
    else:
        console.print(
            f"function {spec['function']}; inputs {', '.join(spec['inputs']) or '-'}", markup=False
        )
    rows = [[f["name"], f["dtype"]] for f in spec["features"]]
    console.print(table("Features", ["feature", "dtype"], rows))
    history = [[f"v{d.version}", when(d.created_at), d.created_by, d.digest[:12]] for d in versions]
    console.print(table("Versions", ["version", "applied", "by", "digest"], history))


@app.command("training-set")
def training_set_command(
    ctx: typer.Context,
    entities: str = typer.Option(
        ...,
        "--entities",
        help="Table of entity rows: join keys, event time, labels (file or URL#TABLE).",
    ),
    features: str = typer.Option(
        ..., "--features", help="Comma-separated view:feature references."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Write here (.parquet, .csv, .jsonl)."),
    timestamp_column: str = typer.Option(
        "event_timestamp", "--timestamp-column", help="The entity rows' event time column."
    ),
    full_feature_names: bool = typer.Option(
        False, "--full-feature-names", help="Name columns view__feature."
    ),
) -> None:
    """Build a point-in-time correct training set (naive timestamps are read as UTC)."""
    from shipyard.tables import read_table, storage_options

    client = get_client(ctx)
    _check_output(output)
    frame = read_table(entities, storage_options=storage_options(client.settings))
    result = client.features.training_set(
        frame,
        features,
        timestamp_column=timestamp_column,
        full_feature_names=full_feature_names,
        source=entities,
    )
    with writing_to(output):
        _write(result, output)
    feature_columns = [c for c in result.columns if c not in frame.columns]
    empty = int(result[feature_columns].isna().all(axis=1).sum()) if feature_columns else 0
    console.print(
        f"Wrote {len(result)} rows x {len(result.columns)} columns to {output} "
        f"({empty} rows found no feature values).",
        markup=False,
    )


def _check_output(output: Path) -> None:
    if output.suffix.lower() not in (".parquet", ".csv", ".jsonl"):
        raise InvalidInputError(f"--output {output}: write a .parquet, .csv or .jsonl file.")


def _write(frame: pd.DataFrame, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    suffix = output.suffix.lower()
    if suffix == ".parquet":
        frame.to_parquet(output, index=False)
    elif suffix == ".csv":
        frame.to_csv(output, index=False)
    else:
        frame.to_json(output, orient="records", lines=True, date_format="iso")


def _moment(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(
            f"{flag} {value!r} is not a time: write ISO 8601, e.g. 2026-01-31T12:00 "
            "(UTC if no zone)."
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@app.command("materialize")
def materialize_command(
    ctx: typer.Context,
    views: list[str] = typer.Argument(None, help="Views to load (default: every online view)."),
    start: str | None = typer.Option(
        None, "--start", help="From this event time, exclusive (ISO 8601, UTC if no zone)."
    ),
    end: str | None = typer.Option(
        None, "--end", help="Up to this event time, inclusive (default: now)."
    ),
    incremental: bool = typer.Option(
        False, "--incremental", help="Start where the last run ended: read only newer rows."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Write each key's newest feature values into the online store (SQLite or Redis)."""
    service = get_client(ctx).features
    results = service.materialize(
        views or None,
        start=_moment(start, "--start"),
        end=_moment(end, "--end"),
        incremental=incremental,
    )
    if as_json:
        print_json(results)
        return
    rows = [
        [r.view, when(r.start) if r.start else "beginning", when(r.end), r.read, r.written]
        for r in results
    ]
    console.print(
        table(
            f"Materialized into {service.online_store.target}",
            ["view", "after", "up to", "keys read", "written"],
            rows,
            right=("keys read", "written"),
        )
    )


def _parse_key(text: str) -> dict[str, str]:
    row = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise InvalidInputError(
                f"--key {text!r} must read column=value (composite keys: a=1,b=2)."
            )
        row[name.strip()] = value.strip()
    return row


def _typed_key(text: str, row: dict[str, str], types: dict[str, str]) -> dict[str, Any]:
    """``--key`` values as their key's type in the source (the JSON shows 1001, not
    "1001"), or a clear error for a value that cannot be one."""
    typed: dict[str, Any] = {}
    for name, value in row.items():
        kind = types.get(name, "string")
        try:
            if kind == "int64":
                typed[name] = int(value)
            elif kind == "float64":
                typed[name] = float(value)
            elif kind == "bool":
                typed[name] = {"true": True, "false": False}[value.lower()]
            else:
                typed[name] = value
        except (ValueError, KeyError):
            raise InvalidInputError(
                f"--key {text!r}: {name!r} is a key of type {kind}, got {value!r}."
            ) from None
    return typed


@app.command("get")
def get_command(
    ctx: typer.Context,
    view: str = typer.Argument(..., help="A feature view, or view:feature references."),
    keys: list[str] = typer.Option(
        ..., "--key", help="An entity row: driver_id=1001 (composite: a=1,b=2); repeatable."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Read features from the online store; values older than the view's TTL are null."""
    features = get_client(ctx).features
    types = features.key_types(view)
    rows = [_typed_key(k, _parse_key(k), types) for k in keys]
    records = features.get_online(view, rows)
    if as_json:
        print_json(records)
        return
    columns = list(records[0])
    console.print(table(None, columns, [[r.get(c) for c in columns] for r in records]))


@app.command("skew")
def skew_command(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="A feature-backed model: eta, eta@staging, eta:3."),
    window: str = typer.Option("24h", "--window", help="Served rows of the last WINDOW."),
    report: Path | None = typer.Option(None, "--report", help="Write the HTML report here."),
    json_path: str | None = typer.Option(None, "--json", help="Write the JSON result here."),
    stattest: str | None = typer.Option(None, "--stattest", help="Test for every feature."),
    threshold: float | None = typer.Option(None, "--threshold", help="Threshold for every test."),
) -> None:
    """Served feature values against a point-in-time training set for the same keys and
    times; exit 1 if any feature is skewed."""
    from shipyard.cli.drift import result_table
    from shipyard.features.service import FeatureSet
    from shipyard.features.skew import feature_skew

    client = get_client(ctx)
    version = client.registry.resolve(model)
    spec = client.registry.load(version.ref).manifest.features
    if spec is None:
        raise InvalidInputError(
            f"{version.ref} was not trained on feature-store features: log it inside a run "
            "that built its training set with `shipyard.features.training_set`."
        )
    logged = client.prediction_log.read(version.model, since=window, version=version.version)
    with console.status("Rebuilding the training set for the served rows...", spinner="dots"):
        result = feature_skew(
            client.features,
            logged,
            FeatureSet.from_dict(spec),
            html=report,
            json_path=json_path,
            stattest=stattest,
            threshold=threshold,
        )
    console.print(result_table(result.drift))
    rows = [[name, f"{share:.4f}"] for name, share in result.equal_share.items()]
    console.print(
        table("Served = offline", ["feature", "share of rows"], rows, right=("share of rows",))
    )
    verdict = "Skew detected" if result.skewed else "No skew"
    console.print(f"{verdict} over {result.rows} served rows of {version.ref}.", markup=False)
    if report is not None:
        console.print(f"HTML report written to {report}", markup=False)
    raise typer.Exit(code=1 if result.skewed else 0)
