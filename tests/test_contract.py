import pytest

from transfercore.capabilities import Capabilities
from transfercore.contract import Driver, ObjectInfo, Writer
from transfercore.errors import CapabilityError
from transfercore.ranges import RangeSet


class MinimalDriver(Driver):
    name = "minimal"

    def capabilities(self) -> Capabilities:
        return Capabilities()

    def stat(self, path):
        return ObjectInfo(path=path, size=0, mtime_ns=0)

    def open_write(self, path, size, resume=None):
        raise NotImplementedError

    def open_read(self, path):
        raise NotImplementedError


class RecordingWriter(Writer):
    def __init__(self) -> None:
        self.aborted = 0

    size = 10
    resumed = RangeSet()

    def write(self, offset, data):
        pass

    def durable(self):
        return RangeSet()

    def complete(self):
        pass

    def abort(self):
        self.aborted += 1


def test_optional_driver_methods_have_honest_defaults():
    driver = MinimalDriver(authority="a", options={"x": 1})
    assert driver.authority == "a" and driver.settings == {"x": 1}
    assert driver.partial("/p") == RangeSet()
    assert driver.checksum("/p", "md5") is None
    assert driver.local_path("/p") is None
    assert driver.describe() == {}


@pytest.mark.parametrize(
    ("call", "what"),
    [
        (lambda d: d.simulate_crash(), "simulate a crash"),
        (lambda d: list(d.list("/")), "list"),
        (lambda d: d.mkdir("/d"), "create directories"),
        (lambda d: d.rmdir("/d"), "remove directories"),
        (lambda d: d.remove("/o"), "remove objects"),
        (lambda d: d.rename("/a", "/b"), "rename"),
    ],
)
def test_unimplemented_namespace_operations_raise_capability_errors_naming_the_driver(call, what):
    with pytest.raises(CapabilityError, match=f"'minimal' cannot {what}"):
        call(MinimalDriver())


def test_a_writer_left_by_a_with_block_keeps_its_partial_state_through_abort():
    with RecordingWriter() as writer:
        pass
    assert writer.aborted == 1


def test_object_info_name_is_the_last_path_component():
    assert ObjectInfo(path="/a/b/c.bin", size=1, mtime_ns=0).name == "c.bin"
    assert ObjectInfo(path="/a/dir/", size=0, mtime_ns=0, is_dir=True).name == "dir"


def test_check_write_returns_the_end_or_raises_the_documented_error():
    from transfercore.contract import check_write
    from transfercore.errors import InvalidWrite

    assert check_write(10, 5, 15, "obj") == 15
    with pytest.raises(InvalidWrite, match="not a non-negative whole number"):
        check_write(-1, 5, 15, "obj")
    with pytest.raises(InvalidWrite, match="not a non-negative whole number"):
        check_write(1.0, 5, 15, "obj")
    with pytest.raises(InvalidWrite, match="goes past the object's size 15"):
        check_write(11, 5, 15, "obj")


def test_check_read_accepts_offsets_up_to_the_size_and_says_what_is_wrong():
    from transfercore.contract import check_read
    from transfercore.errors import InvalidRead, InvalidWrite

    check_read(0, 0, 0, "obj")
    check_read(15, 100, 15, "obj")  # at the end, asking past it: allowed, returns nothing
    with pytest.raises(InvalidRead, match="read offset 16 of obj is outside 0-15") as info:
        check_read(16, 1, 15, "obj")
    assert info.value.hint
    for offset in (-1, 1.0, "3", None):
        with pytest.raises(InvalidRead, match="is outside 0-15"):
            check_read(offset, 1, 15, "obj")
    for length in (-1, 2.5, None):
        with pytest.raises(InvalidRead, match="not a non-negative whole number"):
            check_read(0, length, 15, "obj")
    assert not issubclass(InvalidRead, InvalidWrite)  # a bad read is not reported as a bad write


def test_check_resume_lets_the_record_decide_and_says_why():
    from transfercore.contract import check_resume
    from transfercore.errors import RestartRejected

    held = RangeSet.of((0, 100), (200, 300))
    check_resume("obj", RangeSet.of((0, 50), (200, 300)), 400, 400, held)
    with pytest.raises(RestartRejected, match="goes past the size 400"):
        check_resume("obj", RangeSet.of((0, 500)), 400, 400, held)
    with pytest.raises(RestartRejected, match="started with size 300, not 400"):
        check_resume("obj", RangeSet.of((0, 50)), 400, 300, held)
    with pytest.raises(RestartRejected, match=r"missing 100-150"):
        check_resume("obj", RangeSet.of((0, 150)), 400, 400, held)


def test_a_writer_without_its_own_write_owned_writes_the_block_then_releases_it_even_when_refused():
    events = []

    class Copying(RecordingWriter):
        def write(self, offset, data):
            if offset >= self.size:
                raise ValueError("past the end")
            events.append(("write", offset, bytes(data)))

    writer = Copying()
    writer.write_owned(0, memoryview(b"abc"), lambda: events.append(("release", 0)))
    assert events == [("write", 0, b"abc"), ("release", 0)]
    with pytest.raises(ValueError, match="past the end"):
        writer.write_owned(10, memoryview(b"x"), lambda: events.append(("release", 10)))
    assert events[-1] == ("release", 10)
