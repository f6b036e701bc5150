"""The UI's views of tracking, optimization and per-variant monitoring, in headless Chromium.

A run's artifacts (an image, tables, text) on its page with download links;
nested runs as a tree in the runs table; the MLflow-syntax filter; an
optimized version's lineage; per-variant monitoring figures and whether the
performance estimate is calibrated. On SQLite and PostgreSQL, like the other
browser tests, with the same checks on every page (no console error, no
failed request, no other host, no script typed by a user run).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
import pytest
from test_pages_browser import Visit
from ui_seed import XSS

from shipyard.tracking.artifacts import RunArtifacts

matplotlib.use("Agg")
import matplotlib.pyplot as plt

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROWS = 50  # rows of the logged table: the page shows only the first 20


@pytest.fixture
def visit(offline_page: Any, ui_server: Any, tmp_path: Path) -> Visit:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    return Visit(offline_page, ui_server.url, shots)


def _keep_artifacts(client: Any, run_id: str) -> dict[str, bytes]:
    kept = RunArtifacts(client.runs, client.artifacts, run_id)
    figure, axes = plt.subplots(figsize=(3, 2))
    axes.imshow([[40, 2], [3, 45]])
    kept.log_figure(figure, "plots/confusion.png")
    plt.close(figure)
    errors = pd.DataFrame({"row": range(ROWS), "label": ["setosa", XSS] * (ROWS // 2)})
    kept.log_table(errors, "errors.parquet")
    kept.log_table(errors.head(5), "tables/sample.csv")
    kept.log_text(f"notes {XSS}\nsecond line", "notes.txt")
    kept.log_dict({"C": 1.0, "why": XSS}, "config.json")
    buffer = io.BytesIO()
    errors.to_parquet(buffer, index=False)
    return {"errors.parquet": buffer.getvalue()}


def test_a_runs_page_shows_its_artifacts_and_serves_only_its_own(visit: Visit, seeded: Any) -> None:
    client, facts = seeded
    first, second = facts["runs"]
    _keep_artifacts(client, first)
    page = visit.page
    visit.open(f"/runs/{first}", "run-artifacts")
    shown = page.locator("#artifacts section.artifact").evaluate_all(
        "els => els.map(e => [e.dataset.artifact, e.dataset.show])"
    )
    assert shown == [
        ["config.json", "text"],
        ["errors.parquet", "table"],
        ["notes.txt", "text"],
        ["plots/confusion.png", "image"],
        ["tables/sample.csv", "table"],
    ]
    # The image was served by the UI and decoded by the browser.
    image = page.locator('section[data-artifact="plots/confusion.png"] img')
    assert image.evaluate("img => img.complete && img.naturalWidth") > 0
    # The Parquet table: first 20 of 50 rows, the <script> in a cell shown as text.
    parquet = page.locator('section[data-artifact="errors.parquet"]')
    assert parquet.locator("thead th").all_inner_texts() == ["row", "label"]
    assert parquet.locator("tbody tr").count() == 20
    assert "First 20 rows of 50" in parquet.inner_text()
    assert XSS in parquet.locator("tbody tr").nth(1).inner_text()
    csv = page.locator('section[data-artifact="tables/sample.csv"] tbody tr')
    assert csv.count() == 5
    notes = page.locator('section[data-artifact="notes.txt"] pre').inner_text()
    assert notes == f"notes {XSS}\nsecond line"
    config = page.locator('section[data-artifact="config.json"] pre').inner_text()
    assert '"C": 1.0' in config and XSS in config
    visit.check("artifacts shown")

    # Each download link gives the kept bytes with their content type.
    link = page.locator('section[data-artifact="errors.parquet"] a.download')
    href = link.get_attribute("href")
    assert href == f"/runs/{first}/artifacts/errors.parquet?download=true"
    got = page.request.get(visit.base + href)
    assert got.status == 200
    assert got.headers["content-type"] == "application/vnd.apache.parquet"
    assert got.headers["content-disposition"].startswith("attachment;")
    assert "sandbox" in got.headers["content-security-policy"]
    assert pd.read_parquet(io.BytesIO(got.body())).shape == (ROWS, 2)
    png = page.request.get(visit.base + f"/runs/{first}/artifacts/plots/confusion.png")
    assert png.headers["content-type"] == "image/png" and png.body()[:4] == b"\x89PNG"
    text = page.request.get(visit.base + f"/runs/{first}/artifacts/notes.txt")
    assert text.headers["content-type"] == "text/plain; charset=utf-8"

    # Only the run's own artifacts: another run, a path it never kept, '..' are refused.
    for path in (
        f"/runs/{second}/artifacts/errors.parquet",
        f"/runs/{first}/artifacts/missing.txt",
        f"/runs/{first}/artifacts/..%2F..%2Fsecrets",
        f"/runs/{first}/artifacts/plots/..%2F..%2Fnotes.txt",
    ):
        refused = page.request.get(visit.base + path)
        assert refused.status in (400, 404), (path, refused.status)
    assert (
        "has no artifact"
        in page.request.get(visit.base + f"/runs/{second}/artifacts/errors.parquet").text()
    )

    visit.open(f"/runs/{second}")
    assert "No artifacts kept." in page.locator("#artifacts").inner_text()


def _nest(client: Any) -> dict[str, str]:
    """A search run with three candidates, the first with one fold nested under it."""
    runs = client.runs
    search = runs.create_run("tuning", name="grid-search", actor="ann")
    ids = {"grid-search": search.id}
    for i in range(3):
        kid = runs.create_run("tuning", name=f"candidate-{i}", actor="ann", parent_id=search.id)
        runs.log_metrics(kid.id, {"accuracy": 0.8 + i / 20})
        runs.set_run_tags(kid.id, {"team": "risk" if i else "ml"})
        ids[kid.name] = kid.id
    fold = runs.create_run("tuning", name="fold-0", actor="ann", parent_id=ids["candidate-0"])
    runs.log_metrics(fold.id, {"accuracy": 0.97})
    ids["fold-0"] = fold.id
    return ids


def _names(page: Any) -> list[str]:
    cells = page.locator("#runs tbody tr[data-run]:visible td.run-name a")
    return [str(t) for t in cells.all_inner_texts()]


def test_the_runs_table_shows_nested_runs_as_a_tree_that_folds(visit: Visit, seeded: Any) -> None:
    client, _ = seeded
    ids = _nest(client)
    page = visit.page
    visit.open("/runs?experiment=tuning&sort=name&desc=false", "runs-tree")
    assert page.locator("#run-count").inner_text() == "1 run"
    assert page.locator("#nested-count").inner_text() == "(+ 4 nested)"
    rows = page.locator("#runs tbody tr[data-run]").evaluate_all(
        "els => els.map(e => [e.querySelector('td.run-name a').textContent, e.dataset.depth])"
    )
    assert rows == [
        ["grid-search", "0"],
        ["candidate-0", "1"],
        ["fold-0", "2"],
        ["candidate-1", "1"],
        ["candidate-2", "1"],
    ]
    fold_row = page.locator(f'tr[data-run="{ids["fold-0"]}"]')
    assert fold_row.get_attribute("data-parent") == ids["candidate-0"]
    indent = fold_row.locator("td.run-name").evaluate("td => getComputedStyle(td).paddingLeft")
    assert indent == "44px"  # two levels in
    # Fold the candidate: its fold hides; fold the search: everything under it hides.
    page.locator(f'button.fold[data-run="{ids["candidate-0"]}"]').click()
    assert _names(page) == ["grid-search", "candidate-0", "candidate-1", "candidate-2"]
    page.locator(f'button.fold[data-run="{ids["grid-search"]}"]').click()
    assert _names(page) == ["grid-search"]
    # Unfolding the search keeps the still-folded candidate's fold hidden.
    page.locator(f'button.fold[data-run="{ids["grid-search"]}"]').click()
    assert _names(page) == ["grid-search", "candidate-0", "candidate-1", "candidate-2"]
    visit.check("folded")
    # Flat, as before: each run its own row.
    visit.open("/runs?experiment=tuning&tree=false")
    assert page.locator("#run-count").inner_text() == "5 runs"
    assert page.locator("#nested-count").count() == 0
    # A nested run's page links to its parent and the parent's to its children.
    visit.open(f"/runs/{ids['candidate-0']}")
    assert page.locator("#parent-run").get_attribute("href") == f"/runs/{ids['grid-search']}"
    assert page.locator("#child-runs").inner_text() == "fold-0"


def test_the_runs_table_takes_the_mlflow_filter_of_runs_search(visit: Visit, seeded: Any) -> None:
    client, _ = seeded
    ids = _nest(client)
    page = visit.page
    visit.open("/runs?metrics=accuracy&params=C&sort=name&desc=false")
    query = "metrics.accuracy > 0.84 and tags.team = 'risk'"
    page.locator('input[name="filter"]').fill(query)
    page.locator("#run-filters button[type=submit]").click()
    page.wait_for_selector("text=2 runs ")
    visit.check("filtered")
    # The nested candidates the filter keeps stand at the top: their parent does not match.
    assert _names(page) == ["candidate-1", "candidate-2"]
    assert "filter=metrics.accuracy" in page.url  # bookmarkable
    # The same filter gives the same runs as the Python API's search.
    found = client.run_search.search(None, query)
    assert sorted(r.id for r in found) == sorted([ids["candidate-1"], ids["candidate-2"]])
    # Paging and sorting keep the filter.
    page.locator('a[data-sort="metric:accuracy"]').click()
    page.wait_for_selector("text=accuracy ▼")
    assert _names(page) == ["candidate-2", "candidate-1"]
    assert page.locator('input[name="filter"]').input_value() == query
    # Attributes and LIKE, as in runs search.
    visit.open("/runs?filter=attributes.run_name%20LIKE%20%27fold%25%27")
    assert _names(page) == ["fold-0"]
    # A filter that does not parse says why, where the table was, through htmx too.
    page.locator('input[name="filter"]').fill("accuracy > 0.9")
    page.locator("#run-filters button[type=submit]").click()
    page.wait_for_selector("#filter-error")
    assert "expected an entity starting with metrics." in page.locator("#filter-error").inner_text()
    visit.expected_refusal(400)
    visit.check("bad filter")


def test_an_optimized_versions_page_says_from_what_how_and_at_what_cost(
    visit: Visit, seeded: Any
) -> None:
    from shipyard.optimization.service import Distill, optimize_model
    from shipyard.quickstart import iris_frame

    client, facts = seeded
    X, y = iris_frame()
    holdout = X.assign(species=y)
    made = optimize_model(
        client.registry,
        client.validation,
        f"iris:{facts['v1']}",
        Distill("sklearn.tree:DecisionTreeClassifier?max_depth=3"),
        holdout=holdout,
        target="species",
    )
    page = visit.page
    visit.open(f"/models/iris/versions/{made.version.version}", "version-optimized")
    box = page.locator("#optimized-from")
    assert "Optimized from iris:1 by distillation into sklearn.tree:Decision" in box.inner_text()
    source = box.locator("a")
    assert source.get_attribute("href") == "/models/iris/versions/1"
    cost = box.locator('tr[data-fact="metric cost"] td').nth(1).inner_text()
    assert cost == made.tags["optimization_cost"] and cost.startswith("accuracy ")
    gates = box.locator('tr[data-fact="gates against the source"] td').nth(1).inner_text()
    assert gates == made.tags["optimization_gates"] and gates.startswith(("passed", "failed"))
    assert "->" in box.locator('tr[data-fact="size"]').inner_text()
    # The source's page lists what was made from it; a version not optimized shows nothing.
    source.click()
    page.wait_for_load_state("networkidle")
    visit.check("source version")
    derived = page.locator("#optimized-into").inner_text()
    assert f"iris:{made.version.version} by distillation" in derived and cost in derived
    assert page.locator("#optimized-from").count() == 0


def _log_canary(client: Any, version: int) -> None:
    """The canary's own traffic: twelve requests over the last three hours, half labelled."""
    from datetime import timedelta

    import numpy as np

    from shipyard.clock import utc_now
    from shipyard.monitoring.feedback import record_feedback
    from shipyard.monitoring.records import PredictionBatch
    from shipyard.quickstart import iris_frame

    X, y = iris_frame()
    log = client.prediction_log
    model = client.registry.load(f"iris:{version}")
    rng = np.random.default_rng(1)
    labels = []
    for i in range(12):
        rows = rng.choice(len(X), size=20, replace=False)
        inputs = X.iloc[rows].reset_index(drop=True)
        proba = np.asarray(model.predict_proba(inputs))
        classes = tuple(model.classes)
        log.write(
            PredictionBatch(
                request_id=f"canary-{i}",
                timestamp=utc_now() - timedelta(minutes=15 * (i + 1)),
                model="iris",
                version=version,
                inputs=inputs,
                predictions=np.asarray(classes)[proba.argmax(axis=1)],
                probabilities=proba,
                classes=classes,
                latency_seconds=0.003,
                variant="canary",
                source="online",
                deployment="web",
            )
        )
        truth = y.iloc[rows].to_numpy()
        labels += [
            {"request_id": f"canary-{i}", "row": r, "label": str(truth[r])} for r in range(10)
        ]
    record_feedback(log, labels, model="iris")
    log.flush(timeout=30)


