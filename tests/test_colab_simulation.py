"""tools.colab_simulation: the simulated Colab kernel's environment, checked offline."""

from __future__ import annotations

import subprocess
import sys

from tools import colab_simulation, setup_cells


def test_google_colab_imports_beside_protobuf(tmp_path):
    env = colab_simulation.simulated_environment(tmp_path, tmp_path / "wheels")
    code = "import google.colab, google.protobuf; print('both')"
    child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert child.returncode == 0, child.stderr
    config = (tmp_path / "ipython" / "profile_default" / "ipython_kernel_config.py").read_text()
    assert '["import google.colab"]' in config and "capture_fd_output = False" in config


def test_the_repository_address_leads_to_this_clone_and_pip_stays_offline(tmp_path):
    env = colab_simulation.simulated_environment(tmp_path, tmp_path / "wheels")
    url, _ = setup_cells.repository()
    remote = subprocess.run(
        ["git", "ls-remote", url, "HEAD"], env=env, capture_output=True, text=True, timeout=60
    )
    local = subprocess.run(
        ["git", "-C", str(colab_simulation.ROOT), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
    )
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout.split()[0] == local.stdout.strip()
    assert env["PIP_NO_INDEX"] == "1" and env["PIP_FIND_LINKS"] == str(tmp_path / "wheels")
    assert "PYTHONPATH" in env and str(colab_simulation.ROOT) not in env["PYTHONPATH"]


def test_web_requests_fail_at_once_without_leaving_the_machine(tmp_path):
    env = colab_simulation.simulated_environment(tmp_path, tmp_path / "wheels")
    assert env["HTTPS_PROXY"] == env["https_proxy"] == colab_simulation.OFFLINE_PROXY
    assert not {"NO_PROXY", "no_proxy"} & set(env)
    code = (
        "import urllib.request\n"
        "try:\n"
        "    urllib.request.urlopen('https://storage.googleapis.com/', timeout=20)\n"
        "except OSError as error:\n"
        "    print(type(error).__name__)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    # The request reached only the closed local port named as the proxy.
    assert child.returncode == 0 and child.stdout.strip() == "URLError", child.stderr
