"""The Redis job queue's layout, shared by the bot's side (engine.api.queue_transport) and the
engine workers (engine.queue): key names, timings, and the scripts that make each step atomic.

    <prefix>:jobs:<kind>      a stream per kind (compose, render, finetune), consumer group
                              "workers"; an entry is {job, reply, id, body}: the job's global id,
                              the client's reply stream, the client's own job id, and the
                              engine message as the client encoded it (engine.api.schema;
                              the worker gives it its own id for its engine)
    <prefix>:job:<job>        the job's marker: "queued", then "done" once its reply is posted
                              (so a reply is posted once, whoever finishes the job)
    <prefix>:cancel:<job>     set when the client gave the job up
    <prefix>:replies:<client> a stream per client: the engine's progress/result/error messages
                              (engine.api.schema's bytes, with the client's job id),
                              expiring when idle
    <prefix>:client:<client>  set while the client's process lives (renewed every
                              CLIENT_BEAT_SECONDS, expiring after CLIENT_TTL_SECONDS)
    <prefix>:note:<job>       what the client's successor needs to deliver the job's result
                              (engine.api.queue_handover): {client, reply, id, note}
    <prefix>:notes:<owner>    set of the jobs with a note, per owner (a bot's shards: the
                              next process of the same owner adopts them)
    <prefix>:workers          sorted set: worker name -> Redis' time of its last heartbeat
    <prefix>:worker:<name>    hash: the worker's pid, host, state and its engine's stats
    <prefix>:dead             dead letters: jobs whose engines died twice while working on them
    <prefix>:counters         hash: submitted, posted, duplicates (replies dropped because
                              another worker had posted them), cancelled, dead

Times come from Redis' own clock (TIME inside the scripts), so machines whose clocks drift
still agree on which workers are alive. Every script touches keys of one deployment only;
Redis Cluster is not supported (the keys of one script would have to share a hash slot).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

GROUP = "workers"
KINDS = ("compose", "render", "finetune")
DEFAULT_PREFIX = "motif"

# A worker writes its heartbeat this often; one silent for WORKER_TTL_SECONDS is gone.
HEARTBEAT_SECONDS = 1.0
WORKER_TTL_SECONDS = 5.0
# A worker refreshes its claims often; a claim idle this long belonged to a dead worker and is
# taken by another one (XAUTOCLAIM). Operators may lower it (faster recovery) or raise it.
DEFAULT_CLAIM_IDLE_SECONDS = 10.0
# A job is delivered at most this many times: one whose engines died twice is dead-lettered.
MAX_DELIVERIES = 2
# A job's marker and a client's idle reply stream live as long as a Discord interaction token:
# nobody can be told of a result after that.
JOB_TTL_SECONDS = 15 * 60
REPLY_TTL_SECONDS = 15 * 60
# A client writes that it lives this often; silent this long, its process is gone and its
# jobs' notes go to the next process of its owner.
CLIENT_BEAT_SECONDS = 2.0
CLIENT_TTL_SECONDS = 10.0
REPLY_MAXLEN = 10_000  # replies a client has not read yet (it reads them within a second)
DEAD_MAXLEN = 1_000  # dead letters kept for the operator

URL_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class QueueKeys:
    """The names of one deployment's keys (several deployments may share a Redis)."""

    prefix: str = DEFAULT_PREFIX

    def stream(self, kind: str) -> str:
        return f"{self.prefix}:jobs:{kind}"

    def marker(self, job: str) -> str:
        return f"{self.prefix}:job:{job}"

    def cancel(self, job: str) -> str:
        return f"{self.prefix}:cancel:{job}"

    def replies(self, client: str) -> str:
        return f"{self.prefix}:replies:{client}"

    def client(self, client: str) -> str:
        return f"{self.prefix}:client:{client}"

    def note(self, job: str) -> str:
        return f"{self.prefix}:note:{job}"

    def notes(self, owner: str) -> str:
        return f"{self.prefix}:notes:{owner}"

    def worker(self, name: str) -> str:
        return f"{self.prefix}:worker:{name}"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    @property
    def dead(self) -> str:
        return f"{self.prefix}:dead"

    @property
    def counters(self) -> str:
        return f"{self.prefix}:counters"


