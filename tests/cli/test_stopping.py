"""Ctrl-C/SIGTERM handling of copy and copy -r: the signal never cancels on the main thread."""

import os
import signal
import threading

from transfercore.cli.stopping import Stop


def test_a_signal_while_the_main_thread_holds_the_cancel_lock_still_cancels():
    # The engine's main thread spends its time in Event.wait()/clear(), holding
    # the Event's lock for a few bytecodes at a time; a handler that set the
    # Event itself would wait on that lock forever.  Hold it on purpose.
    wake = threading.Event()
    cancelled_on = []

    def cancel():
        cancelled_on.append(threading.current_thread())
        wake.set()

    with Stop(cancel):
        with wake._cond:  # what Event.wait holds between its checks
            os.kill(os.getpid(), signal.SIGTERM)
            # the handler has run by now (signals are handled between bytecodes of this thread)
            assert not cancelled_on or cancelled_on[0] is not threading.main_thread()
        assert wake.wait(10), "SIGTERM did not reach cancel()"
    assert cancelled_on and cancelled_on[0] is not threading.main_thread()
    assert signal.getsignal(signal.SIGTERM) is not None


def test_handlers_are_put_back_and_a_second_ctrl_c_interrupts_at_once():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    calls = threading.Semaphore(0)
    with Stop(calls.release):
        os.kill(os.getpid(), signal.SIGINT)
        assert calls.acquire(timeout=10)
        # the first Ctrl-C asked politely; the second is Python's KeyboardInterrupt
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert {sig: signal.getsignal(sig) for sig in before} == before
