"""The software stacks the book is tested on besides the newest: requirements for ``make compat``.

Two stacks, each printed as a pip requirements file:

``floor``
    Every lower bound the package declares, taken literally: ``numpy>=1.26`` becomes
    ``numpy==1.26.*``. This covers the runtime dependencies, the ``notebook`` extra a
    chapter needs on Colab and the tools that run the tests. It proves the bounds in
    ``pyproject.toml`` are true, not guessed.
``colab``
    The scientific stack of a Google Colab runtime, frozen in :data:`COLAB`, plus the
    test tools. The companion package itself and its ``notebook`` extra are *not* in it:
    in the Colab simulation every notebook's setup cell installs them, as on Colab.

``colab-wheels`` prints what the setup cell's install needs beyond the ``colab`` stack
(the build backend and the ``notebook`` extra), for ``pip download``: the simulation then
installs with ``--no-index`` and never touches the network.

    python -m tools.stacks floor > requirements-floor.txt
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]

#: The scientific stack of Google Colab's CPU runtime in 2026 (``pip list`` on a fresh
#: runtime). Update it when Colab moves: the book must keep running on what Colab ships.
COLAB = {
    "tensorflow": "2.19.0",
    "keras": "3.10.0",
    "numpy": "2.0.2",
    "matplotlib": "3.10.0",
    "scikit-learn": "1.6.1",
    "pillow": "11.3.0",
}

#: Test tools that only lint or drive the browser: not needed to run unit tests and nbval.
NOT_FOR_COMPAT = {"ruff", "playwright"}

LOWER_BOUND = re.compile(r"^>=(\d+(?:\.\d+)*)")


def project() -> dict:
    """Return the ``[project]`` table of ``pyproject.toml``."""
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["project"]


def _applies(requirement: Requirement) -> bool:
    """Whether a requirement's environment marker holds on this Python."""
    return requirement.marker is None or requirement.marker.evaluate()


def tools_for_tests() -> list[Requirement]:
    """Return the ``test`` extra without the lint and browser tools."""
    reqs = [Requirement(r) for r in project()["optional-dependencies"]["test"]]
    return [r for r in reqs if r.name not in NOT_FOR_COMPAT and _applies(r)]


def pinned_to_floor(requirement: Requirement) -> str:
    """Return ``name==X.Y.*`` for a requirement declared ``name>=X.Y``.

    >>> pinned_to_floor(Requirement("numpy>=1.26"))
    'numpy==1.26.*'
    >>> pinned_to_floor(Requirement("myst-nb[extra]>=1.0"))
    'myst-nb[extra]==1.0.*'
    """
    specs = [str(s) for s in requirement.specifier]
    floors = [m.group(1) for s in specs if (m := LOWER_BOUND.match(s))]
    if len(floors) != 1:
        raise ValueError(f"{requirement}: expected exactly one '>=' lower bound, got {specs}")
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    return f"{requirement.name}{extras}=={floors[0]}.*"


def floor() -> list[str]:
    """The declared floor: the runtime dependencies, the ``notebook`` extra and the test tools."""
    table = project()
    reqs = [Requirement(r) for r in table["dependencies"]]
    reqs += [Requirement(r) for r in table["optional-dependencies"]["notebook"]]
    return [pinned_to_floor(r) for r in reqs + tools_for_tests() if _applies(r)]


def colab() -> list[str]:
    """Colab's stack, pinned, plus the test tools at their newest."""
    return [f"{name}=={version}" for name, version in COLAB.items()] + [
        r.name for r in tools_for_tests()
    ]


def colab_wheels() -> list[str]:
    """What installing the package on the ``colab`` stack adds: build backend and extra."""
    with open(ROOT / "pyproject.toml", "rb") as handle:
        build = tomllib.load(handle)["build-system"]["requires"]
    return build + project()["optional-dependencies"]["notebook"]


STACKS = {"floor": floor, "colab": colab, "colab-wheels": colab_wheels}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", choices=sorted(STACKS))
    args = parser.parse_args(argv)
    print("\n".join(STACKS[args.stack]()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
