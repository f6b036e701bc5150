import pytest

from shipyard.errors import InvalidInputError, InvalidReferenceError
from shipyard.registry.refs import ModelRef, check_alias, check_model_name, parse_ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("iris", ModelRef("iris", alias="production")),
        ("iris@staging", ModelRef("iris", alias="staging")),
        ("iris:3", ModelRef("iris", version=3)),
        ("models:/iris/3", ModelRef("iris", version=3)),
        ("models:/iris@champion", ModelRef("iris", alias="champion")),
        ("models:/wine/latest", ModelRef("wine", alias="latest")),
        ("  churn-v2.1@latest ", ModelRef("churn-v2.1", alias="latest")),
    ],
)
def test_parse_ref(text: str, expected: ModelRef) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize("text", ["", "iris:0", "iris:-1", "iris@", "@prod", "iris:3@x", "a b"])
def test_bad_refs_explain_the_forms(text: str) -> None:
    with pytest.raises(InvalidReferenceError, match="NAME@ALIAS"):
        parse_ref(text)


def test_str_roundtrips() -> None:
    assert str(parse_ref("iris")) == "iris@production"
    assert parse_ref(str(parse_ref("iris:7"))) == ModelRef("iris", version=7)


@pytest.mark.parametrize("alias", ["latest", "v3", "v12"])
def test_reserved_aliases(alias: str) -> None:
    with pytest.raises(InvalidInputError, match="reserved"):
        check_alias(alias)


def test_valid_names_and_aliases() -> None:
    assert check_alias("champion") == "champion"
    assert check_model_name("iris_v2") == "iris_v2"
    with pytest.raises(InvalidInputError, match="not allowed"):
        check_model_name("../etc")
    with pytest.raises(InvalidInputError, match="not allowed"):
        check_alias("9lives")
