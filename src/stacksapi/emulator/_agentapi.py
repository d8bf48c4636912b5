"""The agent's side of a job, simplified: acquire, start, log, poll state, finish.

What ``buildkite-agent start --acquire-job`` does against Buildkite, reduced to five calls under
``/v3/jobs/{uuid}/``. Acquiring takes a job acquisition token issued for that job (or a cluster
token) and hands back a ``bkaa_`` access token bound to the job for the other calls.
"""

from __future__ import annotations

import secrets

import msgspec

from ._clock import to_datetime
from ._cluster import TERMINAL
from ._jobs import FinishRecord, JobRecord
from ._reply import EmulatorError
from ._state import Emulator

__all__ = [
    "AcquiredJob",
    "AgentFinishRequest",
    "AgentLogRequest",
    "JobStateReply",
    "acquire",
    "agent_finish",
    "agent_log",
    "agent_start",
    "agent_state",
]

MAX_LOG_CHUNK_BYTES = 1024 * 1024


class AcquiredJob(msgspec.Struct, kw_only=True, frozen=True):
    """What acquiring a job returns: the job and the agent's access token for it."""

    id: str
    command: str
    env: dict[str, str]
    access_token: str


class JobStateReply(msgspec.Struct, kw_only=True, frozen=True):
    state: str


class AgentLogRequest(msgspec.Struct, kw_only=True, frozen=True):
    content: str


class AgentFinishRequest(msgspec.Struct, kw_only=True, frozen=True):
    exit_status: int
    signal_reason: str | None = None


def acquire(em: Emulator, job_id: str, token: str) -> AcquiredJob:
    """Move a scheduled or reserved job to ``accepted`` (queue pauses do not matter here)."""
    with em.lock:
        now = em.tick()
        entry = em.job_tokens.get(token)
        if entry is not None:
            token_job, expires, seq, index = entry
            if token_job != job_id:
                raise EmulatorError(403, "job acquisition token was issued for another job")
            job = em.jobs[token_job]
            if now >= expires or job.reservation_seq != seq or job.state != "reserved":
                raise EmulatorError(401, "job acquisition token expired or no longer valid")
        elif em.is_cluster_token(token):
            found = em.jobs.get(job_id)
            if found is None:
                raise EmulatorError(404, f"job {job_id!r} not found")
            job, index = found, -1
        else:
            raise EmulatorError(401, "invalid token")
        if job.state not in ("scheduled", "reserved"):
            raise EmulatorError(422, f"job {job_id} is {job.state}: it cannot be acquired")
        if index >= 0 and job.history is not None:
            job.history.tokens[index].used_at = to_datetime(now)
            em.job_tokens.pop(token, None)
        em.unlist(job, now, "acquired")
        job.move("accepted", now, "agent")
        access = "bkaa_" + secrets.token_urlsafe(32)
        if job.access_token is not None:
            em.access_tokens.pop(job.access_token, None)
        job.access_token = access
        em.access_tokens[access] = job.id
        return AcquiredJob(id=job.id, command=job.command, env=dict(job.env), access_token=access)


def _owned(em: Emulator, job_id: str, token: str) -> JobRecord:
    owner = em.access_tokens.get(token)
    if owner is None:
        raise EmulatorError(401, "invalid access token")
    if owner != job_id:
        raise EmulatorError(403, "access token belongs to another job")
    return em.jobs[owner]


def agent_start(em: Emulator, job_id: str, token: str) -> JobStateReply:
    with em.lock:
        now = em.tick()
        job = _owned(em, job_id, token)
        if job.state == "accepted":
            job.move("running", now, "agent")
        elif job.state != "running":
            raise EmulatorError(422, f"job {job_id} is {job.state}: it cannot start")
        return JobStateReply(state=job.state)


def agent_log(em: Emulator, job_id: str, token: str, req: AgentLogRequest) -> None:
    if len(req.content) > MAX_LOG_CHUNK_BYTES:
        raise EmulatorError(422, f"content: at most {MAX_LOG_CHUNK_BYTES} bytes per request")
    with em.lock:
        em.tick()
        job = _owned(em, job_id, token)
        if job.state in TERMINAL:
            raise EmulatorError(422, f"job {job_id} is {job.state}: its log is closed")
        job.append_log(req.content)


def agent_state(em: Emulator, job_id: str, token: str) -> JobStateReply:
    with em.lock:
        em.tick()
        return JobStateReply(state=_owned(em, job_id, token).state)


def agent_finish(em: Emulator, job_id: str, token: str, req: AgentFinishRequest) -> JobStateReply:
    """``finished`` with the exit status, or ``canceled`` when the job was being canceled."""
    with em.lock:
        now = em.tick()
        job = _owned(em, job_id, token)
        if job.state not in ("accepted", "running", "canceling"):
            raise EmulatorError(422, f"job {job_id} is {job.state}: it cannot finish")
        target = "canceled" if job.state == "canceling" else "finished"
        job.move(target, now, "agent")
        job.hist().finish = FinishRecord(
            by="agent",
            at=to_datetime(now),
            exit_status=req.exit_status,
            signal_reason=req.signal_reason,
        )
        return JobStateReply(state=job.state)
