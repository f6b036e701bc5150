"""Every page of the UI in headless Chromium, on SQLite and PostgreSQL.

Each page must answer 200, log no console error, fail no request and ask no
host but the UI's own; its key content must be there. A screenshot of each
goes to the test's temporary folder (and to ``SHIPYARD_UI_SCREENSHOTS``, if
set, which is how the README's pictures are made).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from ui_seed import PASSWORD, XSS

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class Visit:
    """Loads pages of one server, recording what went wrong on the way."""

    def __init__(self, offline: Any, base: str, shots: Path) -> None:
        self.offline = offline
        self.page = offline.page
        self.base = base
        self.shots = shots
        self.failed: list[str] = []
        self.bad_status: list[str] = []
        self.page.on("requestfailed", lambda r: self.failed.append(r.url))
        self.page.on(
            "response",
            lambda r: self.bad_status.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )

    def open(self, path: str, shot: str | None = None) -> Any:
        response = self.page.goto(self.base + path)
        assert response is not None and response.status == 200, (path, response and response.status)
        self.page.wait_for_load_state("networkidle")
        self.check(path)
        if shot:
            self.shoot(shot)
        return response

    def submit(self, button: Any) -> None:
        """Click something that loads a new page and wait until that page has loaded.

        Clicking on the next page before its scripts arrived would cancel
        them, which the failed-request check rightly counts as a fault.
        """
        with self.page.expect_navigation(wait_until="load"):
            button.click()

    def check(self, where: str) -> None:
        assert self.offline.errors == [], (where, self.offline.errors)
        assert self.offline.blocked == [], (where, self.offline.blocked)
        assert self.failed == [], (where, self.failed)
        assert self.bad_status == [], (where, self.bad_status)
        # The <script> typed into a description, a tag and a reason never ran.
        assert self.page.evaluate("() => window.__xss") is None, where

    def expected_refusal(self, status: int) -> None:
        """Forget the one refusal a test provoked, after checking it was that one."""
        assert [s.split()[0] for s in self.bad_status] == [str(status)], self.bad_status
        assert len(self.offline.errors) == 1 and str(status) in self.offline.errors[0]
        self.bad_status.clear()
        self.offline.errors.clear()

    def shoot(self, name: str) -> None:
        target = self.shots / f"{name}.png"
        self.page.screenshot(path=str(target), full_page=False)
        extra = os.environ.get("SHIPYARD_UI_SCREENSHOTS")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(target, Path(extra) / target.name)


@pytest.fixture
def visit(offline_page: Any, ui_server: Any, tmp_path: Path) -> Visit:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    return Visit(offline_page, ui_server.url, shots)


def test_every_page_loads_with_its_content(visit: Visit, seeded: Any) -> None:
    _, facts = seeded
    page = visit.page
    first, second = facts["runs"]

    visit.open("/models", "models")
    row = page.locator('tr[data-model="iris"]')
    assert row.locator("td").nth(1).inner_text() == "2"  # latest version
    assert "production → 1" in row.inner_text() and "staging → 2" in row.inner_text()
    assert XSS in row.inner_text()  # the description, as text

    visit.open("/models/iris")
    assert page.locator("#versions tr[data-version]").count() == 2
    assert XSS in page.locator("p.description").inner_text()

    visit.open("/models/iris/versions/1", "version")
    sections = page.locator("section[data-section]").evaluate_all(
        "els => els.map(e => e.dataset.section)"
    )
    assert sections == [
        "Lineage",
        "Signature and environment",
        "Contract, gates and approvals",
        "Serving",
        "Drift reference profile",
    ]
    assert "petal_length" in page.locator("#signature").inner_text()
    assert "baseline" in page.locator("#lineage").inner_text()  # the run that made it
    assert "web" in page.locator("#lineage").inner_text()  # the deployment serving it
    assert "Runtime: original" in page.locator("#runtime").inner_text()
    assert page.locator("#reference tbody tr").count() == 4
    assert "0.96" in page.locator("#metrics").inner_text()

    visit.open("/runs", "runs")
    assert page.locator("#run-count").inner_text() == "2 runs"
    assert page.locator("#runs tbody tr[data-run]").count() == 2

    visit.open(f"/runs/{first}", "run")
    series = page.locator("svg.chart g.series").evaluate_all(
        "els => els.map(e => e.dataset.series)"
    )
    assert series == ["baseline", "baseline"]  # accuracy and loss, one line each
    assert page.locator('svg[data-chart="loss"] circle.point').count() == 20
    assert XSS in page.locator("#tags").inner_text()

    visit.open(f"/compare?run={first}&run={second}", "compare")
    assert page.locator('svg[data-chart="accuracy"] g.series').count() == 2

    visit.open("/deployments", "deployments")
    web = page.locator('tr[data-deployment="web"]').inner_text()
    assert "primary v1 90%" in web and "canary v2 10%" in web
    visit.open("/deployments/web", "deployment")
    assert "abort_canary" in page.locator("#rollbacks").inner_text()
    assert XSS in page.locator("#rollbacks").inner_text()  # the reason, as text
    assert page.locator("#steps .step").count() == 3
    assert "step 1 of 3 (10%)" in page.locator("main").inner_text()

    visit.open("/monitoring/iris", "monitoring")
    assert page.locator('svg[data-chart="Requests per bucket"] circle.point').count() >= 24
    assert page.locator('g.series[data-series="p99"]').count() == 1
    # Errors over time: the deployment's counters per epoch, said what they count.
    assert (
        page.locator('svg[data-chart^="Server errors"] g.series[data-series="web errors"]').count()
        == 1
    )
    assert "5xx status" in page.locator("#error-meaning").inner_text()
    epochs = page.locator("#error-epochs tbody tr")
    assert epochs.count() == 2
    now = epochs.nth(1).inner_text()
    assert "canary v2: 3 / 20" in now and "primary v1: 1 / 180" in now
    assert "0.02" in now  # 4 errors in 200 requests
    assert page.locator('svg[data-chart^="Drift of petal_length"] g.threshold').count() == 1
    classes = page.locator('svg[data-chart="Predicted classes (share)"] g.series')
    assert classes.count() >= 2
    raw = 'g.series[data-series="estimated accuracy (CBPE, raw probabilities)"]'
    assert page.locator(raw).count() == 1  # no calibration stored with v1
    assert page.locator('g.series[data-series="label coverage"]').count() == 1
    for window in ("1h", "6h", "7d", "30d"):
        page.locator(f'a[data-window="{window}"]').click()
        page.wait_for_load_state("networkidle")
        visit.check(window)
        assert page.locator(f'a[data-window="{window}"].active').count() == 1

    visit.open("/loop", "loop")
    assert "No loop runs yet" in page.locator("main").inner_text()
    visit.open("/audit", "audit")
    assert page.locator('tr[data-action="set_alias"]').count() == 2
    assert XSS in page.locator("#audit").inner_text()


def test_runs_table_filters_sorts_and_pages_through_htmx(visit: Visit) -> None:
    page = visit.page
    visit.open("/runs?metrics=accuracy,loss&params=C&size=1")
    assert page.locator("#runs tbody tr[data-run]").count() == 1
    page.locator("#next-page").click()
    page.wait_for_selector("text=page 2 of 2")
    visit.check("next page")
    assert "page=2" in page.url  # htmx pushed the URL: the state can be bookmarked
    page.goto(visit.base + "/runs?metrics=accuracy&params=C")
    page.locator('a[data-sort="metric:accuracy"]').click()
    page.wait_for_selector("text=accuracy ▼")
    names = page.locator("#runs tbody tr td:nth-child(2)").all_inner_texts()
    assert names == ["strong", "baseline"]  # 1.17 before 0.98
    page.locator('input[name="filter"]').fill("metrics.accuracy < 1.0")
    page.locator("#run-filters button[type=submit]").click()
    page.wait_for_selector("text=1 run ")
    assert page.locator("#runs tbody tr td:nth-child(2)").all_inner_texts() == ["baseline"]
    visit.check("filtered")


def test_compare_marks_the_param_that_differs(visit: Visit) -> None:
    page = visit.page
    visit.open("/runs?params=C")
    for box in page.locator('#runs input[name="run"]').all():
        box.check()
    page.locator("#compare-form button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    visit.check("compare")
    assert page.locator('tr[data-param="C"]').get_attribute("class") == "diff"
    assert page.locator('tr[data-param="max_iter"]').get_attribute("class") is None
    background = page.locator('tr[data-param="C"] td').first.evaluate(
        "el => getComputedStyle(el).backgroundColor"
    )
    assert background == "rgb(255, 248, 197)"


def test_a_drift_point_opens_that_windows_report(visit: Visit) -> None:
    page = visit.page
    visit.open("/monitoring/iris?window=24h")
    chart = page.locator('svg[data-chart^="Drift of petal_length"]')
    links = chart.locator("a.point-link")
    last = links.nth(links.count() - 1)
    href = last.get_attribute("href")
    assert href is not None
    since = re.search(r"since=([^&]+)", href)
    assert since is not None
    last.locator("circle").click()
    page.wait_for_load_state("networkidle")
    visit.check("drift report")
    visit.shoot("drift-report")
    title = page.title()
    assert title.startswith("Drift of iris")
    # The report covers the bucket the point stands for, and the drift is found there.
    assert page.locator("text=Dataset drift").count() >= 1
    assert "petal_length" in page.locator("body").inner_text()


def test_log_in_move_an_alias_with_a_reason_and_see_it_in_the_audit(visit: Visit) -> None:
    page = visit.page
    visit.open("/models/iris")
    assert page.locator("#move-alias").count() == 0  # read-only until logged in
    visit.submit(page.locator("text=Log in").first)
    page.locator('input[name="user"]').fill("ann")
    page.locator('input[name="password"]').fill("wrong")
    visit.submit(page.locator("form[action='/login'] button"))
    assert "Wrong user name or password" in page.locator("main").inner_text()
    visit.expected_refusal(403)  # the refused login
    page.locator('input[name="user"]').fill("ann")
    page.locator('input[name="password"]').fill(PASSWORD)
    visit.submit(page.locator("form[action='/login'] button"))
    page.wait_for_url("**/models/iris")
    assert page.locator(".user").inner_text() == "ann"

    form = page.locator("#move-alias")
    form.locator('input[name="alias"]').fill("champion")
    form.locator('select[name="version"]').select_option("2")
    form.locator('input[name="reason"]').fill(f"better on holdout {XSS}")
    visit.submit(form.locator("button[type=submit]"))
    page.wait_for_selector("#confirm")
    visit.shoot("confirm")
    assert "Point iris@champion at version 2" in page.locator("#summary").inner_text()
    visit.submit(page.locator("#confirm button[type=submit]"))
    page.wait_for_url("**/models/iris")
    assert "champion" in page.locator('tr[data-alias="champion"]').inner_text()
    visit.check("after move")

    visit.open("/audit?model=iris&actor=ann&action=set_alias", "audit-after-move")
    rows = page.locator("#audit tbody tr")
    assert rows.count() == 1
    text = rows.first.inner_text()
    assert "set_alias" in text and "iris@champion" in text and "ann" in text
    assert f"better on holdout {XSS}" in text


def test_production_needs_the_same_rules_as_the_cli(visit: Visit, seeded: Any) -> None:
    client, _ = seeded
    from shipyard.validation.approvals import PROTECTED_ALIASES

    assert "production" in PROTECTED_ALIASES
    client.validation.set_required_approvals("iris", 1, actor="seed")
    page = visit.page
    page.goto(visit.base + "/login?next=/models/iris/versions/2")
    page.locator('input[name="user"]').fill("ann")
    page.locator('input[name="password"]').fill(PASSWORD)
    visit.submit(page.locator("form[action='/login'] button"))
    page.wait_for_url("**/models/iris/versions/2")
    form = page.locator("#version-alias")
    form.locator('input[name="reason"]').fill("ship it")
    visit.submit(form.locator("button[type=submit]"))
    visit.submit(page.locator("#confirm button[type=submit]"))
    page.wait_for_load_state("networkidle")
    assert "approval" in page.locator("p.error").inner_text().lower()
    assert client.aliases.get_alias("iris", "production") == 1
    visit.expected_refusal(409)  # production refused: no approval yet

    decide = page.goto(visit.base + "/models/iris/versions/2")
    assert decide is not None
    page.locator('#decide input[name="reason"]').fill("checked the holdout")
    visit.submit(page.locator('#decide button[value="approve"]'))
    visit.submit(page.locator("#confirm button[type=submit]"))
    page.wait_for_url("**/models/iris/versions/2")
    assert "ann" in page.locator("#decisions").inner_text()
    form = page.locator("#version-alias")
    form.locator('input[name="reason"]').fill("approved now")
    visit.submit(form.locator("button[type=submit]"))
    visit.submit(page.locator("#confirm button[type=submit]"))
    page.wait_for_url("**/models/iris")
    assert client.aliases.get_alias("iris", "production") == 2
    visit.check("promoted")


def test_a_run_id_prefix_opens_the_run_or_says_why_not(visit: Visit, seeded: Any) -> None:
    client, facts = seeded
    first, second = facts["runs"]
    page = visit.page
    # The 12 characters `shipyard runs list` shows open the run under its full id.
    visit.open(f"/runs/{first[:12]}")
    assert page.url == f"{visit.base}/runs/{first}"
    assert page.locator("h1").inner_text().count("baseline") == 1
    visit.open(f"/compare?run={first[:12]}&run={second[:12]}")
    assert page.url == f"{visit.base}/compare?run={first}&run={second}"
    assert page.locator('svg[data-chart="accuracy"] g.series').count() == 2

    # A prefix two runs share: both listed, nothing opened. Among 17 ids of 16 hex digits,
    # two start alike.
    by_first: dict[str, list[str]] = {}
    for run_id in [first, second]:
        by_first.setdefault(run_id[0], []).append(run_id)
    n = 0
    while all(len(v) < 2 for v in by_first.values()):
        run = client.runs.create_run("iris", name=f"extra-{n}", actor="ann")
        by_first.setdefault(run.id[0], []).append(run.id)
        n += 1
    prefix, shared = next((k, sorted(v)) for k, v in by_first.items() if len(v) >= 2)
    answer = page.goto(f"{visit.base}/runs/{prefix}")
    assert answer is not None and answer.status == 409
    message = page.locator("p.error").inner_text()
    assert f"prefix '{prefix}' matches" in message and "give more characters" in message
    listed = page.locator("#choices a").all_inner_texts()
    assert listed == shared
    visit.expected_refusal(409)

    answer = page.goto(f"{visit.base}/runs/ffffffffzzzz")
    assert answer is not None and answer.status == 404
    assert "no run id starts with it" in page.locator("p.error").inner_text()
    visit.expected_refusal(404)


def test_the_cbpe_chart_goes_through_the_stored_calibration(visit: Visit, seeded: Any) -> None:
    from shipyard.monitoring.calibration import Calibration, ClassMap

    client, facts = seeded
    page = visit.page
    visit.open("/monitoring/iris?window=24h")
    raw = page.locator('g.series[data-series="estimated accuracy (CBPE, raw probabilities)"]')
    assert raw.count() == 1
    tips = "els => els.map(e => e.textContent)"
    before = raw.locator("circle.point title").evaluate_all(tips)
    assert "no calibration is stored" in page.locator("main").inner_text()

    # As `shipyard monitor estimate --reference` stores it: the page uses it at once.
    version = client.models.get_version("iris", facts["v1"])
    calibration = Calibration(
        ("setosa", "versicolor", "virginica"),
        (None, ClassMap((0.0, 1.0), (0.1, 0.6)), ClassMap((0.0, 1.0), (0.1, 0.6))),
        rows=150,
    )
    client.calibrations.attach(version, calibration)
    visit.open("/monitoring/iris?window=24h")
    calibrated = page.locator('g.series[data-series="estimated accuracy (CBPE, calibrated)"]')
    assert calibrated.count() == 1 and raw.count() == 0
    after = calibrated.locator("circle.point title").evaluate_all(tips)
    assert len(after) == len(before) >= 24
    assert after != [t.replace("raw probabilities", "calibrated") for t in before]
    legend = page.locator("figure figcaption").all_inner_texts()
    assert any("estimated accuracy (CBPE, calibrated)" in text for text in legend)
    assert "calibration stored with each version" in page.locator("main").inner_text()


def _snapshot_backed_version(client: Any) -> int:
    """iris:3 trained by a run that read a data snapshot and recorded its pipeline, served
    by deployment ``lab``, with two requests answered since (lineage counts a version's
    predictions from its creation on)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from shipyard.clock import utc_now
    from shipyard.loop.provenance import record_pipeline
    from shipyard.monitoring.records import PredictionBatch
    from shipyard.quickstart import iris_frame
    from shipyard.tracking.fingerprint import fingerprint

    X, y = iris_frame()
    frame = X.assign(species=y)
    snap = client.data.snapshot(frame, name="iris-train", message="for the lineage")
    run = client.runs.create_run("iris", name="from-snapshot", actor="ann")
    seen = {**fingerprint(frame).to_dict(), "snapshot": snap.ref}
    client.runs.log_dataset(run.id, "training", seen)
    client.runs.end_run(run.id)
    record_pipeline(
        client.datasets,
        run.id,
        entry_point="shipyard.loop.examples:train_iris",
        params={"C": 1.0},
        seed=7,
        snapshots={"training": snap.ref},
    )
    model = LogisticRegression(max_iter=500).fit(X, y)
    v3 = client.registry.log_model(
        model, "iris", sample=X, run_id=run.id, data_fingerprint=seen, optimize=False
    )
    client.deployments.acting_as("ann").create("lab", "iris", v3.version, reason="lineage")
    for i in range(2):
        client.prediction_log.write(
            PredictionBatch(
                request_id=f"lab-{i}",
                timestamp=utc_now(),
                model="iris",
                version=v3.version,
                inputs=X.head(5 + i),
                predictions=np.asarray(model.predict(X.head(5 + i))),
                source="online",
            )
        )
    client.prediction_log.flush(timeout=30)
    return int(v3.version)


