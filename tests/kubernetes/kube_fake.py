"""A small Kubernetes API server for the tests, over real HTTP (starlette + uvicorn on 127.0.0.1).

It serves what the dispatcher uses, the way the API server does: Jobs (``batch/v1``), Pods,
Secrets and Events (``v1``) in namespaces; create (409 ``AlreadyExists`` on a duplicate name),
get, list and watch (label and field selectors, ``resourceVersion``, newline-delimited watch
events, ``410 Gone`` for a compacted version, ``BOOKMARK`` events when asked for), merge patch,
delete, and ``/version``. Two controllers are played in-process: the Job controller (a Job gets a
pod from its template once it is not suspended; Job conditions follow the pod) and the garbage
collector (deleting an owner deletes what it owns: pods, Secrets). ``hold_lists`` parks list
responses after their snapshot was taken, to replay a list that is answered late.
A pluggable *kubelet* (a function run in a thread for each new pod) decides what the pod does.
Faults can be injected per method and kind. Bearer-token auth, like a real cluster.
``SelfSubjectAccessReview`` answers "allowed" except for the (verb, resource) pairs in ``denied``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import itertools
import json
import secrets
import socket
import threading
import time
import uuid as uuidlib
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Obj = dict[str, Any]
Kubelet = Callable[["FakeKube", str, Obj], None]

_GROUPS = {"jobs": ("batch/v1", "Job"), "pods": ("v1", "Pod"), "secrets": ("v1", "Secret"),
           "events": ("v1", "Event")}  # fmt: skip


_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(code: int, reason: str, message: str) -> JSONResponse:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}  # fmt: skip
    headers = {"Retry-After": "0"} if code == 429 else None
    return JSONResponse(body, status_code=code, headers=headers)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _selector(text: str | None) -> list[tuple[str, str, str | None]]:
    out: list[tuple[str, str, str | None]] = []
    for raw in (text or "").split(","):
        part = raw.strip()
        if not part:
            continue
        for op in ("!=", "==", "="):
            if op in part:
                key, value = part.split(op, 1)
                out.append((key.strip(), "!=" if op == "!=" else "=", value.strip()))
                break
        else:
            out.append((part, "exists", None))
    return out


def _field(obj: Obj, path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _matches(obj: Obj, labels: str | None, fields: str | None) -> bool:
    have = obj.get("metadata", {}).get("labels") or {}
    for key, op, value in _selector(labels):
        if op == "exists" and key not in have:
            return False
        if op == "=" and have.get(key) != value:
            return False
        if op == "!=" and have.get(key) == value:
            return False
    for key, op, value in _selector(fields):
        got = _field(obj, key)
        if (op == "=" and got != value) or (op == "!=" and got == value):
            return False
    return True


class FakeKube:
    """The state, its controllers, test helpers, and the HTTP server."""

    def __init__(self, *, token: str = "k8s-test-bearer") -> None:
        self.token = token
        self.lock = threading.RLock()
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.history: list[tuple[int, str, str, str, Obj]] = []
        self.compacted_before = 0
        self._rv = itertools.count(1000)
        self.requests: list[tuple[str, str]] = []
        self.faults: list[list[Any]] = []  # [method, plural, status, times]
        self.denied: set[tuple[str, str]] = set()  # (verb, resource) the account may not do
        self.kubelet: Kubelet | None = None
        self.closing = False
        self.generation = 0
        self.server_version = (1, 29)
        self.bookmark_interval = 1.0  # seconds between BOOKMARK events on watches that ask
        self.created_at: dict[tuple[str, str, str], float] = {}  # first creation, monotonic
        self._held: dict[str, threading.Event] = {}  # plural -> released when set
        self.list_held = threading.Event()  # a held list has taken its snapshot
        self._held_requests: dict[tuple[str, str], threading.Event] = {}  # (method, plural)
        self._pods_made: set[str] = set()  # Job uids whose pod exists
        methods = ["GET", "POST", "PATCH", "DELETE", "PUT"]
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=methods)])
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # --- server ---------------------------------------------------------------------------

    def start(self) -> FakeKube:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stalls
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False,
                                ws="none", timeout_graceful_shutdown=1)  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "fake API server did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.closing = True
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def kubeconfig(self, namespace: str = "ci") -> str:
        """A kubeconfig document (YAML is a superset of JSON) pointing at this server."""
        return json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester",
                                                      "namespace": namespace}}],
        })  # fmt: skip

    # --- state ----------------------------------------------------------------------------

    def _record(self, plural: str, ns: str, kind: str, obj: Obj) -> None:
        rv = next(self._rv)
        obj["metadata"]["resourceVersion"] = str(rv)
        self.history.append((rv, plural, ns, kind, copy.deepcopy(obj)))

    def store(self, plural: str, ns: str, obj: Obj, *, created: bool = False) -> Obj:
        """Put an object (new or changed) and tell the watchers."""
        with self.lock:
            api_version, kind = _GROUPS[plural]
            obj.setdefault("apiVersion", api_version)
            obj.setdefault("kind", kind)
            meta = obj.setdefault("metadata", {})
            meta["namespace"] = ns
            if created:
                meta.setdefault("uid", str(uuidlib.uuid4()))
                meta.setdefault("creationTimestamp", now_iso())
                self.created_at.setdefault((plural, ns, meta["name"]), time.monotonic())
            self.objects[(plural, ns, meta["name"])] = obj
            self._record(plural, ns, "ADDED" if created else "MODIFIED", obj)
            return copy.deepcopy(obj)

    def get(self, plural: str, ns: str, name: str) -> Obj | None:
        with self.lock:
            obj = self.objects.get((plural, ns, name))
            return copy.deepcopy(obj) if obj is not None else None

    def items(self, plural: str, ns: str = "ci") -> list[Obj]:
        with self.lock:
            return [copy.deepcopy(o) for (p, n, _), o in sorted(self.objects.items())
                    if p == plural and n == ns]  # fmt: skip

    def delete(self, plural: str, ns: str, name: str) -> bool:
        """Delete an object and, like the garbage collector, everything it owns."""
        with self.lock:
            obj = self.objects.pop((plural, ns, name), None)
            if obj is None:
                return False
            self._record(plural, ns, "DELETED", obj)
            uid = obj["metadata"].get("uid")
            for (p, n, other), o in list(self.objects.items()):
                owners = o["metadata"].get("ownerReferences") or []
                if n == ns and any(ref.get("uid") == uid for ref in owners):
                    self.delete(p, n, other)
            return True

    def compact(self) -> None:
        """Forget the history: a watch from an older version gets 410 Gone."""
        with self.lock:
            self.compacted_before = next(self._rv)

    def hold_lists(self, plural: str) -> threading.Event:
        """Park every list of ``plural`` after its snapshot until the returned event is set."""
        gate = threading.Event()
        with self.lock:
            self._held[plural] = gate
            self.list_held.clear()
        return gate

    def hold(self, method: str, plural: str) -> threading.Event:
        """Park every ``method`` request on ``plural`` until the returned event is set."""
        gate = threading.Event()
        with self.lock:
            self._held_requests[(method, plural)] = gate
        return gate

    def fail(self, method: str, plural: str, code: int, times: int = 1) -> None:
        """Answer the next ``times`` matching requests with ``code``."""
        with self.lock:
            self.faults.append([method, plural, code, times])

    def count(self, method: str, plural: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.split("?")[0].endswith(plural))

    # --- controllers ----------------------------------------------------------------------

    def _job_created(self, ns: str, job: Obj) -> None:
        if job["spec"].get("suspend") or job["metadata"]["uid"] in self._pods_made:
            return  # a suspended Job has no pod until it is released
        self._pods_made.add(job["metadata"]["uid"])
        template = job["spec"]["template"]
        name = job["metadata"]["name"]
        meta = copy.deepcopy(template.get("metadata") or {})
        labels = {**(meta.get("labels") or {}), "batch.kubernetes.io/job-name": name,
                  "job-name": name}  # fmt: skip
        pod = {
            "metadata": {
                "name": f"{name}-{secrets.token_hex(3)[:5]}",
                "labels": labels,
                "annotations": meta.get("annotations") or {},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                                     "uid": job["metadata"]["uid"], "controller": True}],
            },
            "spec": copy.deepcopy(template["spec"]),
            "status": {"phase": "Pending"},
        }  # fmt: skip
        pod = self.store("pods", ns, pod, created=True)
        if self.kubelet is not None:
            threading.Thread(target=self.kubelet, args=(self, ns, pod), daemon=True).start()

    def update_pod(self, ns: str, name: str, status: Obj) -> None:
        """Replace a pod's status (the kubelet's report); the Job follows a finished pod."""
        with self.lock:
            pod = self.get("pods", ns, name)
            if pod is None:
                return
            pod["status"] = status
            self.store("pods", ns, pod)
            phase = status.get("phase")
            owner = (pod["metadata"].get("ownerReferences") or [{}])[0].get("name")
            if phase in ("Succeeded", "Failed") and owner:
                self.finish_job(ns, owner, succeeded=phase == "Succeeded")

    def finish_job(self, ns: str, name: str, *, succeeded: bool, reason: str = "") -> None:
        with self.lock:
            job = self.get("jobs", ns, name)
            if job is None:
                return
            kind = "Complete" if succeeded else "Failed"
            why = reason or ("" if succeeded else "BackoffLimitExceeded")
            job["status"] = {
                "succeeded" if succeeded else "failed": 1,
                "conditions": [{"type": kind, "status": "True", "reason": why or None,
                                "message": "Job has reached the specified backoff limit"
                                if not succeeded else None, "lastTransitionTime": now_iso()}],
            }  # fmt: skip
            self.store("jobs", ns, job)

    def add_event(self, ns: str, kind: str, name: str, type_: str, reason: str, msg: str) -> None:
        event = {
            "metadata": {"name": f"{name}.{secrets.token_hex(6)}"},
            "involvedObject": {"kind": kind, "name": name, "namespace": ns},
            "type": type_, "reason": reason, "message": msg, "count": 1,
            "firstTimestamp": now_iso(), "lastTimestamp": now_iso(),
        }  # fmt: skip
        self.store("events", ns, event, created=True)

    def secret_value(self, ns: str, name: str, key: str) -> str | None:
        secret = self.get("secrets", ns, name)
        if secret is None or key not in (secret.get("data") or {}):
            return None
        return base64.b64decode(secret["data"][key]).decode()

    # --- HTTP -----------------------------------------------------------------------------

    def _route(self, path: str) -> tuple[str, str, str | None] | None:
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v1"]:
            rest = parts[2:]
        elif parts[:3] == ["apis", "batch", "v1"]:
            rest = parts[3:]
        else:
            return None
        if len(rest) < 3 or rest[0] != "namespaces" or rest[2] not in _GROUPS:
            return None
        if (rest[2] == "jobs") != (parts[0] == "apis"):
            return None
        return rest[2], rest[1], rest[3] if len(rest) > 3 else None

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        self.requests.append((request.method, f"{path}?{request.url.query}"))
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return status(401, "Unauthorized", "Unauthorized")
        if path == "/version":
            major, minor = self.server_version
            return JSONResponse({"major": str(major), "minor": f"{minor}+",
                                 "gitVersion": f"v{major}.{minor}.3"})  # fmt: skip
        if request.method == "POST" and path.endswith(_ACCESS_REVIEWS):
            return self._access_review(await request.json())
        route = self._route(path)
        if route is None:
            return status(404, "NotFound", f"the server could not find {path}")
        plural, ns, name = route
        with self.lock:
            gate = self._held_requests.get((request.method, plural))
        if gate is not None:
            await asyncio.to_thread(gate.wait, 30)  # bounded: a failed test must not hang
        with self.lock:
            for fault in self.faults:
                if fault[0] == request.method and fault[1] == plural and fault[3] > 0:
                    fault[3] -= 1
                    return status(fault[2], "InternalError", "injected fault")
        query = request.query_params
        if request.method == "GET" and name is None and query.get("watch") == "true":
            return self._watch(plural, ns, query.get("labelSelector"),
                               query.get("fieldSelector"), query.get("resourceVersion"),
                               float(query.get("timeoutSeconds") or 300),
                               query.get("allowWatchBookmarks") == "true")  # fmt: skip
        if request.method == "GET" and name is None:
            return await self._list(plural, ns, query.get("labelSelector"),
                                    query.get("fieldSelector"))  # fmt: skip
        if request.method == "POST" and name is None:
            return self._create(plural, ns, await request.json())
        if name is None:
            return status(405, "MethodNotAllowed", "method not allowed")
        if request.method == "GET":
            obj = self.get(plural, ns, name)
            return JSONResponse(obj) if obj else self._missing(plural, name)
        if request.method == "DELETE":
            if not self.delete(plural, ns, name):
                return self._missing(plural, name)
            return JSONResponse({"kind": "Status", "apiVersion": "v1", "status": "Success"})
        if request.method == "PATCH":
            patch = await request.json()  # never wait for a body while holding the lock
            with self.lock:
                obj = self.get(plural, ns, name)
                if obj is None:
                    return self._missing(plural, name)
                stored = self.store(plural, ns, merge_patch(obj, patch))
                if plural == "jobs":  # released from suspension: the Job controller acts
                    self._job_created(ns, self.objects[(plural, ns, name)])
                return JSONResponse(stored)
        return status(405, "MethodNotAllowed", "method not allowed")

    def _access_review(self, review: Obj) -> JSONResponse:
        """``kubectl auth can-i``: allowed unless (verb, resource) is in ``denied``."""
        attrs = review.get("spec", {}).get("resourceAttributes") or {}
        allowed = (attrs.get("verb"), attrs.get("resource")) not in self.denied
        reason = "allowed by the test's Role" if allowed else "denied by the test"
        review["status"] = {"allowed": allowed, "reason": reason}
        return JSONResponse(review, status_code=201)

    @staticmethod
    def _missing(plural: str, name: str) -> JSONResponse:
        return status(404, "NotFound", f'{plural} "{name}" not found')

    def _create(self, plural: str, ns: str, obj: Obj) -> Response:
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            return status(422, "Invalid", "metadata.name: Required value")
        with self.lock:
            if (plural, ns, name) in self.objects:
                group = "jobs.batch" if plural == "jobs" else plural
                return status(409, "AlreadyExists", f'{group} "{name}" already exists')
            created = self.store(plural, ns, obj, created=True)
            if plural == "jobs":
                self._job_created(ns, self.objects[(plural, ns, name)])
        return JSONResponse(created, status_code=201)

    async def _list(self, plural: str, ns: str, labels: str | None, fields: str | None) -> Response:
        with self.lock:
            items = [o for o in self.items(plural, ns) if _matches(o, labels, fields)]
            version = str(self.history[-1][0] if self.history else 1)
            gate = self._held.get(plural)
        if gate is not None:  # answered late: whatever happens meanwhile is not in it
            self.list_held.set()
            await asyncio.to_thread(gate.wait, 30)
        api_version, kind = _GROUPS[plural]
        return JSONResponse({"apiVersion": api_version, "kind": f"{kind}List",
                             "metadata": {"resourceVersion": version}, "items": items})  # fmt: skip

    def _watch(self, plural: str, ns: str, labels: str | None, fields: str | None,
               version: str | None, timeout: float, bookmarks: bool) -> Response:  # fmt: skip
        def events_after(position: int) -> tuple[list[Obj], int]:
            with self.lock:
                new = self.history[position:]
                out = [{"type": kind, "object": obj} for _, p, n, kind, obj in new
                       if p == plural and n == ns and _matches(obj, labels, fields)]  # fmt: skip
                return out, position + len(new)

        async def stream() -> Any:
            with self.lock:
                generation = self.generation
                if version and int(version) < self.compacted_before:
                    gone = {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                            "code": 410, "reason": "Expired", "message": "too old"}  # fmt: skip
                    yield json.dumps({"type": "ERROR", "object": gone}) + "\n"
                    return
                if version:
                    position = next((i for i, h in enumerate(self.history) if h[0] > int(version)),
                                    len(self.history))  # fmt: skip
                    first: list[Obj] = []
                else:
                    first = [{"type": "ADDED", "object": o} for o in self.items(plural, ns)
                             if _matches(o, labels, fields)]  # fmt: skip
                    position = len(self.history)
            for event in first:
                yield json.dumps(event) + "\n"
            deadline = time.monotonic() + timeout
            marked = time.monotonic()
            while not self.closing and time.monotonic() < deadline:
                if self.generation != generation:
                    return
                batch, position = events_after(position)
                for event in batch:
                    yield json.dumps(event) + "\n"
                if bookmarks and time.monotonic() - marked >= self.bookmark_interval:
                    marked = time.monotonic()
                    yield json.dumps(self._bookmark(plural)) + "\n"
                await asyncio.sleep(0.02)

        return StreamingResponse(stream(), media_type="application/json")

    def _bookmark(self, plural: str) -> Obj:
        with self.lock:
            version = str(self.history[-1][0] if self.history else 1)
        api_version, kind = _GROUPS[plural]
        meta = {"resourceVersion": version}
        return {"type": "BOOKMARK",
                "object": {"apiVersion": api_version, "kind": kind, "metadata": meta}}  # fmt: skip

    def drop_watches(self) -> None:
        """End every open watch stream (as a restarted API server would)."""
        with self.lock:
            self.generation += 1
