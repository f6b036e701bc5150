"""Hot swap: the alias moves, the server follows; a broken version never replaces a good one."""

from __future__ import annotations

import gc
import shutil
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_helpers import SETOSA, VIRGINICA, IrisRegistry, LiveServer, serve

from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.errors import IntegrityError
from shipyard.serving.metrics import ServingMetrics
from shipyard.serving.runtime import ModelRuntime, load_served_model


def _wait_for_version(http: httpx.Client, version: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while http.post("/predict", json=SETOSA).json()["version"] != version:
        assert time.monotonic() < deadline, f"never switched to version {version}"
        time.sleep(0.02)


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _corrupt_manifest(iris: IrisRegistry, version: int) -> None:
    """Make ``version`` unloadable the way a damaged store would: its bytes no longer match.

    The local package cache is dropped too, so the load has to read the store.
    """
    registry = iris.client.registry
    digest = registry.resolve(f"iris:{version}").manifest_digest
    shutil.rmtree(registry.cache_dir / digest, ignore_errors=True)
    blob = Path(iris.settings.artifact_url) / "blobs" / digest[:2] / digest
    blob.chmod(0o644)
    blob.write_bytes(b'{"corrupted": true}')


def test_alias_move_is_followed_within_the_poll_interval(
    iris: IrisRegistry, live: LiveServer
) -> None:
    with live.client() as http:
        assert http.post("/predict", json=SETOSA).json()["version"] == iris.logistic
        iris.client.registry.set_alias("iris", "production", iris.forest)
        _wait_for_version(http, iris.forest)
        metrics = http.get("/metrics").text
    info = _samples(metrics, "shipyard_model_info")
    served = {dict(labels)["version"]: value for labels, value in info.items()}
    assert served == {str(iris.forest): 1.0}, "the old version's info series must go"
    swaps = _samples(metrics, "shipyard_model_swaps_total")
    assert list(swaps.values()) == [1.0]
    load = _samples(metrics, "shipyard_model_load_seconds")
    assert {dict(k)["version"] for k in load} == {str(iris.logistic), str(iris.forest)}
    assert all(v > 0 for v in load.values())


def test_load_while_the_alias_moves_never_fails_and_never_goes_back(
    iris: IrisRegistry, live: LiveServer
) -> None:
    """Bounded load (<= 4 x 60 requests, <= 20 s) across a swap: zero failures, and
    once a client has seen the new version it never sees the old one again."""
    per_client, clients = 60, 4
    seen: list[list[int]] = [[] for _ in range(clients)]
    failures: list[str] = []
    moved = threading.Event()
    deadline = time.monotonic() + 20

    def hammer(i: int) -> None:
        with live.client() as http:
            for n in range(per_client):
                if time.monotonic() > deadline:
                    return
                record = SETOSA if n % 2 == 0 else VIRGINICA
                response = http.post("/predict", json=record)
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")
                    continue
                body = response.json()
                if body["prediction"] != ("setosa" if n % 2 == 0 else "virginica"):
                    failures.append(f"wrong answer {body}")
                seen[i].append(body["version"])
                if n == per_client // 3 and i == 0:
                    moved.set()

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    assert moved.wait(20)
    iris.client.registry.set_alias("iris", "production", iris.forest)
    for t in threads:
        t.join(30)
    assert failures == []
    assert sum(map(len, seen)) >= clients * per_client // 2
    assert any(iris.logistic in s for s in seen)
    with live.client() as http:
        _wait_for_version(http, iris.forest)
    for versions in seen:
        if iris.forest in versions:
            first_new = versions.index(iris.forest)
            assert iris.logistic not in versions[first_new:], versions


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(
    iris: IrisRegistry, live: LiveServer
) -> None:
    _corrupt_manifest(iris, iris.forest)
    with live.client() as http:
        iris.client.registry.set_alias("iris", "production", iris.forest)
        deadline = time.monotonic() + 20
        failures: dict[tuple[tuple[str, str], ...], float] = {}
        while not failures:
            assert time.monotonic() < deadline, "the failed swap was never counted"
            failures = _samples(http.get("/metrics").text, "shipyard_model_swap_failures_total")
            time.sleep(0.05)
        assert list(failures.values()) == [1.0]
        for _ in range(5):  # not retried every poll, and still the old version
            response = http.post("/predict", json=SETOSA)
            assert response.status_code == 200
            assert response.json()["version"] == iris.logistic
            time.sleep(0.1)
        again = _samples(http.get("/metrics").text, "shipyard_model_swap_failures_total")
        assert list(again.values()) == [1.0]
        assert http.get("/ready").status_code == 200


def test_a_pinned_version_ignores_alias_moves(iris: IrisRegistry) -> None:
    server = serve(iris.client, f"iris:{iris.logistic}")
    try:
        with server.client() as http:
            runtime = server.app.state.runtime
            # Loaded, the pinned runtime stopped polling: nothing is left that could
            # move it, however long one waited. A follower keeps its task running.
            deadline = time.monotonic() + 10
            while runtime.polling:  # its task ends right after the load that made it ready
                assert time.monotonic() < deadline, "the pinned runtime kept polling"
                time.sleep(0.01)
            iris.client.registry.set_alias("iris", "production", iris.forest)
            assert http.post("/predict", json=SETOSA).json()["version"] == iris.logistic
    finally:
        server.stop()


@pytest.mark.anyio
async def test_a_pinned_runtime_keeps_its_version_when_checked_after_a_move(
    iris: IrisRegistry,
) -> None:
    """What a poll would do, done by hand: a pinned reference resolves to its version."""
    runtime = ModelRuntime(
        iris.client.registry, f"iris:{iris.logistic}", metrics=ServingMetrics(), poll_interval=60
    )
    assert (await runtime.refresh()).version == iris.logistic
    iris.client.registry.set_alias("iris", "production", iris.forest)
    outcome = await runtime.refresh(force=True)
    assert not outcome.changed and runtime.require().version == iris.logistic


def test_a_following_runtime_keeps_polling(live: LiveServer) -> None:
    with live.client() as http:
        assert http.get("/ready").status_code == 200
        assert live.app.state.runtime.polling


def test_admin_swap_moves_the_alias_in_the_registry(iris: IrisRegistry) -> None:
    client = Shipyard(Settings(home=iris.settings.home, user="tester", admin_token="t0ken"))
    server = serve(client, poll_interval=60)  # only the admin call can make it move
    auth = {"Authorization": "Bearer t0ken"}
    try:
        with server.client() as http:
            response = http.post(
                "/admin/swap", json={"version": iris.forest, "reason": "test"}, headers=auth
            )
            assert response.status_code == 200
            assert response.json() == {
                "changed": True,
                "version": iris.forest,
                "previous": iris.logistic,
            }
            assert http.post("/predict", json=SETOSA).json()["version"] == iris.forest
            assert iris.client.registry.resolve("iris").version == iris.forest
            audit = iris.client.audit.log(model="iris", limit=1)[0]
            assert audit.reason == "test"
            missing = http.post("/admin/swap", json={"version": 99}, headers=auth)
            assert missing.status_code == 404
            bad = http.post("/admin/swap", json={"version": "two"}, headers=auth)
            assert bad.status_code == 422
            iris.client.registry.set_alias("iris", "production", iris.logistic)
            reload = http.post("/admin/reload", headers=auth).json()
            assert reload == {"changed": True, "version": iris.logistic, "previous": iris.forest}
    finally:
        server.stop()
        client.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_refresh_reports_outcomes_and_retries_failures_only_when_forced(
    iris: IrisRegistry,
) -> None:
    metrics = ServingMetrics()
    runtime = ModelRuntime(iris.client.registry, "iris", metrics=metrics, poll_interval=60)
    first = await runtime.refresh()
    assert (first.changed, first.version, first.previous) == (True, iris.logistic, None)
    assert (await runtime.refresh()).changed is False
    _corrupt_manifest(iris, iris.forest)
    iris.client.registry.set_alias("iris", "production", iris.forest)
    failed = await runtime.refresh()
    assert not failed.changed
    assert failed.error is not None
    assert "failed to load" in (runtime.last_error or "")
    assert runtime.require().version == iris.logistic
    again = await runtime.refresh()
    assert again.error is not None and not again.changed
    assert metrics.swap_failures.labels("iris")._value.get() == 1  # not retried
    forced = await runtime.refresh(force=True)
    assert not forced.changed
    assert metrics.swap_failures.labels("iris")._value.get() == 2


def test_load_served_model_warms_up_and_precomputes(iris: IrisRegistry) -> None:
    record = iris.client.registry.resolve("iris")
    served = load_served_model(iris.client.registry, record)
    assert served.load_seconds > 0
    assert served.class_keys == ("setosa", "versicolor", "virginica")
    assert served.record_model.__name__ == "IrisRecord"
    _, result = served.predict([SETOSA])
    assert result.labels.tolist() == ["setosa"]
    assert result.probabilities is not None and result.probabilities.shape == (1, 3)
    with pytest.raises(IntegrityError):
        _corrupt_manifest(iris, iris.forest)
        load_served_model(iris.client.registry, iris.client.registry.resolve("iris:2"))


@pytest.mark.anyio
async def test_a_loaded_version_is_kept_out_of_full_collections(iris: IrisRegistry) -> None:
    """Full GC passes over the model and libraries paused requests 150-250 ms: freeze them."""
    gc.unfreeze()  # whatever earlier tests froze in this process
    assert gc.get_freeze_count() == 0
    runtime = ModelRuntime(iris.client.registry, "iris", metrics=ServingMetrics(), poll_interval=60)
    try:
        assert (await runtime.refresh()).changed
        assert gc.get_freeze_count() > 0
        predictor = runtime.require().model.predictor
        # Frozen objects sit in the permanent generation, which collections never walk.
        assert all(obj is not predictor for obj in gc.get_objects())
    finally:
        gc.unfreeze()


def _wait_until_freed(ref: weakref.ref[object], message: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        if ref() is None:
            return
        assert time.monotonic() < deadline, message
        time.sleep(0.2)


def test_a_version_swapped_out_is_freed(iris: IrisRegistry) -> None:
    """Every hot swap froze whatever was alive, the old version included, and frozen
    objects in a reference cycle are never collected: each alias move kept the old
    model and its request schema for good (found by bench/soak.py)."""
    gc.unfreeze()  # whatever earlier tests froze in this process
    server = serve(iris.client)
    runtime = server.app.state.runtime
    try:
        with server.client() as http:
            _wait_for_version(http, iris.logistic)
            first = weakref.ref(runtime.require().model.predictor)  # loaded at start-up
            iris.client.registry.set_alias("iris", "production", iris.forest)
            _wait_for_version(http, iris.forest)
            swapped_in = runtime.require()
            second = weakref.ref(swapped_in.model.predictor)
            second_schema = weakref.ref(swapped_in.record_model)
            del swapped_in
            iris.client.registry.set_alias("iris", "production", iris.logistic)
            _wait_for_version(http, iris.logistic)
            for _ in range(5):  # requests after the swap: none still holds the forest
                assert http.post("/predict", json=VIRGINICA).status_code == 200
        # The monitor job may hold a version for a while (a run, its sync interval).
        _wait_until_freed(first, "the version loaded at start-up outlived its swap")
        _wait_until_freed(second, "a version swapped in and out again stayed in memory")
        _wait_until_freed(second_schema, "its request schema stayed in memory")
        assert gc.get_freeze_count() > 0  # start-up still froze libraries and model
    finally:
        server.stop()
        gc.unfreeze()


def test_swap_warns_only_when_requests_must_change(
    iris: IrisRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """Different training ranges are not different inputs; a dropped column is."""
    from sklearn.linear_model import LogisticRegression

    from shipyard.quickstart import iris_frame

    X, y = iris_frame()
    registry = iris.client.registry
    narrower = registry.log_model(  # same columns, other ranges (setosa/versicolor rows)
        LogisticRegression(max_iter=500).fit(X.iloc[:100], y.iloc[:100]),
        "iris",
        sample=X.iloc[:100],
    )
    three = X.drop(columns=["petal_width"])
    fewer = registry.log_model(LogisticRegression(max_iter=500).fit(three, y), "iris", sample=three)
    server = serve(iris.client)
    caplog.set_level("WARNING", logger="shipyard.serving")
    try:
        with server.client() as http:
            registry.set_alias("iris", "production", narrower.version)
            _wait_for_version(http, narrower.version)
            assert "takes different inputs" not in caplog.text
            registry.set_alias("iris", "production", fewer.version)
            deadline = time.monotonic() + 20
            while http.get("/ready").json().get("version") != fewer.version:
                assert time.monotonic() < deadline
                time.sleep(0.02)
    finally:
        server.stop()
    (warning,) = [
        r.getMessage() for r in caplog.records if "takes different inputs" in r.getMessage()
    ]
    assert f"iris:{fewer.version} takes different inputs than iris:{narrower.version}" in warning
    assert "no more column petal_width" in warning


def test_input_changes_name_what_a_request_must_change() -> None:
    from shipyard.registry.signature import ColumnSpec, OutputSpec, Signature
    from shipyard.serving.runtime import input_changes

    out = OutputSpec("regression", "float")
    old = Signature(
        (ColumnSpec("a", "float", minimum=0, maximum=1), ColumnSpec("b", "integer")), out
    )
    ranges = Signature(
        (ColumnSpec("a", "float", minimum=5, maximum=9), ColumnSpec("b", "integer")), out
    )
    assert input_changes(old, ranges) == []
    changed = Signature((ColumnSpec("a", "integer", nullable=True), ColumnSpec("c", "string")), out)
    assert input_changes(old, changed) == [
        "new column c (string)",
        "no more column b",
        "a is now integer (was float)",
        "a now allows missing values",
    ]
    swapped = Signature((ColumnSpec("b", "integer"), ColumnSpec("a", "float")), out)
    assert input_changes(old, swapped) == ["column order is now b, a"]


def test_admin_bodies_must_be_json(iris: IrisRegistry) -> None:
    client = Shipyard(Settings(home=iris.settings.home, user="tester", admin_token="t0ken"))
    server = serve(client, poll_interval=60)
    auth = {"Authorization": "Bearer t0ken"}
    try:
        with server.client() as http:
            body = b'{"version": 2}'
            plain = http.post(
                "/admin/swap", content=body, headers={**auth, "Content-Type": "text/plain"}
            )
            assert plain.status_code == 415, plain.text
            twice = http.post(
                "/admin/swap",
                content=b'{"version": 2, "version": 1}',
                headers={**auth, "Content-Type": "application/json"},
            )
            assert twice.status_code == 422 and twice.json()["field"] == "version"
            assert http.post("/admin/reload", headers=auth).status_code == 200  # no body
            assert iris.client.registry.resolve("iris").version == iris.logistic  # unmoved
    finally:
        server.stop()
        client.close()


@pytest.fixture(scope="module")
def dataframe_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Shipyard, dict]]:
    """Models fitted on a DataFrame (they remember their column names), registered with
    no extra argument: the default path users take."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from shipyard.quickstart import iris_frame

    settings = Settings(home=tmp_path_factory.mktemp("df-models") / "home", user="tester")
    client = Shipyard(settings)
    X, y = iris_frame()
    mixed = X.assign(size=np.where(X["petal_length"] > 4, "big", "small"))
    encode = ColumnTransformer([("size", OneHotEncoder(), ["size"])], remainder=StandardScaler())
    fitted = {
        "logistic": (LogisticRegression(max_iter=500).fit(X, y), X),
        "scaled": (make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y), X),
        "forest": (RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y), X),
        "mixed": (make_pipeline(encode, LogisticRegression(max_iter=500)).fit(mixed, y), mixed),
    }
    for name, (model, frame) in fitted.items():
        version = client.registry.log_model(model, name, sample=frame)
        assert version.tags["onnx_status"] == "verified", version.tags.get("onnx_detail")
        client.registry.set_alias(name, "production", version.version)
    yield client, fitted
    client.close()


@pytest.mark.parametrize("name", ["logistic", "scaled", "forest", "mixed"])
@pytest.mark.parametrize("onnx", [True, False], ids=["default", "no-onnx"])
def test_a_dataframe_fitted_model_answers_as_its_own_predict(
    dataframe_models: tuple[Shipyard, dict], name: str, onnx: bool
) -> None:
    """Served on every training row over HTTP: the classes ``model.predict`` gives, and
    its probabilities (exactly for the original model, which now scores a matrix for the
    numeric ones; within the 1e-4 the ONNX graph was verified to at registration)."""
    client, fitted = dataframe_models
    model, frame = fitted[name]
    server = serve(client, name, onnx=onnx)
    try:
        with server.client() as http:
            body = http.post("/predict", json=frame.to_dict(orient="records")).json()
    finally:
        server.stop()
    assert body["predictions"] == model.predict(frame).tolist()
    got = np.array([list(p.values()) for p in body["probabilities"]])
    want = model.predict_proba(frame)
    if onnx:
        np.testing.assert_allclose(got, want, atol=1e-4)
    else:
        np.testing.assert_array_equal(got, want)


def test_numeric_dataframe_models_score_a_matrix_unless_onnx_answers(
    dataframe_models: tuple[Shipyard, dict],
) -> None:
    """What answers: the ONNX graph by default; with it off, the numeric models score a
    float matrix (no DataFrame per request), the pipeline with a text column a DataFrame."""
    client, _ = dataframe_models
    registry = client.registry
    for name in ("logistic", "scaled", "forest", "mixed"):
        record = registry.resolve(name)
        assert load_served_model(registry, record).runtime == "onnxruntime"
        original = load_served_model(registry, record, onnx=False)
        assert original.runtime == "sklearn"
        assert original.model.takes_array == (name != "mixed"), name


@pytest.mark.parametrize("name", ["logistic", "mixed"])  # one matrix input; named inputs
def test_a_value_beyond_float32_is_answered_by_the_original_model(
    dataframe_models: tuple[Shipyard, dict], name: str
) -> None:
    """The ONNX graph computes in float32, where 1e39 is infinity; the original (float64)
    has an answer for it, so the server gives that answer rather than a 422."""
    client, fitted = dataframe_models
    model, frame = fitted[name]
    record = {**frame.iloc[0].to_dict(), "petal_length": 1e39}
    served = load_served_model(client.registry, client.registry.resolve(name))
    assert served.runtime == "onnxruntime"
    server = serve(client, name)
    try:
        with server.client() as http:
            response = http.post("/predict", json=record)
    finally:
        server.stop()
    assert response.status_code == 200, response.text
    want = model.predict_proba(frame.iloc[[0]].assign(petal_length=1e39))[0]
    assert (
        response.json()["prediction"] == model.predict(frame.iloc[[0]].assign(petal_length=1e39))[0]
    )
    np.testing.assert_allclose(list(response.json()["probabilities"].values()), want)
