from transfercore.capabilities import Capabilities, RestartModel
from transfercore.contract import ObjectInfo
from transfercore.engine.resume import decide, from_destination
from transfercore.journal import JournalEntry, SourceIdentity, TransferState
from transfercore.ranges import RangeSet

IDENT = SourceIdentity(1000, 7, "1:2", "fp")
RANGES = Capabilities(restart=RestartModel.RANGES, max_writers=4)


def entry(marker="0-100,200-300", state=TransferState.INTERRUPTED, ident=IDENT, message=""):
    return JournalEntry(1, "a", "b", ident, {}, RangeSet.parse(marker) if marker else RangeSet(),
                        state, message, "", "", 0.0, 0.0,
                        destination_size=1000, destination_mtime_ns=9, destination_identity="3:4")


PUBLISHED = ObjectInfo("/b", 1000, 9, identity="3:4")


def test_nothing_recorded_is_a_silent_fresh_start():
    assert decide(None, IDENT, RANGES).marker == RangeSet()
    assert decide(None, IDENT, RANGES).reason is None


def test_a_run_that_left_nothing_durable_says_why_it_starts_from_zero():
    d = decide(entry(marker="", state=TransferState.FAILED, message="no space left"), IDENT, RANGES)
    assert d.marker == RangeSet()
    assert d.reason == "the previous run failed before any byte was durable: no space left"


def test_a_finished_copy_that_still_matches_is_up_to_date():
    d = decide(entry(state=TransferState.DONE), IDENT, RANGES, destination=PUBLISHED)
    assert d.up_to_date and d.marker == RangeSet() and d.reason is None
    forced = decide(entry(state=TransferState.DONE), IDENT, RANGES, destination=PUBLISHED, force=True)
    assert not forced.up_to_date and "--force" in forced.reason


def test_a_finished_copy_is_sent_again_when_either_end_changed_and_says_which():
    gone = decide(entry(state=TransferState.DONE), IDENT, RANGES, destination=None)
    assert not gone.up_to_date and "no longer at the destination" in gone.reason
    touched = ObjectInfo("/b", 1000, 10, identity="3:4")
    d = decide(entry(state=TransferState.DONE), IDENT, RANGES, destination=touched)
    assert not d.up_to_date and "destination changed" in d.reason
    d = decide(entry(state=TransferState.DONE), SourceIdentity(1000, 8, "1:2", "fp"), RANGES, destination=PUBLISHED)
    assert not d.up_to_date and "source changed" in d.reason


def test_the_destinations_own_record_is_resumed_only_when_verified():
    record = RangeSet.parse("0-100,200-300")
    d = from_destination(record, 1000, RANGES, verified=True)
    assert d.marker == record and "resume record" in d.note
    d = from_destination(record, 1000, RANGES, verified=False)
    assert d.marker == RangeSet() and "without a checksum" in d.reason
    assert from_destination(record, 1000, RANGES, verified=True, allow=False).marker == RangeSet()
    assert from_destination(record, 1000, Capabilities(restart=RestartModel.PREFIX), verified=True).marker == (
        RangeSet.span(0, 100)
    )


def test_resume_with_the_whole_range_set():
    d = decide(entry(), IDENT, RANGES)
    assert d.marker == RangeSet.parse("0-100,200-300") and d.reason is None


def test_prefix_destinations_get_only_the_prefix():
    caps = Capabilities(restart=RestartModel.PREFIX)
    assert decide(entry(), IDENT, caps).marker == RangeSet.span(0, 100)
    d = decide(entry("50-100"), IDENT, caps)
    assert d.marker == RangeSet() and "prefix" in d.reason


def test_no_restart_model_starts_from_zero_and_says_so():
    d = decide(entry(), IDENT, Capabilities(restart=RestartModel.NONE))
    assert d.marker == RangeSet() and "cannot resume" in d.reason


def test_changed_source_starts_from_zero_and_says_what_changed():
    d = decide(entry(), SourceIdentity(1000, 8, "1:2", "other"), RANGES)
    assert d.marker == RangeSet()
    assert d.reason.startswith("the source changed") and "content changed" in d.reason


def test_no_resume_option():
    d = decide(entry(), IDENT, RANGES, allow=False)
    assert d.marker == RangeSet() and "--no-resume" in d.reason


def test_after_a_mismatch_the_object_is_sent_again():
    d = decide(entry(state=TransferState.MISMATCH), IDENT, RANGES)
    assert d.marker == RangeSet() and "mismatch" in d.reason


def test_marker_is_clipped_to_the_size():
    d = decide(entry("0-5000"), IDENT, RANGES)
    assert d.marker == RangeSet.span(0, 1000)