def test_the_version_lineage_runs_from_the_data_snapshot_to_prediction_windows(
    visit: Visit, seeded: Any
) -> None:
    from shipyard.loop.lineage import lineage

    client, _ = seeded
    number = _snapshot_backed_version(client)
    cli = lineage(client, f"iris:{number}")  # what `shipyard loop lineage` prints from
    assert cli.snapshot == "iris-train:1" and cli.pipeline is not None
    assert cli.predictions == 11 and len(cli.windows) == 1
    page = visit.page
    visit.open(f"/models/iris/versions/{number}", "version-lineage")

    def step(name: str) -> str:
        return str(page.locator(f'#lineage [data-step="{name}"]').inner_text())

    assert "snapshot iris-train:1 (150 rows" in step("data")
    assert "shipyard.loop.examples:train_iris" in step("pipeline")
    assert f"code sha256 {cli.pipeline['code_hash'][:12]}" in step("pipeline")
    assert "seed 7" in step("pipeline")
    assert "from-snapshot" in step("run")
    assert step("deployments") == "deployments lab (primary)"
    assert step("predictions").startswith(f"predictions {cli.predictions} rows")
    days = page.locator("#prediction-windows tbody tr")
    assert [int(r) for r in days.locator("td.num").all_inner_texts()] == [
        w.rows for w in reversed(cli.windows)
    ]
    # A day opens the monitoring page of this version over that day.
    visit.submit(days.first.locator("a"))
    visit.check("prediction window")
    assert f"version={number}" in page.url and "window=24h" in page.url
    assert f"· version {number}" in page.locator("h1").inner_text()
    assert page.locator("text=logged rows").count() == 1
