"""The deployed shape: ``python -m stacksapi.stack`` with a ``[kubernetes]`` table in its config.

A separate process, configured only by its TOML file (``stack.dispatcher`` names the Kubernetes
dispatcher, ``[kubernetes]`` points at the fake cluster's kubeconfig), runs a job from the
emulator through a Kubernetes Job, and on SIGTERM deregisters and exits 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from stacksapi.emulator import EmulatorServer

from .kube_fake import FakeKube
from .kube_helpers import NS, AgentKubelet


def test_python_m_stacksapi_stack_runs_jobs_on_kubernetes_from_its_config_file(
    stacks_emulator: EmulatorServer, fake_kube: FakeKube, tmp_path: Path
) -> None:
    em = stacks_emulator.emulator
    kubelet = AgentKubelet()
    fake_kube.kubelet = kubelet
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(fake_kube.kubeconfig(NS))
    endpoint = stacks_emulator.base_url.rstrip("/")
    config = tmp_path / "stack.toml"
    config.write_text(
        f'[stack]\nkey = "k8s-proc"\nbase_url = "{stacks_emulator.base_url}"\n'
        "poll_interval = 0.1\nstate_check_interval = 0.2\nshutdown_grace = 1.0\n"
        'dispatcher = "stacksapi.kubernetes:dispatcher"\n'
        f'[kubernetes]\nkubeconfig = "{kubeconfig}"\ncheck_interval = 0.1\n'
        f'agent_env = {{ BUILDKITE_AGENT_ENDPOINT = "{endpoint}" }}\n'
    )
    job = em.create_job()
    env = {**os.environ, "BUILDKITE_CLUSTER_TOKEN": stacks_emulator.token}
    env.pop("KUBECONFIG", None)
    log = (tmp_path / "stack.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stacksapi.stack", "--config", str(config)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30  # a safety limit, not a timing assertion
        while em.job_state(job) != "finished" and proc.poll() is None:
            assert time.monotonic() < deadline, (tmp_path / "stack.log").read_text()
            time.sleep(0.05)
        assert em.job_state(job) == "finished", (tmp_path / "stack.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
        log.close()
    output = (tmp_path / "stack.log").read_text()
    assert code == 0, output
    assert em.job(job).exit_status == 0
    assert kubelet.errors == []
    assert kubelet.tokens[job].startswith("bkjat_")
    assert kubelet.tokens[job] not in output  # never logged
    assert stacks_emulator.token not in output
    assert [s.key for s in em.list_stacks()] == []  # deregistered on SIGTERM
    assert len(fake_kube.items("jobs")) == 1


def test_the_client_library_is_imported_only_by_the_kubernetes_package() -> None:
    code = (
        "import sys, stacksapi, stacksapi.stack, stacksapi.stack._entry, stacksapi.cli\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in {'lightkube', 'yaml'}"
        " or m.startswith('stacksapi.kubernetes'))\n"
        "assert not loaded, loaded\n"
        "import stacksapi.kubernetes\n"
        "assert 'lightkube' in sys.modules\n"
    )
    argv = [sys.executable, "-c", code]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
