"""Where the rate limits live: embedded (one host) or Redis (several hosts).

``[server] shared_state`` empty (the default): the per-device and global request rates are token
buckets in this worker's memory, and the fixed-window counters (failed enrollments, token
follow-ups) are rows in the server's own database, shared by its workers. A single host needs
nothing but its database.

``shared_state = "redis://host:6379/0"``: all of them are kept in Redis, so every worker on every
host behind the load balancer draws from the same buckets and counts. A bucket is one hash
updated by a Lua script (atomic in Redis); a window count is one ``INCRBY`` on a key that expires
with its window. Redis being down is a transient error: the request is answered 503 with a
``Retry-After`` and nothing is written.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from server_stub.config import ServerConfig
from server_stub.errors import RateLimited, Unavailable
from server_stub.limits import DatabaseCounter, WindowCounter

GLOBAL_KEY = "all-devices"


class Limiter(Protocol):
    def take(self, key: str, now: float) -> None:
        """Take one request from ``key``'s bucket; RateLimited (with Retry-After) when it is empty."""
        ...


def _refused(tokens: float, rate: float, whose: str) -> RateLimited:
    retry = max(1, math.ceil((1.0 - tokens) / rate))
    return RateLimited(f"too many requests {whose}; retry in {retry} s", retry)


class MemoryLimiter:
    """A token bucket per key, in this worker's memory (N workers allow N times the rate)."""

    def __init__(self, rate_per_s: float, burst: int, whose: str = "from this device") -> None:
        self.rate, self.burst, self.whose = rate_per_s, burst, whose
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float) -> None:
        if self.rate <= 0:
            return
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + max(0.0, now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                raise _refused(tokens, self.rate, self.whose)
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > 100_000:  # forget idle devices
                self._buckets.clear()


# KEYS[1] bucket; ARGV rate, burst, now. Returns {1 taken | 0 refused, tokens left as text}.
_BUCKET_LUA = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(held[1]) or burst, tonumber(held[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local taken = 0
if tokens >= 1 then tokens = tokens - 1; taken = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {taken, tostring(tokens)}
"""


def _redis_call(fn: Any, *args: Any) -> Any:
    import redis

    try:
        return fn(*args)
    except redis.RedisError:
        raise Unavailable("the shared rate-limit store does not answer; try again") from None


class RedisLimiter:
    """A token bucket per key in Redis, shared by every worker and host."""

    def __init__(
        self, client: Any, prefix: str, rate_per_s: float, burst: int, whose: str = "from this device"
    ) -> None:
        self.rate, self.burst, self.whose, self.prefix = rate_per_s, burst, whose, prefix
        self._script = client.register_script(_BUCKET_LUA)

    def take(self, key: str, now: float) -> None:
        if self.rate <= 0:
            return
        args = [self.rate, self.burst, f"{now:.6f}"]
        taken, tokens = _redis_call(self._script, [self.prefix + key], args)
        if not int(taken):
            raise _refused(float(tokens), self.rate, self.whose)


class RedisCounter:
    """:class:`server_stub.limits.WindowCounter` in Redis: one key per key and window."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client, self.prefix = client, prefix

    def add(self, key: str, window_s: int, now: float, n: int = 1) -> int:
        start = int(now) // window_s * window_s
        name = f"{self.prefix}{key}:{start}"
        if not n:
            return int(_redis_call(self.client.get, name) or 0)
        pipe = self.client.pipeline()
        pipe.incrby(name, n)
        pipe.expire(name, window_s + 1)
        count, _ = _redis_call(pipe.execute)
        return int(count)


@dataclass(frozen=True)
class SharedState:
    limiter: Limiter  # per device
    global_limiter: Limiter  # all devices together
    counter: WindowCounter


def open_shared_state(config: ServerConfig, engine: Engine) -> SharedState:
    """The limits where ``config.shared_state`` says (see the module docstring)."""
    everyone = "from all kiosks together"
    if not config.shared_state:
        return SharedState(
            MemoryLimiter(config.rate_per_s, config.rate_burst),
            MemoryLimiter(config.global_rate_per_s, max(1, math.ceil(config.global_rate_per_s)), everyone),
            DatabaseCounter(engine),
        )
    import redis

    client = redis.Redis.from_url(config.shared_state, socket_timeout=2, socket_connect_timeout=2)
    prefix, global_burst = "kiosk:", max(1, math.ceil(config.global_rate_per_s))
    return SharedState(
        RedisLimiter(client, prefix + "rate:", config.rate_per_s, config.rate_burst),
        RedisLimiter(client, prefix + "global:", config.global_rate_per_s, global_burst, everyone),
        RedisCounter(client, prefix + "count:"),
    )
