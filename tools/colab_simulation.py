"""Run every chapter the way Google Colab runs it, and check its stored outputs with nbval.

For each notebook, in a Python environment holding Colab's stack (``make compat``
builds one from ``tools/stacks.py``):

1. The companion package is uninstalled, so that only the notebook's own setup cell can
   bring it back.
2. The notebook is copied alone into an empty folder: no repository file is in reach.
3. nbval executes it there in a fresh kernel that has imported a stand-in ``google.colab``
   module, so the setup cell takes its Colab branch and runs its ``pip install`` line,
   and compares every checked output with the stored one.

The setup cell installs from the repository named in ``_config.yml``. The simulation
redirects that address to this clone's ``.git`` with git's ``url.<base>.insteadOf``
(set through ``GIT_CONFIG_*`` variables, not in any config file), so it installs what is
committed on that branch. pip runs with ``--no-index`` from a local wheel folder (the
build backend and the ``notebook`` extra, fetched when the environment was built): the
simulation never touches the network.

    python -m tools.colab_simulation --python _build/envs/colab/bin/python \\
        --wheels _build/envs/colab/wheels [book/03_*.ipynb ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools import setup_cells

ROOT = Path(__file__).resolve().parents[1]
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"

STUB = '''"""Stand-in for Colab's module: the setup cell only asks whether it was imported."""
'''

KERNEL_CONFIG = """\
# The simulated Colab kernel: google.colab is imported before the first cell, as on Colab.
c.InteractiveShellApp.exec_lines = ["import google.colab"]
# C-level output (TensorFlow's C++ notices) stays on the kernel's stderr, as in `make env`.
c.IPKernelApp.capture_fd_output = False
"""


#: Where the simulated kernel's web requests go: a local port nothing listens on.
OFFLINE_PROXY = "http://127.0.0.1:9"


def simulated_environment(scratch: Path, wheels: Path) -> dict[str, str]:
    """Return the environment variables of a simulated Colab kernel, files made in scratch."""
    # A namespace package (no google/__init__.py): protobuf's google.protobuf still imports.
    (scratch / "stub" / "google" / "colab").mkdir(parents=True)
    (scratch / "stub" / "google" / "colab" / "__init__.py").write_text(STUB)
    profile = scratch / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_kernel_config.py").write_text(KERNEL_CONFIG)
    url, _ = setup_cells.repository()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "GIT_CONFIG")) and k.lower() != "no_proxy"
    }
    env.update(
        # Offline: on Colab the chapters download Fashion-MNIST; here every HTTP(S) request
        # goes to a closed local port and fails at once, so they fall back to the digits.
        HTTP_PROXY=OFFLINE_PROXY,
        HTTPS_PROXY=OFFLINE_PROXY,
        http_proxy=OFFLINE_PROXY,
        https_proxy=OFFLINE_PROXY,
        KERAS_HOME=str(scratch / "keras"),
        PYTHONPATH=str(scratch / "stub"),
        PYTHONHASHSEED="0",
        IPYTHONDIR=str(scratch / "ipython"),
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0=f"url.{ROOT.as_uri()}.insteadOf",
        GIT_CONFIG_VALUE_0=url,
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheels.resolve()),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    return env


def run_notebook(python: str, notebook: Path, scratch: Path, env: dict[str, str]) -> int:
    """Uninstall the package, then nbval one notebook alone in an empty folder; pytest's status."""
    subprocess.run(
        [python, "-m", "pip", "uninstall", "--quiet", "--yes", setup_cells.DISTRIBUTION],
        env=env,
        check=True,
        capture_output=True,
    )
    folder = scratch / "runs" / notebook.stem
    folder.mkdir(parents=True)
    shutil.copy(notebook, folder / notebook.name)
    probe = [python, "-c", "import companion"]
    if subprocess.run(probe, cwd=folder, env=env, capture_output=True).returncode == 0:
        raise SystemExit(f"{python}: companion is importable before the setup cell ran")
    command = [python, "-m", "pytest", "--nbval", "--nbval-current-env", "-p", "no:cacheprovider"]
    command += ["--nbval-sanitize-with", str(SANITIZE), "-q", notebook.name]
    return subprocess.run(command, cwd=folder, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="the Colab-like environment's python")
    parser.add_argument("--wheels", required=True, type=Path, help="local wheels for pip")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter")
    args = parser.parse_args(argv)
    notebooks = [p.resolve() for p in args.notebooks] or setup_cells.notebooks()
    # Absolute, as each notebook runs in its own folder; not resolved: a venv's python is
    # a symlink to the base interpreter, and resolving it would leave the environment.
    python = os.path.abspath(args.python)
    results = []
    with tempfile.TemporaryDirectory(prefix="colab-simulation-") as name:
        scratch = Path(name)
        env = simulated_environment(scratch, args.wheels)
        for notebook in notebooks:
            print(f"\n--- {notebook.name}: alone in an empty folder, as on Colab", flush=True)
            start = time.perf_counter()
            status = run_notebook(python, notebook, scratch, env)
            results.append((notebook.name, status, time.perf_counter() - start))
    print("\nColab simulation:")
    for name, status, seconds in results:
        print(f"  {'passed' if status == 0 else 'FAILED'}  {seconds:6.1f} s  {name}")
    return 0 if all(status == 0 for _, status, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
