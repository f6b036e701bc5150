"""The public surface: ``shipyard.__all__`` is sorted, complete and importable."""

from pathlib import Path

import shipyard


def test_all_is_sorted_and_importable() -> None:
    assert shipyard.__all__ == sorted(shipyard.__all__)
    for name in shipyard.__all__:
        assert getattr(shipyard, name) is not None, name


def test_public_callables_have_docstrings() -> None:
    for name in shipyard.__all__:
        obj = getattr(shipyard, name)
        if callable(obj):
            assert obj.__doc__, f"shipyard.{name} has no docstring"


def test_every_export_has_a_home_module() -> None:
    assert sorted(shipyard._EXPORTS) == shipyard.__all__


def test_import_is_lazy() -> None:
    """``import shipyard`` must not pull in the heavy ML stack (CLI start-up time)."""
    import subprocess
    import sys

    heavy = "('pandas', 'sklearn', 'sqlalchemy')"
    code = f"import sys, shipyard; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_public_name_is_shadowed_by_a_submodule() -> None:
    """Importing ``shipyard.x`` sets the attribute ``shipyard.x`` to the module, so a
    submodule named like a public function would replace the function."""
    import pkgutil

    submodules = {info.name for info in pkgutil.iter_modules(shipyard.__path__)}
    assert sorted(submodules & set(shipyard.__all__)) == []


_CALL_EACH_PUBLIC_NAME = r"""
import sys
from pathlib import Path

import shipyard
from sklearn.linear_model import LogisticRegression

from shipyard.quickstart import iris_frame

home = Path(sys.argv[1])
# Touch every name first: a submodule imported on the way must not replace any of them.
for name in shipyard.__all__:
    getattr(shipyard, name)

X, y = iris_frame()
settings = shipyard.Settings(home=home, user="tester")
client = shipyard.configure(settings)
assert isinstance(client, shipyard.Shipyard)
assert shipyard.client() is client
with shipyard.start_run("iris", name="api") as run:
    run.log_dataset(X.assign(species=y))
    version = shipyard.log_model(
        LogisticRegression(max_iter=500).fit(X, y), "iris", sample=X, alias="staging"
    )
assert version.run_id == run.id
shipyard.autolog(experiment="auto")
LogisticRegression(max_iter=500).fit(X, y)
shipyard.autolog(disable=True)
assert len(shipyard.search_runs("auto")) == 1
found = shipyard.search_runs("iris", filter="attributes.run_name = 'api'")
assert list(found["run_id"]) == [run.id]
assert shipyard.set_alias("iris", "production", version.version) is None
model = shipyard.load_model("iris")
assert isinstance(model, shipyard.LoadedModel)
assert model.predict(X.head(3)).tolist() == ["setosa"] * 3
assert shipyard.parse_ref("iris@staging") == shipyard.ModelRef("iris", alias="staging")
fp = shipyard.fingerprint(X)
assert isinstance(fp, shipyard.DatasetFingerprint) and fp.n_rows == len(X)
deployments = shipyard.deployments()
deployments.create("web", "iris", version.version)
assert deployments.get("web").primary == version.version
try:
    shipyard.load_model("nope")
except shipyard.ShipyardError as exc:
    assert "nope" in str(exc)
else:
    raise AssertionError("an unknown model must raise ShipyardError")
shipyard.client().close()
print("ok")
"""


def test_every_public_name_can_be_called_in_a_fresh_process(tmp_path: Path) -> None:
    """Each public name used as documented, in a fresh interpreter, after the others
    were touched (the order that once turned ``shipyard.client`` into a module)."""
    import subprocess
    import sys

    called = {
        "DatasetFingerprint", "LoadedModel", "ModelRef", "Settings", "Shipyard",
        "ShipyardError", "autolog", "client", "configure", "deployments", "fingerprint",
        "load_model", "log_model", "parse_ref", "search_runs", "set_alias", "start_run",
    }  # fmt: skip
    assert called == set(shipyard.__all__), "call the new public name in the script above"
    out = subprocess.run(
        [sys.executable, "-c", _CALL_EACH_PUBLIC_NAME, str(tmp_path / "home")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
