"""The alarm state machine every rule shares: debounce, flap detection, and publish-on-change.

A rule decides, for each reading, its *candidate* level (``NONE`` when its condition is not met), using its own
hysteresis.
``step`` turns the candidate sequence into published changes:

- **hold**: a raise or an escalation is taken only after the candidate has stayed above the current level for
  ``duration_s`` of event time and ``count`` consecutive readings; a lower candidate is taken at once (the rule's
  hysteresis already guards clearing).
- **flapping**: when the internal state changed ``changes`` times within ``window_s``, the alarm is published as
  one active alarm marked flapping, at the highest level seen, and further toggles are absorbed. It stays so until
  the state has not changed for ``calm_s``; then the real state is published again (cleared, or a level).
- **publish on change**: a ``Change`` comes out only when the published (level, flapping) pair changes.

Levels are ranks (``core.contracts.catalogue.LEVEL_RANK``: 0 blue .. 3 red); ``NONE`` (-1) is "no alarm". State is a
small slotted object, saved as a compact list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.contracts.catalogue import LEVELS, Level
from core.contracts.finding import Finding, FindingEvent, Hazard, Text, finding_id

NONE = -1


@dataclass(frozen=True, slots=True)
class Hold:
    duration_s: float = 0.0
    count: int = 1


@dataclass(frozen=True, slots=True)
class FlapPolicy:
    changes: int = 6
    window_s: float = 600.0
    calm_s: float = 600.0


@dataclass(frozen=True, slots=True)
class Change:
    event: FindingEvent
    level: Level
    previous: Level | None
    active: bool
    flapping: bool


def finding_of(
    change: Change, *, key: str, rule: str, hazard: Hazard, title: Text, ts: int, detected_at: int, **context: Any
) -> Finding:
    """The finding that publishes ``change`` of alert ``key``; ``context`` is the rest (device, site, value...)."""
    return Finding(
        id=finding_id(key, change.event, change.level, ts, change.flapping),
        key=key,
        event=change.event,
        rule=rule,
        hazard=hazard,
        level=change.level,
        previous_level=change.previous,
        active=change.active,
        flapping=change.flapping,
        ts=ts,
        detected_at=detected_at,
        title=title,
        **context,
    )


class AlarmState:
    __slots__ = ("changes", "flapping", "level", "peak", "pending_count", "pending_since", "pub_flapping", "published")

    def __init__(self) -> None:
        self.level = NONE  # internal: what the readings say now
        self.pending_since: int | None = None
        self.pending_count = 0
        self.changes: list[int] = []  # event times of recent internal changes (flap detection)
        self.flapping = False
        self.peak = NONE
        self.published = NONE  # what the outside world was last told
        self.pub_flapping = False

    @property
    def idle(self) -> bool:
        """Nothing worth keeping: the state a fresh object would have."""
        return self.published == NONE and self.level == NONE and self.pending_since is None and not self.changes

    def dump(self) -> list[Any]:
        return [
            self.level,
            self.pending_since,
            self.pending_count,
            self.changes,
            int(self.flapping),
            self.peak,
            self.published,
            int(self.pub_flapping),
        ]

    @classmethod
    def load(cls, data: list[Any]) -> AlarmState:
        state = cls()
        (
            state.level,
            state.pending_since,
            state.pending_count,
            state.changes,
            flapping,
            state.peak,
            state.published,
            pub_flapping,
        ) = data
        state.flapping, state.pub_flapping = bool(flapping), bool(pub_flapping)
        return state


def step(state: AlarmState, candidate: int, ts: int, hold: Hold, flap: FlapPolicy | None) -> Change | None:
    """Advance ``state`` by one candidate level at event time ``ts`` (ms); the published change, if any."""
    new = _debounce(state, candidate, ts, hold)
    changed = new != state.level
    if flap is not None:
        if state.flapping and state.changes and ts - state.changes[-1] >= flap.calm_s * 1000:
            state.flapping = False
        if changed:
            horizon = ts - flap.window_s * 1000
            state.changes = [t for t in state.changes if t > horizon]
            state.changes.append(ts)
            del state.changes[: -flap.changes]
            if not state.flapping and len(state.changes) >= flap.changes:
                state.flapping = True
                state.peak = max(state.published, state.level, new)
    state.level = new
    if state.flapping:
        state.peak = max(state.peak, new)
        target = state.peak
    else:
        target = new
    return _publish(state, target, state.flapping)


def force(state: AlarmState, level: int) -> Change | None:
    """Set the alarm directly, without hold or flap handling (checks driven by a clock, such as silence)."""
    state.level = level
    state.pending_since, state.pending_count = None, 0
    return _publish(state, level, False)


def _debounce(state: AlarmState, candidate: int, ts: int, hold: Hold) -> int:
    if candidate <= state.level:
        state.pending_since, state.pending_count = None, 0
        return candidate
    if state.pending_since is None:
        state.pending_since = ts
    state.pending_count += 1
    if ts - state.pending_since >= hold.duration_s * 1000 and state.pending_count >= hold.count:
        state.pending_since, state.pending_count = None, 0
        return candidate
    return state.level


def _publish(state: AlarmState, target: int, flapping: bool) -> Change | None:
    before, before_flapping = state.published, state.pub_flapping
    if target == before and flapping == before_flapping:
        return None
    state.published, state.pub_flapping = target, flapping
    previous = LEVELS[before] if before != NONE else None
    if target == NONE:
        return Change(FindingEvent.CLEARED, LEVELS[before], previous, False, flapping)
    if before == NONE:
        event = FindingEvent.RAISED
    elif target > before:
        event = FindingEvent.ESCALATED
    elif target < before:
        event = FindingEvent.DEESCALATED
    else:
        event = FindingEvent.UPDATED
    return Change(event, LEVELS[target], previous, True, flapping)
