"""Burst benchmark of the Kubernetes dispatcher: create the objects of 1,000 jobs at once.

Against the project's Kubernetes fake (tests/kubernetes/kube_fake.py, real HTTP on 127.0.0.1),
every job is dispatched at the same moment, as after a stack reserved a burst, with the client
rate limit on (``--qps``, burst 20). Per job it measures, from the start of the burst:

- **time to its last object** (the last of its Job, Secret and pod to exist: when the pod can
  start), p50 and p99;
- **time its pod waited for its Secret** (a pod that exists before its Secret sits in
  ``CreateContainerConfigError``, which counts against the image-pull grace), p50 and p99.

Two strategies run in the same process against fresh fakes: the **baseline** creates each Job
and then its Secret with no ordering between jobs (what the dispatcher did before: every Job
went out before any Secret), the **dispatcher** is ``KubernetesDispatcher.dispatch`` itself (each
job's Job suspended, Secret, release, a few jobs at a time). Ratios are dispatcher / baseline;
the bound is the time the rate limit alone allows for all calls.

Run: ``.venv/bin/python bench/bench_kubernetes.py [--jobs 1000] [--qps 100]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import msgspec
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Secret

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from kubernetes.kube_fake import FakeKube
from kubernetes.kube_helpers import NS, RecordingSink, request
from stacksapi.kubernetes import (
    KubernetesConfig,
    KubernetesDispatcher,
    job_name,
    render_job,
    render_secret,
    secret_name,
)
from stacksapi.kubernetes._kube import KubeAPI
from stacksapi.kubernetes._render import owner_reference

BURST = 20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def measure(fake: FakeKube, config: KubernetesConfig, uuids: Collection[str],
            began: float) -> dict[str, float]:  # fmt: skip
    """Per-job figures from when the fake stored each object."""
    born = fake.created_at
    pods = {name.rsplit("-", 1)[0]: at for (plural, _, name), at in born.items()
            if plural == "pods"}  # fmt: skip
    last, waited = [], []
    for uuid in uuids:
        job = job_name(config, uuid)
        secret = born[("secrets", NS, secret_name(config, uuid))]
        pod = pods[job]
        last.append(max(born[("jobs", NS, job)], secret, pod) - began)
        waited.append(max(0.0, secret - pod))
    return {
        "last_object_p50_s": statistics.median(last),
        "last_object_p99_s": percentile(last, 0.99),
        "secret_wait_p50_s": statistics.median(waited),
        "secret_wait_p99_s": percentile(waited, 0.99),
        "api_calls": float(sum(1 for m, _ in fake.requests if m in ("POST", "PATCH"))),
    }


def config_for(fake: FakeKube, folder: Path, qps: float) -> KubernetesConfig:
    path = folder / "kubeconfig.yaml"
    path.write_text(fake.kubeconfig(NS))
    return KubernetesConfig(kubeconfig=str(path), api_qps=qps, api_burst=BURST)


async def baseline(jobs: int, qps: float, folder: Path) -> dict[str, float]:
    """Each Job, then its Secret, all jobs at once through one rate limit (the old way)."""
    fake = FakeKube().start()
    try:
        config = config_for(fake, folder, qps)
        client = AsyncClient(config=KubeConfig.from_file(str(config.kubeconfig)).get(),
                             namespace=NS, trust_env=False)  # fmt: skip
        api = KubeAPI(client, NS, qps=qps, burst=BURST, retries=3)
        uuids = [f"0190dddd-0000-4000-8000-{i:012d}" for i in range(jobs)]

        async def one(uuid: str) -> None:
            req = request(uuid)
            job = await api.create(msgspec.convert(render_job(config, req, NS), Job))
            owner = owner_reference(job_name(config, uuid), str(job.metadata.uid))  # type: ignore[union-attr]
            await api.create(msgspec.convert(render_secret(config, req, NS, owner), Secret))

        began = time.monotonic()
        await asyncio.gather(*(one(u) for u in uuids))
        await client.close()
        return measure(fake, config, uuids, began)
    finally:
        fake.stop()


async def dispatcher_run(jobs: int, qps: float, folder: Path) -> dict[str, float]:
    fake = FakeKube().start()
    try:
        config = config_for(fake, folder, qps)
        d = KubernetesDispatcher(config, stack_key="k8s")
        await d.start(RecordingSink())
        uuids = [f"0190eeee-0000-4000-8000-{i:012d}" for i in range(jobs)]
        began = time.monotonic()
        await asyncio.gather(*(d.dispatch(request(u)) for u in uuids))
        figures = measure(fake, config, uuids, began)
        await d.shutdown(0)
        return figures
    finally:
        fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--qps", type=float, default=100.0, help="client rate limit (api_qps)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = asyncio.run(baseline(args.jobs, args.qps, Path(tmp)))
        new = asyncio.run(dispatcher_run(args.jobs, args.qps, Path(tmp)))
    bound = new["api_calls"] / args.qps
    out: dict[str, Any] = {"jobs": args.jobs, "qps": args.qps, "baseline": base,
                           "dispatcher": new, "rate_limit_bound_s": bound}  # fmt: skip
    for key in ("last_object_p50_s", "last_object_p99_s"):
        out[f"ratio_{key}"] = new[key] / base[key]
    if args.json:
        print(json.dumps(out))
        return
    print(f"burst of {args.jobs} jobs at {args.qps:g} requests/s (burst {BURST})")
    print(f"{'':28}{'baseline':>12}{'dispatcher':>12}{'ratio':>8}")
    for key, label in (("last_object_p50_s", "time to last object p50"),
                       ("last_object_p99_s", "time to last object p99"),
                       ("secret_wait_p50_s", "pod waits for Secret p50"),
                       ("secret_wait_p99_s", "pod waits for Secret p99")):  # fmt: skip
        ratio = f"{new[key] / base[key]:8.2f}" if base[key] > 0 else f"{'-':>8}"
        print(f"{label + ' (s)':28}{base[key]:12.2f}{new[key]:12.2f}{ratio}")
    print(f"{'create/patch requests':28}{base['api_calls']:12.0f}{new['api_calls']:12.0f}")
    print(f"rate-limit bound for the dispatcher's requests: {bound:.1f} s "
          f"(p99 / bound {new['last_object_p99_s'] / bound:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