def check_queue_url(url: str, name: str = "MOTIF_QUEUE_URL") -> str:
    """`url` if it names a Redis server; ValueError otherwise (without its password)."""
    parts = urlsplit(url)
    if parts.scheme not in URL_SCHEMES or not (parts.hostname or parts.path):
        shown = url if parts.password is None else url.replace(parts.password, "***")
        raise ValueError(
            f"{name} must be a redis://, rediss:// or unix:// URL (received {shown!r})"
        )
    return url


def redacted(url: str) -> str:
    """The URL for logs: its password replaced."""
    password = urlsplit(url).password
    return url if password is None else url.replace(password, "***")


def connect(url: str) -> Any:
    """An asyncio Redis client for `url` (redis-py, imported here: only queue users need it).

    Commands fail fast while Redis is away (a few short retries, not redis-py's ten): the
    callers reconnect in their own loops and decide what a long outage means."""
    from redis.asyncio import Redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return Redis.from_url(
        check_queue_url(url),
        socket_connect_timeout=2.0,
        socket_timeout=10.0,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        health_check_interval=5,
    )


# KEYS: marker, stream, counters. ARGV: job ttl ms, job, reply stream, client's id, body.
# Adds the job unless its marker exists: a client that sends a job again after a reconnect
# (it cannot know whether Redis kept it) never queues it twice.
SUBMIT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], 'queued', 'PX', ARGV[1])
redis.call('XADD', KEYS[2], '*', 'job', ARGV[2], 'reply', ARGV[3], 'id', ARGV[4],
           'body', ARGV[5])
redis.call('HINCRBY', KEYS[3], 'submitted', 1)
return 1
"""

# KEYS: marker, reply stream, job stream, counters. ARGV: group, entry id, message ('' posts
# nothing), job ttl ms, reply ttl ms, reply maxlen, counter to count the outcome under.
# Posts the job's reply and acknowledges its entry in one step, unless another worker posted
# first: a job is answered once, whoever finishes it. The acknowledgement tolerates a group
# that Redis lost (a restart without persistence): the reply still gets through.
FINISH = """
local function ack()
  redis.pcall('XACK', KEYS[3], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[3], ARGV[2])
end
if redis.call('GET', KEYS[1]) == 'done' then
  ack()
  redis.call('HINCRBY', KEYS[4], 'duplicates', 1)
  return 0
end
redis.call('SET', KEYS[1], 'done', 'PX', ARGV[4])
if ARGV[3] ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'm', ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
ack()
redis.call('HINCRBY', KEYS[4], ARGV[7], 1)
return 1
"""

# KEYS: job stream. ARGV: group, consumer, entry ids. Resets the idle time of this worker's
# claims (XCLAIM JUSTID counts no delivery), so no other worker takes a job that is running.
# Returns {lost, gone}: entries another worker took meanwhile (this one stalled), and entries
# no longer pending at all (acknowledged elsewhere, or Redis lost them).
TOUCH = """
local lost, gone = {}, {}
for i = 3, #ARGV do
  local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if type(p) ~= 'table' or p.err or not p[1] then
    table.insert(gone, ARGV[i])
  elseif p[1][2] ~= ARGV[2] then
    table.insert(lost, ARGV[i])
  else
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  end
end
return {lost, gone}
"""

# KEYS: the owner's notes, the job's note. ARGV: job. The note, for the one process that takes
# it out of its owner's set (two successors never both adopt a job), or nothing.
ADOPT = """
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return false end
local note = redis.call('GET', KEYS[2])
redis.call('DEL', KEYS[2])
return note
"""

# KEYS: workers, the worker's hash. ARGV: name, hash ttl ms, then field, value, ...
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 3600000)
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return now
"""

# KEYS: workers. ARGV: ttl ms. The names of the workers heard from within the ttl.
LIVE_WORKERS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')
"""


def ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
