"""``stacksapi run --check`` with the Kubernetes dispatcher: the API answers, the service account
may do what the dispatcher needs (SelfSubjectAccessReview, against the fake API server), and only
the ``[kubernetes]`` settings are shown (issue 9 item 8, issue 12).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from stacksapi.cli import cli

from .kube_fake import FakeKube

pytest.importorskip("lightkube")


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("BUILDKITE_CLUSTER_TOKEN", "STACKSAPI_BASE_URL", "KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def check(runner: CliRunner, config: Path) -> tuple[int, str]:
    result = runner.invoke(cli, ["run", "--config", str(config), "--check"])
    return result.exit_code, result.stdout + result.stderr


def test_check_shows_only_the_settings_of_the_chosen_dispatcher(
    runner: CliRunner, tmp_path: Path, fake_kube: FakeKube
) -> None:
    fake = fake_kube
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(fake.kubeconfig("ci"))
    config = tmp_path / "stack.toml"
    config.write_text(
        "[stack]\nkey = 'k'\ndispatcher = 'stacksapi.kubernetes:dispatcher'\n"
        f"[kubernetes]\nkubeconfig = '{kubeconfig}'\n"
    )
    code, out = check(runner, config)
    assert code == 0, out
    assert "subprocess." not in out
    assert "kubernetes.kubeconfig" in out
    assert "may create jobs" in out
    reviews = [p for m, p in fake.requests if "selfsubjectaccessreviews" in p]
    assert reviews  # the service account's permissions were asked, not assumed
    fake.denied = {("create", "jobs")}
    code, out = check(runner, config)
    assert code == 1
    assert "may not create jobs" in out


def test_check_fails_when_the_kubernetes_api_does_not_answer(
    runner: CliRunner, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u, namespace: ci}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    config = tmp_path / "stack.toml"
    config.write_text(
        "[stack]\nkey = 'k'\ndispatcher = 'stacksapi.kubernetes:dispatcher'\n"
        f"[kubernetes]\nkubeconfig = '{kubeconfig}'\napi_retries = 0\n"
    )
    code, out = check(runner, config)
    assert code == 1
    assert "Kubernetes API" in out
