"""The project's own invariants: table of contents, stored notebooks, dependencies, Colab."""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

import companion

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
from tools import setup_cells, stacks, toc

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))

# TensorFlow's C++ runtime notices; they must never be stored as outputs.
TF_NOTICE = re.compile(r"oneDNN custom operations|cuda|absl::|cpu_feature_guard|port\.cc", re.I)


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(notebook: dict) -> list[dict]:
    return [c for c in notebook["cells"] if c["cell_type"] == "code" and "".join(c["source"])]


def test_there_are_notebooks():
    assert NOTEBOOKS, "book/ holds no notebooks"


def test_every_toc_entry_exists():
    missing = []
    for entry in toc.files():
        if not any((ROOT / f"{entry}{ext}").exists() for ext in (".ipynb", ".md")):
            missing.append(entry)
    assert not missing, f"_toc.yml names files that do not exist: {missing}"


def test_every_notebook_is_in_the_toc():
    listed = set(toc.files())
    absent = [p.name for p in NOTEBOOKS if str(p.relative_to(ROOT).with_suffix("")) not in listed]
    assert not absent, f"notebooks in book/ missing from _toc.yml: {absent}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_was_executed_in_order(path):
    counts = [c["execution_count"] for c in code_cells(load(path))]
    assert None not in counts, f"{path.name}: a code cell was never executed"
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: cells were not executed top to bottom in one fresh kernel "
        f"(execution counts {counts}); run `make execute`"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_stores_no_error_and_no_tensorflow_notice(path):
    for cell in code_cells(load(path)):
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"{path.name}: a stored error output"
            if output.get("name") == "stderr":
                text = "".join(output["text"])
                assert not TF_NOTICE.search(text), f"{path.name}: TensorFlow notice stored: {text}"
            if output.get("name") in ("stdout", "stderr"):  # TensorFlow's Python logger
                text = "".join(output["text"])
                assert "WARNING:tensorflow" not in text, f"{path.name}: TF log line stored: {text}"


def _names(requirements: list[str]) -> dict[str, str]:
    parsed = [Requirement(r) for r in requirements]
    return {r.name.lower().replace("_", "-"): str(r.specifier) for r in parsed}


def test_pyproject_and_environment_name_the_same_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted.extend(extra)
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip, "environment.yml must install the companion package itself"
    assert _names([r for r in pip if r != "-e ."]) == _names(wanted)


def test_runtime_requirements_have_lower_bounds_only():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for requirement in map(Requirement, project["dependencies"]):
        operators = {spec.operator for spec in requirement.specifier}
        assert operators == {">="}, f"{requirement}: runtime requirements take lower bounds only"


def test_every_subpackage_is_packaged():
    """A non-editable install (Colab's) ships only what the find patterns include."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = [
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "companion").rglob("__init__.py")
    ]
    assert len(packages) > 1, packages
    missed = [p for p in packages if not any(fnmatch.fnmatchcase(p, i) for i in include)]
    assert not missed, f"pyproject.toml's packages.find include={include} misses {missed}"


def test_stack_requirements_pin_every_declared_lower_bound():
    floor = stacks.floor()
    assert "numpy==1.26.*" in floor and "tensorflow==2.16.*" in floor, floor
    assert all("==" in line and ">" not in line for line in floor), floor
    colab = stacks.colab()
    assert f"tensorflow=={stacks.COLAB['tensorflow']}" in colab
    assert not any(line.startswith("conv2d-companion") for line in colab), (
        "the Colab stack must not hold the package: the setup cells install it"
    )


def test_setup_cells_agree_with_config():
    bad = setup_cells.disagreeing()
    assert not bad, (
        f"setup cells disagree with _config.yml's repository: {[p.name for p in bad]}; "
        "run `make setup-cells`"
    )


def test_launch_buttons_use_the_configured_repository():
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    url, branch = setup_cells.repository()
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), (
        f"repository.url {url!r}: Colab and Binder launch from a GitHub repository"
    )
    assert branch
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert config["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert config["execute"]["execute_notebooks"] == "off"


def test_package_version_and_type_marker():
    assert re.fullmatch(r"\d+\.\d+\.\d+", companion.__version__)
    assert (Path(companion.__file__).parent / "py.typed").exists()


# -- every tolerance in the repository is justified ---------------------------------------

TOLERANCE = re.compile(r"\b[ar]tol\s*=")


def _code_lines(path: Path) -> list[list[str]]:
    """The code of a file as blocks of lines (one block per notebook code cell)."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return ["".join(c["source"]).splitlines() for c in cells if c["cell_type"] == "code"]
    return [path.read_text(encoding="utf-8").splitlines()]


def unjustified_tolerances(path: Path, root: Path = ROOT) -> list[str]:
    """Lines passing a relative or absolute tolerance with no comment on them or above."""
    found = []
    for block in _code_lines(path):
        for index, line in enumerate(block):
            code_part = line.split("#", 1)[0]  # a comment that names a tolerance is no use
            if not TOLERANCE.search(code_part) or "TOLERANCE = re.compile" in line:
                continue
            above = block[index - 1].strip() if index else ""
            same_line = "#" in line.split("tol", 1)[1]
            if not same_line and not above.startswith(("#", ">>> #")):
                found.append(f"{path.relative_to(root)}: {line.strip()}")
    return found


SOURCES = sorted(
    p
    for folder in ("companion", "tests", "tools", "book")
    for p in (ROOT / folder).rglob("*")
    if p.suffix in (".py", ".ipynb") and ".ipynb_checkpoints" not in p.parts
)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_tolerance_is_justified_by_a_comment(path):
    assert unjustified_tolerances(path) == []


def test_the_tolerance_search_finds_an_unjustified_use(tmp_path):
    bare = tmp_path / "bare.py"
    # The file's text holds an unjustified tolerance and a justified one:
    bare.write_text(
        "x = np.isclose(a, b, r" + "tol=1e-5)\n# the bound\ny = f(a" + "tol=b)\n# r" + "tol=0\n"
    )
    expected = "bare.py: x = np.isclose(a, b, r" + "tol=1e-5)"
    assert unjustified_tolerances(bare, tmp_path) == [expected]
