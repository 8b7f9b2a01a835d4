import json

import attrs
import pytest

from transfercore.engine import events
from transfercore.ranges import RangeSet


def test_events_are_frozen_and_json_ready():
    marker = events.Marker(RangeSet.parse("0-10,20-30"), 20, 100)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        marker.durable_bytes = 5  # type: ignore[misc]
    d = marker.to_dict()
    assert d == {"event": "marker", "ranges": "0-10,20-30", "durable_bytes": 20, "size": 100, "final": False}
    json.dumps(d)


def test_every_event_kind_is_distinct():
    kinds = [cls.kind for cls in (events.Started, events.Resumed, events.Restarted, events.Progress,
                                  events.Marker, events.Verifying, events.Done, events.Failed)]
    assert len(set(kinds)) == len(kinds)
    assert {"progress", "marker", "resumed", "done", "error"} <= set(kinds)


def test_progress_is_not_a_marker():
    progress = events.Progress(10, 10, 100, 0, 1.0, 10.0, 9.0)
    assert not isinstance(progress, events.Marker)
    assert "ranges" not in progress.to_dict()


def test_listeners_called_in_order_and_removable():
    listeners = events.Listeners()
    seen = []
    first = lambda e: seen.append(("first", e.kind))  # noqa: E731
    second = lambda e: seen.append(("second", e.kind))  # noqa: E731
    listeners.add(first)
    listeners.add(second)
    listeners.emit(events.Restarted("why"))
    listeners.remove(first)
    listeners.emit(events.Restarted("why"))
    assert seen == [("first", "restart"), ("second", "restart"), ("second", "restart")]


def test_a_listener_must_be_callable():
    with pytest.raises(TypeError):
        events.Listeners().add("nope")  # type: ignore[arg-type]
