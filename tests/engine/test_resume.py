from transfercore.capabilities import Capabilities, RestartModel
from transfercore.engine.resume import decide
from transfercore.journal import JournalEntry, SourceIdentity, State
from transfercore.ranges import RangeSet

IDENT = SourceIdentity(1000, 7, "1:2", "fp")
RANGES = Capabilities(restart=RestartModel.RANGES, max_writers=4)


def entry(marker="0-100,200-300", state=State.INTERRUPTED, ident=IDENT):
    return JournalEntry(1, "a", "b", ident, {}, RangeSet.parse(marker) if marker else RangeSet(),
                        state, "", "", "", 0.0, 0.0)


def test_nothing_recorded_is_a_silent_fresh_start():
    assert decide(None, IDENT, RANGES).marker == RangeSet()
    assert decide(None, IDENT, RANGES).reason is None
    assert decide(entry(marker=""), IDENT, RANGES).reason is None


def test_a_finished_transfer_is_copied_again_from_zero():
    d = decide(entry(state=State.DONE), IDENT, RANGES)
    assert d.marker == RangeSet() and d.reason is None


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
    d = decide(entry(state=State.MISMATCH), IDENT, RANGES)
    assert d.marker == RangeSet() and "mismatch" in d.reason


def test_marker_is_clipped_to_the_size():
    d = decide(entry("0-5000"), IDENT, RANGES)
    assert d.marker == RangeSet.span(0, 1000)