def _variant_rows(page: Any) -> dict[str, dict[str, str]]:
    rows = page.locator("#variant-figures tbody tr").evaluate_all(
        """els => els.map(e => [e.dataset.variant + ' ' + e.dataset.version,
            Object.fromEntries([...e.querySelectorAll('td[data-metric]')].map(
                td => [td.dataset.metric + ' ' + td.dataset.kind, td.textContent]))
            ])"""
    )
    return {name: cells for name, cells in rows}


def test_monitoring_and_deployment_pages_show_each_variant_and_say_if_calibrated(
    visit: Visit, seeded: Any
) -> None:
    import json
    import shlex
    from datetime import timedelta
    from urllib.parse import quote

    from typer.testing import CliRunner

    from shipyard.cli.main import app as cli_app
    from shipyard.clock import utc_now
    from shipyard.monitoring.durations import floor_time
    from shipyard.monitoring.performance import performance
    from shipyard.quickstart import iris_frame
    from shipyard.ui.charts import fmt

    client, facts = seeded
    v1, v2 = facts["v1"], facts["v2"]
    _log_canary(client, v2)
    page = visit.page
    visit.open("/monitoring/iris?window=24h", "monitoring-variants")
    rows = _variant_rows(page)
    assert set(rows) == {f"primary {v1}", f"canary {v2}"}
    assert page.locator("#calibration").get_attribute("data-calibrated") == "no"
    assert "not calibrated" in page.locator("#calibration").inner_text()

    # Calibrate both versions on labelled reference data: the page says so, and its figures
    # are those of `shipyard monitor performance` (the same function, same calibrations).
    X, y = iris_frame()
    reference = X.assign(species=y)
    for number in (v1, v2):
        version = client.models.get_version("iris", number)
        client.calibrations.fit(version, client.registry.load(version.ref), reference, "species")
    # A fixed end, so the page and the report below cover the same hours.
    end = utc_now()
    visit.open(f"/monitoring/iris?window=24h&until={quote(end.isoformat())}")
    assert page.locator("#calibration").get_attribute("data-calibrated") == "yes"
    assert "calibrated on labelled reference data" in page.locator("#calibration").inner_text()
    shown = _variant_rows(page)
    start = page.locator("main").inner_text()
    assert "Per variant" in start
    report = performance(
        client.prediction_log,
        "iris",
        window="1h",
        since=floor_time(end - timedelta(hours=24), timedelta(hours=1)),
        until=end,
        task="classification",
        calibration=client.calibrations.latest,
    )
    assert report.calibrated is True
    for v in report.variants:
        cells = shown[f"{v.variant} {v.version}"]
        assert cells["accuracy estimated"] == fmt(v.figures.estimated["accuracy"])
        assert cells["accuracy realized"] == fmt(v.figures.realized["accuracy"])
        row = page.locator(f'#variant-figures tr[data-variant="{v.variant}"]')
        counts = row.locator("td.num").all_inner_texts()[:3]
        assert counts == [
            str(v.figures.n_predictions),
            str(v.figures.n_labelled),
            fmt(v.figures.coverage),
        ]
    assert shown[f"canary {v2}"]["accuracy estimated"] != "-"
    # Macro F1 and ROC AUC need every row: the page leaves them to the command it names.
    assert set(shown[f"canary {v2}"]) == {"accuracy realized", "accuracy estimated"}
    omitted = page.locator("#variant-omitted").inner_text()
    assert "Macro F1 and ROC AUC" in omitted
    assert "shipyard monitor performance iris --window 1h --since " in omitted
    # The command the page names gives the same accuracy figures, and the rest.
    command = page.locator("#variant-omitted code").inner_text()
    answer = CliRunner().invoke(cli_app, [*shlex.split(command)[1:], "--json"], obj=client)
    assert answer.exit_code in (0, 1), answer.output
    given = json.loads(answer.output)
    assert {f"{v['variant']} {v['version']}" for v in given["variants"]} == set(shown)
    for v in given["variants"]:
        cells = shown[f"{v['variant']} {v['version']}"]
        assert cells["accuracy estimated"] == fmt(v["estimated"]["accuracy"])
        assert cells["accuracy realized"] == fmt(v["realized"]["accuracy"])
        assert set(v["estimated"]) == {"accuracy", "f1_macro", "roc_auc"}

    # The deployment's page: the versions it serves now, the canary beside the primary.
    visit.open("/deployments/web", "deployment-variants")
    assert set(_variant_rows(page)) == {f"primary {v1}", f"canary {v2}"}
    assert page.locator("#calibration").get_attribute("data-calibrated") == "yes"

    # A batch job of the primary's version (`shipyard predict` logs "primary", no
    # deployment): the model's page counts it, the deployment's page does not.
    def primary_predictions(path: str) -> int:
        visit.open(path)
        row = page.locator(f'#variant-figures tr[data-variant="primary"][data-version="{v1}"]')
        return int(row.locator("td.num").all_inner_texts()[0])

    served = primary_predictions("/deployments/web")
    everything = primary_predictions("/monitoring/iris?window=24h")
    _log_batch_job(client, v1, rows=57)
    assert primary_predictions("/deployments/web") == served
    assert primary_predictions("/monitoring/iris?window=24h") == (everything + 57)
    with_web = primary_predictions("/monitoring/iris?window=24h&deployment=web")
    assert with_web == served


def _log_batch_job(client: Any, version: int, rows: int) -> None:
    """What ``shipyard predict`` logs: a job's rows as "primary", with no deployment."""
    import numpy as np

    from shipyard.clock import utc_now
    from shipyard.monitoring.records import PredictionBatch
    from shipyard.quickstart import iris_frame

    X, _ = iris_frame()
    inputs = X.iloc[:rows].reset_index(drop=True)
    model = client.registry.load(f"iris:{version}")
    proba = np.asarray(model.predict_proba(inputs))
    classes = tuple(model.classes)
    client.prediction_log.write(
        PredictionBatch(
            request_id="batch-job-1",
            timestamp=utc_now(),
            model="iris",
            version=version,
            inputs=inputs,
            predictions=np.asarray(classes)[proba.argmax(axis=1)],
            probabilities=proba,
            classes=classes,
            source="batch",
        )
    )
    client.prediction_log.flush(timeout=30)
