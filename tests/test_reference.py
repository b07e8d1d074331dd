"""The published schemas and reference pages are what the models give, and every YAML
example in the docs is a file the reader and the schema both accept."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from documents_support import check
from setpoint import _documents, _reference

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```yaml[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
# A top-level key only one of the four files has says which file an example is.
MARKS = {"triggers": "policy", "columns": "contract", "target": "spec", "window": "monitor"}
REGENERATE = "regenerate with: python -m setpoint._reference"


def _examples() -> list[tuple[str, str]]:
    """Every YAML example of a setpoint file in the docs: all ```yaml blocks but
    Kubernetes manifests (docs/scaling.md's RayService), which are not ours to read."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    found = []
    for page in pages:
        for number, match in enumerate(FENCE.finditer(page.read_text(encoding="utf-8"))):
            if not _kubernetes(match[1]):
                found.append((f"{page.relative_to(ROOT)}#{number + 1}", match[1]))
    return found


def _kubernetes(text: str) -> bool:
    data = yaml.safe_load(text)
    return isinstance(data, dict) and {"apiVersion", "kind"} <= set(data)


@pytest.mark.parametrize("name", _documents.DOCUMENTS)
def test_the_shipped_schema_is_the_models(name: str) -> None:
    shipped = _documents.schema_path(name)
    assert shipped.is_file(), f"{shipped} is missing; {REGENERATE}"
    assert shipped.read_text(encoding="utf-8") == _documents.schema_text(name), REGENERATE


@pytest.mark.parametrize("name", _documents.DOCUMENTS)
def test_the_reference_page_is_the_models(name: str) -> None:
    page = ROOT / "docs" / "reference" / f"{name}.md"
    assert page.is_file(), f"{page} is missing; {REGENERATE}"
    assert page.read_text(encoding="utf-8") == _reference.render(name), REGENERATE


def test_the_docs_have_an_example_of_every_file() -> None:
    kinds = {_kind(text) for _, text in _examples()}
    assert kinds == set(_documents.DOCUMENTS)


@pytest.mark.parametrize(("where", "text"), _examples(), ids=[w for w, _ in _examples()])
def test_every_yaml_example_in_the_docs_is_read_and_matches_its_schema(
    where: str, text: str
) -> None:
    name = _kind(text)
    cls = _documents.document_class(name)
    document = cls.read_yaml(text, source=where)
    check(name, yaml.safe_load(text))
    assert cls.read(document.to_dict()) == document  # type: ignore[attr-defined]


def _kind(text: str) -> str:
    data = yaml.safe_load(text)
    assert isinstance(data, dict), f"a YAML example that is not a mapping:\n{text}"
    kinds = {MARKS[key] for key in data if key in MARKS}
    assert len(kinds) == 1, f"cannot tell which file this example is (keys {list(data)}):\n{text}"
    return kinds.pop()


def test_a_misspelled_key_is_refused_by_the_reader_and_the_schema() -> None:
    cases = {
        "spec": {"model": "m", "dataset": "d", "target": "t", "sead": 1},
        "contract": {"columns": {"a": {"kind": "numeric", "maxx": 1}}},
        "policy": {"triggers": [{"drift_share": 0.3}], "cooldwn": "1d"},
        "monitor": {"windw": "1d"},
    }
    for name, data in cases.items():
        with pytest.raises(Exception, match="unknown key; did you mean") as caught:
            _documents.document_class(name).read(data)
        assert "Traceback" not in str(caught.value)
        errors = list(jsonschema.Draft202012Validator(_documents.schema(name)).iter_errors(data))
        assert errors, f"the {name} schema accepts a misspelled key"
