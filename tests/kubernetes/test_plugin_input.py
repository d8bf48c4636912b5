"""Whatever a job's ``BUILDKITE_PLUGINS`` holds, reading it never crashes: settings or an error.

Property tests over arbitrary JSON (and raw text) in the place of the plugin list and of the
``kubernetes`` plugin's settings; the only outcomes allowed are checked settings, ``None`` (no
such plugin) or a :class:`PluginError` naming a field.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stacksapi.kubernetes._plugin import PluginError, kubernetes_plugin

from .catalogue import PLUGIN_SOURCE, STEPS, Step_, config_for, render, request_for

KEYS = st.sampled_from([
    "podSpec", "podSpecPatch", "containers", "name", "image", "env", "sidecars", "checkout",
    "skip", "metadata", "labels", "resources", "limits", "cpu", "$patch", "extraVolumeMounts",
    "mountPath", "x",
])  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=30,
)


def outcome(env: dict[str, str]) -> Any:
    """The settings, ``None``, or the :class:`PluginError` (which must name a field)."""
    try:
        return kubernetes_plugin(env)
    except PluginError as exc:
        error = exc
    assert error.field, error
    return error


@given(JSON)
@settings(max_examples=300, deadline=None)
def test_any_settings_give_settings_or_an_error_naming_a_field(value: Any) -> None:
    got = outcome({"BUILDKITE_PLUGINS": json.dumps([{PLUGIN_SOURCE: value}])})
    assert isinstance(got, dict | PluginError)


@given(st.text(max_size=40) | JSON.map(json.dumps))
@settings(max_examples=300, deadline=None)
def test_any_plugin_list_gives_settings_none_or_an_error(text: str) -> None:
    got = outcome({"BUILDKITE_PLUGINS": text})
    assert got is None or isinstance(got, dict | PluginError)


def test_deeply_nested_input_is_an_error_not_a_crash() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert isinstance(outcome({"BUILDKITE_PLUGINS": deep}), PluginError)
    nested = '{"x": ' * 5000 + '"x"' + "}" * 5000  # settings too deep to parse
    text = f'[{{"{PLUGIN_SOURCE}": {{"metadata": {{"labels": {nested}}}}}}}]'
    got = outcome({"BUILDKITE_PLUGINS": text})
    assert isinstance(got, PluginError)


@given(JSON)
@settings(max_examples=100, deadline=None)
def test_a_pod_is_built_or_the_job_is_refused_with_a_reason(value: Any) -> None:
    from stacksapi.kubernetes import render_job
    from stacksapi.stack import DispatchError

    step = Step_(plugin={"podSpecPatch": value} if isinstance(value, dict) else {"x": value})
    request, details = request_for(step)
    reason = ""
    try:
        render_job(config_for(step), request, "ci", details)
    except DispatchError as exc:
        reason = str(exc)
        assert reason.strip(), "a refusal says why"
    assert render(STEPS["no-plugin"])  # the next job is unaffected
