"""Metrics of a long ``copy -r`` campaign (``--metrics-port``): a listener of its tree events.

The runner's events already carry what an operator watches: files and bytes
done of the total, failures, what this run wrote.  :class:`TreeStats` keeps
the latest figures and :func:`families` turns them into Prometheus metric
families; the ``durable()`` latency histogram is the same as the server's.
"""

from __future__ import annotations

import resource
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

from .. import markers as core_markers
from .stats import LATENCY_BUCKETS, Histogram


class TreeStats:
    """Called with every tree event (from the runner's threads); read at each scrape."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.campaign: int | None = None
        self.files = self.bytes = 0
        self.files_done = self.bytes_done = 0
        self.files_written = self.bytes_written = 0
        self.failed: Counter[str] = Counter()
        self.durable_latency = Histogram(LATENCY_BUCKETS)
        self.finished = False

    def __call__(self, event: Any) -> None:
        kind = event.kind
        with self.lock:
            if kind == "tree-start":
                self.campaign = event.campaign
                self.files, self.bytes = event.files, event.bytes
                self.files_done, self.bytes_done = event.files_done, event.bytes_done
            elif kind == "file-done":
                if not event.reused:
                    self.files_written += 1
                self.bytes_written += event.written
            elif kind == "file-error":
                self.failed[event.error] += 1
            elif kind == "tree-progress":
                self.files_done, self.bytes_done = event.files_done, event.bytes_done
            elif kind == "tree-done":
                self.files_done = event.files - event.failed
                self.bytes_done = event.bytes if not event.failed else self.bytes_done
                self.finished = True

    def durable_call(self, seconds: float) -> None:
        with self.lock:
            self.durable_latency.observe(seconds)

    def __enter__(self) -> TreeStats:
        core_markers.DURABLE_TIMERS.append(self.durable_call)
        return self

    def __exit__(self, *exc: object) -> None:
        core_markers.DURABLE_TIMERS.remove(self.durable_call)

    def families(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        p = "transfercore_tree_"
        with self.lock:
            labels = [str(self.campaign) if self.campaign is not None else ""]
            files = GaugeMetricFamily(p + "files", "Files of the campaign by state.", labels=["campaign", "state"])
            files.add_metric([*labels, "total"], self.files)
            files.add_metric([*labels, "done"], self.files_done)
            files.add_metric([*labels, "failed"], sum(self.failed.values()))
            yield files
            size = GaugeMetricFamily(p + "bytes", "Bytes of the campaign by state.", labels=["campaign", "state"])
            size.add_metric([*labels, "total"], self.bytes)
            size.add_metric([*labels, "done"], self.bytes_done)
            yield size
            copied = CounterMetricFamily(p + "files_written", "Files this run wrote.", labels=["campaign"])
            copied.add_metric(labels, self.files_written)
            yield copied
            written = CounterMetricFamily(p + "bytes_written", "Bytes this run wrote.", labels=["campaign"])
            written.add_metric(labels, self.bytes_written)
            yield written
            failed = CounterMetricFamily(p + "failures", "Files that failed, by error.", labels=["campaign", "error"])
            for error, n in sorted(self.failed.items()):
                failed.add_metric([*labels, error], n)
            yield failed
            yield GaugeMetricFamily(p + "finished", "1 once the run has ended.", value=1 if self.finished else 0)
            hist = self.durable_latency
            yield HistogramMetricFamily("transfercore_durable_seconds",
                                        "Seconds one durable() call (fsync, batch) took.",
                                        buckets=hist.cumulative(), sum_value=hist.sum)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        yield GaugeMetricFamily("transfercore_max_resident_memory_bytes", "Peak resident memory of the process.",
                                value=rss)


__all__ = ["TreeStats"]
