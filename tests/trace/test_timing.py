"""Time (cra.timing): the clock the core reads for every time it needs
(system by default, a manual clock, any object with `now()`), session
lifetimes (idle timeout, maximum lifetime, heartbeats) and the standalone
sliding-window rate limiter. Nothing here sleeps."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone

import cra
import pytest
from cra.errors import ExpiredError, ValidationError
from cra.timing import (
    HeartbeatConfig,
    ManualClock,
    SessionTTLConfig,
    SlidingWindowRateLimiter,
    SystemClock,
)
from execute_helpers import START, START_TS, Harness


def ts(seconds: float) -> str:
    """The protocol's timestamp of a clock reading, computed with datetime."""
    whole = int(seconds)
    micros = round((seconds - whole) * 1e6)
    dt = datetime.fromtimestamp(whole, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{micros:06d}Z"


# -- clocks -----------------------------------------------------------------------------


def test_system_clock_is_the_default() -> None:
    with cra.Runtime() as rt:
        before = time.time()
        now = rt.now()
        after = time.time()
        assert before - 1 <= now <= after + 1
    assert abs(SystemClock().now() - time.time()) < 60


def test_system_clock_can_be_given_explicitly() -> None:
    with cra.Runtime(clock=SystemClock()) as rt:
        assert abs(rt.now() - time.time()) < 60


def test_manual_clock_now_advance_set() -> None:
    clock = ManualClock(start=START)
    assert clock.now() == START
    clock.advance(1.5)
    assert clock.now() == START + 1.5
    clock.advance(0.000001)
    assert clock.now() == pytest.approx(START + 1.500001, abs=1e-7)
    clock.set(START + 100)
    assert clock.now() == START + 100


def test_manual_clock_starts_at_now_by_default() -> None:
    clock = ManualClock()
    assert abs(clock.now() - time.time()) < 60
    reading = clock.now()
    assert clock.now() == reading


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_manual_clock_refuses_non_finite_seconds(bad: float) -> None:
    with pytest.raises(ValidationError):
        ManualClock(start=bad)
    clock = ManualClock(start=START)
    with pytest.raises(ValidationError):
        clock.advance(bad)


def test_runtime_reads_the_manual_clock() -> None:
    clock = ManualClock(start=START)
    with cra.Runtime(clock=clock) as rt:
        assert rt.now() == START
        assert rt.timestamp() == START_TS
        clock.advance(61.25)
        assert rt.now() == START + 61.25
        assert rt.timestamp() == "2027-01-15T08:01:01.250000Z"


def test_event_timestamps_follow_the_manual_clock_exactly() -> None:
    start = START + 0.123456
    with Harness(start=start) as h:
        h.resolve()
        h.clock.advance(2.5)
        h.execute("api.echo")
        h.clock.advance(0.000001)
        h.rt.end_session(h.sid)
        stamps = [e.timestamp for e in h.events()]
        first = ts(start)
        assert first == "2027-01-15T08:00:00.123456Z"
        executed = [e.timestamp for e in h.events() if e.event_type.startswith("action.")]
        assert stamps[0] == first
        assert set(executed) == {"2027-01-15T08:00:02.623456Z"}
        assert stamps[-1] == "2027-01-15T08:00:02.623457Z"
        ended = h.events()[-1]
        assert ended.event_type == "session.ended"
        assert ended.payload["duration_ms"] == 2500


def test_resolution_times_follow_the_manual_clock() -> None:
    with Harness() as h:
        h.clock.advance(10)
        res = h.resolve()
        assert res.timestamp == "2027-01-15T08:00:10.000000Z"
        assert res.decision.expires_at == "2027-01-15T09:00:10.000000Z"
        r = h.execute("api.echo")
        assert r.timestamp == "2027-01-15T08:00:10.000000Z"


def test_any_object_with_now_is_a_clock() -> None:
    class Fixed:
        def __init__(self) -> None:
            self.t = START

        def now(self) -> float:
            return self.t

    clock = Fixed()
    with cra.Runtime(clock=clock) as rt:
        sid = rt.create_session("agent-1", "Work")
        clock.t = START + 3600.5
        rt.end_session(sid)
        events = rt.events(sid)
        assert [e.timestamp for e in events] == [START_TS, "2027-01-15T09:00:00.500000Z"]
        assert rt.now() == START + 3600.5


def test_a_python_clock_drives_expiry_too() -> None:
    class Stepped:
        t = START

        def now(self) -> float:
            return self.t

    clock = Stepped()
    with cra.Runtime(clock=clock, session_ttl=SessionTTLConfig(idle_timeout=10)) as rt:
        sid = rt.create_session("agent-1", "Work")
        clock.t += 11
        assert rt.expire_sessions() == [sid]


def test_a_clock_needs_now() -> None:
    with pytest.raises(ValidationError) as info:
        cra.Runtime(clock=object())
    assert info.value.path == "/clock"


# -- session lifetimes ------------------------------------------------------------------


def ended_payload(h: Harness) -> dict[str, object]:
    last = h.events()[-1]
    assert last.event_type == "session.ended"
    return last.payload


def test_idle_timeout_ends_the_session_on_use() -> None:
    with Harness(session_ttl=SessionTTLConfig(idle_timeout=60)) as h:
        h.clock.advance(60)
        h.resolve()  # exactly at the timeout: still alive, and active again
        h.clock.advance(60.000001)
        with pytest.raises(ExpiredError) as info:
            h.resolve()
        err = info.value
        assert (err.code, err.category, err.http_status) == ("SESSION_EXPIRED", "expired", 410)
        assert ended_payload(h) == {"reason": "expired", "duration_ms": 120000}
        assert h.rt.get_session(h.sid)["status"] == "ended"
        assert h.rt.get_session(h.sid)["end_reason"] == "expired"


def test_activity_keeps_an_idle_session_alive() -> None:
    with Harness(session_ttl=SessionTTLConfig(idle_timeout=60)) as h:
        h.resolve()
        for _ in range(10):
            h.clock.advance(59)
            assert h.execute("api.echo").status == "success"
        assert h.rt.expire_sessions() == []
        assert h.rt.get_session(h.sid)["status"] == "active"


def test_expire_sessions_sweeps_and_later_use_is_session_expired() -> None:
    with Harness(session_ttl=SessionTTLConfig(idle_timeout=30)) as h:
        busy = h.session()
        h.clock.advance(20)
        h.resolve(busy)
        h.clock.advance(11)
        assert h.rt.expire_sessions() == [h.sid]
        assert ended_payload(h) == {"reason": "expired", "duration_ms": 31000}
        assert h.rt.expire_sessions() == []
        n = h.count()
        for use in (h.resolve, lambda: h.rt.heartbeat(h.sid)):
            with pytest.raises(ExpiredError) as info:
                use()
            assert info.value.code == "SESSION_EXPIRED"
        assert h.count() == n
        assert h.events()[-1].event_type == "session.ended"
        assert h.rt.get_session(busy)["status"] == "active"


def test_execute_on_an_expired_session_is_session_expired() -> None:
    with Harness(session_ttl=SessionTTLConfig(idle_timeout=30)) as h:
        h.resolve()
        req = h.execute_request("api.echo")
        h.clock.advance(31)
        with pytest.raises(ExpiredError) as info:
            h.rt.execute(dict(req, timestamp=h.rt.timestamp()))
        assert info.value.code == "SESSION_EXPIRED"
        assert ended_payload(h)["reason"] == "expired"


def test_list_sessions_sweeps() -> None:
    with Harness(session_ttl=SessionTTLConfig(max_lifetime=100)) as h:
        h.clock.advance(50)
        young = h.session()
        h.clock.advance(51)
        listed = {s["session_id"]: s for s in h.rt.list_sessions()}
        assert listed[h.sid]["status"] == "ended"
        assert listed[h.sid]["end_reason"] == "expired"
        assert listed[young]["status"] == "active"
        assert [s["session_id"] for s in h.rt.list_sessions("active")] == [young]
        assert ended_payload(h) == {"reason": "expired", "duration_ms": 101000}


def test_max_lifetime_ends_even_a_busy_session() -> None:
    with Harness(session_ttl=SessionTTLConfig(max_lifetime=100)) as h:
        h.resolve()
        for _ in range(3):
            h.clock.advance(30)
            h.execute("api.echo")
        h.clock.advance(10)
        h.execute("api.echo")  # t = 100: still inside
        h.clock.advance(1)
        with pytest.raises(ExpiredError) as info:
            h.execute("api.echo")
        assert info.value.code == "SESSION_EXPIRED"
        assert ended_payload(h) == {"reason": "expired", "duration_ms": 101000}


def test_an_expired_session_still_verifies() -> None:
    with Harness(session_ttl=SessionTTLConfig(idle_timeout=5)) as h:
        h.resolve()
        h.clock.advance(6)
        h.rt.expire_sessions()
        v = h.rt.verify(h.sid)
        assert v.valid and v.event_count == h.count()


def test_a_session_ended_by_hand_stays_session_ended() -> None:
    with Harness(session_ttl=SessionTTLConfig(idle_timeout=5)) as h:
        h.rt.end_session(h.sid, "completed")
        h.clock.advance(10)
        assert h.rt.expire_sessions() == []
        with pytest.raises(ExpiredError) as info:
            h.resolve()
        assert info.value.code == "SESSION_ENDED"


def test_without_a_ttl_sessions_never_expire() -> None:
    with Harness() as h:
        h.clock.advance(10 * 365 * 86400)
        assert h.rt.expire_sessions() == []
        assert h.rt.get_session(h.sid)["status"] == "active"


@pytest.mark.parametrize("bad", [0, -1, float("nan")])
def test_ttl_must_be_positive(bad: float) -> None:
    with pytest.raises(ValidationError):
        cra.Runtime(session_ttl=SessionTTLConfig(idle_timeout=bad))
    with pytest.raises(ValidationError):
        cra.Runtime(heartbeat=HeartbeatConfig(interval=bad))


# -- heartbeats -------------------------------------------------------------------------


def test_heartbeats_keep_a_session_alive() -> None:
    with Harness(heartbeat=HeartbeatConfig(interval=10, misses_allowed=2)) as h:
        for _ in range(20):
            h.clock.advance(29)
            h.rt.heartbeat(h.sid)
        assert h.rt.expire_sessions() == []
        assert h.rt.get_session(h.sid)["status"] == "active"


def test_missed_heartbeats_end_the_session() -> None:
    with Harness(heartbeat=HeartbeatConfig(interval=10, misses_allowed=2)) as h:
        h.rt.heartbeat(h.sid)
        h.clock.advance(30)
        assert h.rt.expire_sessions() == []  # three intervals: two misses allowed
        h.clock.advance(0.000001)
        assert h.rt.expire_sessions() == [h.sid]
        payload = ended_payload(h)
        assert payload["reason"] == "heartbeat_missed"
        assert h.rt.get_session(h.sid)["end_reason"] == "heartbeat_missed"
        with pytest.raises(ExpiredError) as info:
            h.rt.heartbeat(h.sid)
        assert info.value.code == "SESSION_EXPIRED"


def test_activity_is_not_a_heartbeat() -> None:
    with Harness(heartbeat=HeartbeatConfig(interval=10, misses_allowed=0)) as h:
        h.resolve()
        h.clock.advance(6)
        h.execute("api.echo")
        h.clock.advance(6)
        with pytest.raises(ExpiredError) as info:
            h.execute("api.echo")
        assert info.value.code == "SESSION_EXPIRED"
        assert ended_payload(h)["reason"] == "heartbeat_missed"


def test_heartbeat_of_an_unknown_session() -> None:
    with Harness(heartbeat=HeartbeatConfig(interval=10)) as h:
        with pytest.raises(cra.errors.NotFoundError):
            h.rt.heartbeat("0193a0b0-0000-7000-8000-0000000004ff")


def test_heartbeat_without_a_config_is_harmless() -> None:
    with Harness() as h:
        h.rt.heartbeat(h.sid)
        assert h.rt.get_session(h.sid)["status"] == "active"


def test_config_defaults() -> None:
    assert HeartbeatConfig(interval=5).misses_allowed == 2
    ttl = SessionTTLConfig()
    assert (ttl.idle_timeout, ttl.max_lifetime) == (None, None)


# -- the standalone rate limiter --------------------------------------------------------


@pytest.fixture
def limiter_clock() -> ManualClock:
    return ManualClock(start=START)


@pytest.fixture
def limiter(limiter_clock: ManualClock) -> Iterator[SlidingWindowRateLimiter]:
    yield SlidingWindowRateLimiter(max_calls=3, window_seconds=10, clock=limiter_clock)


def test_limiter_acquire_and_remaining(limiter: SlidingWindowRateLimiter) -> None:
    assert limiter.remaining("a") == 3
    assert [limiter.acquire("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.remaining("a") == 0


def test_limiter_window_slides(
    limiter: SlidingWindowRateLimiter, limiter_clock: ManualClock
) -> None:
    limiter.acquire("a")  # t = 0
    limiter_clock.advance(4)
    limiter.acquire("a")  # t = 4
    limiter.acquire("a")  # t = 4
    assert limiter.retry_after("a") == 6.0
    limiter_clock.advance(5.5)
    assert limiter.retry_after("a") == 0.5
    assert not limiter.acquire("a")
    limiter_clock.advance(0.5)
    assert limiter.retry_after("a") == 0.0
    assert limiter.remaining("a") == 1
    assert limiter.acquire("a")
    assert limiter.retry_after("a") == 4.0


def test_limiter_keys_are_separate(limiter: SlidingWindowRateLimiter) -> None:
    for _ in range(3):
        limiter.acquire("a")
    assert not limiter.acquire("a")
    assert limiter.acquire("b")
    assert limiter.remaining("b") == 2
    assert limiter.acquire()  # the default key
    assert limiter.remaining() == 2


def test_limiter_reset_one_key_or_all(limiter: SlidingWindowRateLimiter) -> None:
    for key in ("a", "b"):
        for _ in range(3):
            limiter.acquire(key)
    limiter.reset("a")
    assert limiter.remaining("a") == 3
    assert limiter.remaining("b") == 0
    limiter.reset()
    assert limiter.remaining("b") == 3


def test_limiter_denials_do_not_count(
    limiter: SlidingWindowRateLimiter, limiter_clock: ManualClock
) -> None:
    for _ in range(3):
        limiter.acquire("a")
    for _ in range(10):
        assert not limiter.acquire("a")
    limiter_clock.advance(10)
    assert limiter.remaining("a") == 3


def test_limiter_with_any_clock() -> None:
    class Fixed:
        t = START

        def now(self) -> float:
            return self.t

    clock = Fixed()
    limiter = SlidingWindowRateLimiter(1, 60, clock=clock)
    assert limiter.acquire("k")
    assert not limiter.acquire("k")
    clock.t += 60
    assert limiter.acquire("k")


def test_limiter_on_the_system_clock() -> None:
    limiter = SlidingWindowRateLimiter(2, 3600)
    assert limiter.acquire("k") and limiter.acquire("k")
    assert not limiter.acquire("k")
    assert 0 < limiter.retry_after("k") <= 3600


@pytest.mark.parametrize(("max_calls", "window"), [(0, 10), (1, 0), (1, -5)])
def test_limiter_needs_positive_settings(max_calls: int, window: float) -> None:
    with pytest.raises(ValidationError):
        SlidingWindowRateLimiter(max_calls, window)
