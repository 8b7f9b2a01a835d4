"""Upload decisions without I/O: plans from declared capabilities, completeness, reply codes."""

from __future__ import annotations

import attrs
import pytest

from transfercore.capabilities import Capabilities, RestartModel
from transfercore.gridftp.errors import ReplyError
from transfercore.gridftp.modee import EndOfData, EndOfFile
from transfercore.gridftp.session import Passive, Store
from transfercore.gridftp.upload import (
    UploadTracker,
    check_complete,
    check_spooled,
    is_partial_name,
    partial_name,
    plan_store,
)
from transfercore.ranges import RangeSet

#: An ordered destination that writes in place (a third-party driver without atomic_publish).
IN_PLACE = Capabilities(restart=RestartModel.PREFIX, ordered_writes=True, max_writers=1,
                        preferred_block_size=8 << 20, atomic_publish=False)
#: The HPSS driver: ordered, publishing by rename from its own partial name.
HPSS = attrs.evolve(IN_PLACE, atomic_publish=True)
POSIX = Capabilities(max_writers=4, preferred_block_size=1 << 20, atomic_publish=True)


def store(**kw) -> Store:
    return Store(**({"path": "/d/a.bin", "data": Passive(), "mode": "E", "restart": None, "alloc": 1000} | kw))


def test_ordered_destination_gets_a_window_and_a_partial_name():
    plan = plan_store(store(), IN_PLACE, "/srv/d/a.bin", window=1 << 20)
    assert plan.ordered and plan.writers == 1
    assert plan.target == "/srv/d/.a.bin.tcpart" and plan.renames and is_partial_name(".a.bin.tcpart")
    assert plan.piece == 4 << 20  # capped: one piece per connection stays small
    assert plan.window >= 4 * plan.piece  # the window always has room beside the next block


def test_ordered_destination_that_publishes_atomically_is_written_under_its_own_name():
    plan = plan_store(store(), HPSS, "/srv/d/a.bin")
    assert plan.ordered and plan.writers == 1 and plan.target == "/srv/d/a.bin" and not plan.renames


def test_unordered_destination_writes_in_parallel_under_its_own_name():
    plan = plan_store(store(), POSIX, "/srv/d/a.bin")
    assert not plan.ordered and plan.writers == 4 and not plan.renames and plan.piece == 1 << 20


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"alloc": None, "restart": RangeSet.span(0, 10)}, 504),  # REST without ALLO and no spool
        ({"mode": "S", "restart": RangeSet.of((0, 10), (20, 30))}, 501),  # MODE S: a prefix only
        ({"restart": RangeSet.span(0, 2000)}, 553),  # past the announced size
    ],
)
def test_restart_preconditions_carry_their_reply_code(kw, code):
    with pytest.raises(ReplyError) as err:
        plan_store(store(**kw), POSIX, "/srv/a")
    assert err.value.code == code


def test_rest_without_allo_is_planned_when_the_spool_can_restart():
    plan = plan_store(store(alloc=None, restart=RangeSet.span(0, 10)), IN_PLACE, "/srv/a", durable_spool=True)
    # Spooled, then copied in order from the spool, under the partial name until complete.
    assert plan.size is None and not plan.ordered and plan.target == "/srv/.a.tcpart"


def test_completeness_and_spooled_size():
    plan = plan_store(store(), POSIX, "/srv/a")
    check_complete(plan, RangeSet.span(0, 100), RangeSet.span(100, 1000))
    with pytest.raises(ReplyError, match="first missing range 500-600") as err:
        check_complete(plan, RangeSet(), RangeSet.of((0, 500), (600, 1000)))
    assert err.value.code == 451
    assert check_spooled(RangeSet.span(0, 77)) == 77
    with pytest.raises(ReplyError, match="holes"):
        check_spooled(RangeSet.of((0, 5), (6, 7)))
    assert partial_name("/x") == "/.x.tcpart"


def test_tracker_completes_on_the_announced_eods_only():
    t = UploadTracker()
    t.data(0, 10)
    t.end(EndOfData(close=False))
    assert not t.complete and "no EOF" in t.state()
    t.end(EndOfFile(2))
    t.data(10, 5)
    assert not t.complete
    t.end(EndOfData(close=True))
    assert t.complete and t.received() == RangeSet.span(0, 15)


def test_esto_plans_an_update_in_place():
    """ESTO A 1000 of 3000 bytes into an object of 5000: the kept bytes are around the slice."""
    plan = plan_store(store(alloc=3000, shift=1000, update=True), POSIX, "/srv/a", existing=5000)
    assert plan.updates and plan.offset == 1000 and plan.object_size(3000) == 5000
    assert plan.slice(3000) == RangeSet.span(1000, 4000)
    assert plan.kept(3000) == (RangeSet.span(0, 1000), RangeSet.span(4000, 5000))
    # a new object, or a shorter one: the slice at its offset, nothing kept after it
    new = plan_store(store(alloc=3000, shift=1000, update=True), POSIX, "/srv/a", existing=None)
    assert new.object_size(3000) == 4000 and new.kept(3000) == (RangeSet.span(0, 1000), RangeSet())
    # a STOR replaces: nothing kept, whatever was there
    stor = plan_store(store(alloc=3000), POSIX, "/srv/a", existing=5000)
    assert not stor.updates and stor.object_size(3000) == 3000 and stor.kept(3000) == (RangeSet(), RangeSet())


def test_esto_markers_and_restarts_are_in_data_offsets():
    plan = plan_store(
        store(alloc=3000, shift=1000, update=True, restart=RangeSet.span(0, 500)), HPSS, "/srv/a", existing=5000
    )
    # the driver resumes the object's prefix: the kept bytes before the slice and the slice's first 500
    assert plan.resume() == RangeSet.span(0, 1500)
    # markers name only the slice, moved back to the offsets the data arrived with
    assert plan.marker(RangeSet.span(0, 2500), 3000) == RangeSet.span(0, 1500)
    assert plan.marker(RangeSet.span(0, 5000), 3000) == RangeSet.span(0, 3000)
    # a missing range is reported in data offsets too
    with pytest.raises(ReplyError, match="first missing range 2000-3000"):
        check_complete(plan, RangeSet.span(0, 1500), RangeSet.span(1500, 3000))


@pytest.mark.parametrize("existing", [None, 999])
def test_ordered_storage_refuses_an_offset_past_the_end(existing):
    with pytest.raises(ReplyError) as err:
        plan_store(store(alloc=10, shift=1000, update=True), HPSS, "/srv/a", existing=existing)
    assert err.value.code == 553 and "offset 1000" in str(err.value)
    # up to the end is fine: the update extends the object, in order
    plan = plan_store(store(alloc=10, shift=1000, update=True), HPSS, "/srv/a", existing=1000)
    assert plan.object_size(10) == 1010


def test_holes_name_the_missing_ranges():
    with pytest.raises(ReplyError, match=r"no data arrived for 0-100,110-125 \(received 100-110,125-130\)"):
        check_spooled(RangeSet.of((100, 110), (125, 130)))
