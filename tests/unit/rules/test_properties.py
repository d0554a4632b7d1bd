"""Properties of the rule state machines, over generated reading sequences."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from core.contracts import ReadingDict
from core.contracts.finding import Finding
from rules.engine import Engine
from rules.state import DeviceState
from tests.unit.rules.helpers import DEFAULT, device, reading

ENGINE = Engine(DEFAULT)
DEVICES = {"gas-1": device("gas-1"), "gas-2": device("gas-2"), "fire-1": device("fire-1", kind="fire")}

gas_values = st.fixed_dictionaries(
    {},
    optional={
        "ch4_lel": st.floats(0, 100, allow_nan=False),
        "o2_pct": st.floats(17, 25, allow_nan=False),
        "battery_pct": st.floats(0, 100, allow_nan=False),
    },
).filter(bool)
fire_values = st.fixed_dictionaries(
    {}, optional={"temp_c": st.floats(10, 90, allow_nan=False), "smoke": st.booleans(), "flame": st.booleans()}
).filter(bool)


def stream(device_id: str, values: st.SearchStrategy[dict[str, float | bool]]) -> st.SearchStrategy[list[ReadingDict]]:
    steps = st.lists(st.tuples(st.integers(1, 90), values, st.booleans()), max_size=25)
    return steps.map(
        lambda items: [
            reading(v, sum(gap for gap, _, _ in items[: i + 1]), device_id, drill=drill)  # type: ignore[arg-type]
            for i, (_gap, v, drill) in enumerate(items)
        ]
    )


def key_of(f: Finding) -> tuple[str, str, str, int, bool]:
    return (f.key, f.event.value, f.level.value, f.ts, f.flapping)


def evaluate_all(order: list[ReadingDict]) -> list[Finding]:
    states = {d: DeviceState() for d in DEVICES}
    out: list[Finding] = []
    for r in order:
        out += ENGINE.evaluate(r, DEVICES[r["device_id"]], states[r["device_id"]], r["received_at"])
    return out


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(20.0, 49.99, allow_nan=False), min_size=1, max_size=200),
    st.floats(25.0, 49.99, allow_nan=False),
)
def test_noise_inside_the_hysteresis_band_raises_at_most_once(noise: list[float], first: float) -> None:
    # Once above 25 %LEL, values that never fall below the clear level (20) raise exactly once and never clear.
    out = evaluate_all([reading({"ch4_lel": v}, i, "gas-1") for i, v in enumerate([first, *noise])])
    ch4 = [f for f in out if f.rule == "gas.ch4"]
    assert [f.event.value for f in ch4] == ["raised"]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(0.0, 24.99, allow_nan=False), max_size=200),
)
def test_values_below_the_raise_level_never_raise_the_threshold(noise: list[float]) -> None:
    out = evaluate_all([reading({"ch4_lel": v}, i * 10, "gas-1") for i, v in enumerate(noise)])
    assert not [f for f in out if f.rule == "gas.ch4"]


@settings(max_examples=200, deadline=None)
@given(stream("gas-1", gas_values), stream("gas-2", gas_values), stream("fire-1", fire_values), st.randoms())
def test_any_interleaving_of_the_devices_readings_gives_the_same_findings(
    a: list[ReadingDict], b: list[ReadingDict], c: list[ReadingDict], rnd: object
) -> None:
    in_time = sorted(a + b + c, key=lambda r: r["ts"])
    queues, shuffled = [list(a), list(b), list(c)], []
    while any(queues):
        q = rnd.choice([q for q in queues if q])  # type: ignore[attr-defined]
        shuffled.append(q.pop(0))
    assert sorted(map(key_of, evaluate_all(in_time))) == sorted(map(key_of, evaluate_all(shuffled)))


@settings(max_examples=150, deadline=None)
@given(stream("gas-1", gas_values), st.integers(0, 25))
def test_saving_and_restoring_state_mid_stream_changes_nothing(readings: list[ReadingDict], cut: int) -> None:
    """What a worker restart does: state goes to the changelog as JSON and comes back."""
    dev = DEVICES["gas-1"]
    straight, state = [], DeviceState()
    for r in readings:
        straight += ENGINE.evaluate(r, dev, state, r["received_at"])
    resumed, state = [], DeviceState()
    for i, r in enumerate(readings):
        if i == cut:
            state = DeviceState.load(json.loads(json.dumps(state.dump())))
        resumed += ENGINE.evaluate(r, dev, state, r["received_at"])
    assert list(map(key_of, straight)) == list(map(key_of, resumed))


@settings(max_examples=150, deadline=None)
@given(stream("gas-1", gas_values))
def test_every_published_alarm_is_raised_before_it_changes_and_ends_cleared_or_active(
    readings: list[ReadingDict],
) -> None:
    """The finding sequence of each alert key is well formed: raised, then changes, then cleared, then raised..."""
    open_level: dict[str, str | None] = {}
    for f in evaluate_all(readings):
        level = open_level.get(f.key)
        if f.event.value == "raised":
            assert level is None
            open_level[f.key] = f.level.value
        else:
            assert level is not None, f
            open_level[f.key] = None if f.event.value == "cleared" else f.level.value
