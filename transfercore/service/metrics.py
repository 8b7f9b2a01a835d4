"""The Prometheus endpoint (``--metrics-port``): :class:`~.stats.ServiceStats` as metrics.

Optional: it needs ``prometheus_client`` (``pip install 'transfercore[metrics]'``).
A collector reads the totals and the live figures at each scrape, so bytes
received and made durable grow during a transfer, not only at its end.

Metrics (all prefixed ``transfercore_``):

* ``bytes_received_total``, ``bytes_sent_total``: data bytes moved, transfers in progress included;
* ``bytes_durable_total``: bytes uploads made durable (named by restart markers, or by the final 226);
* ``markers_sent_total{kind="restart"|"perf"}``: 111 and 112 replies;
* ``sessions{state="connected"|"idle"|"transferring"}``: control connections now;
* ``sessions_started_total``, ``logins_refused_total``;
* ``transfers_total{type, reason}``: finished transfers by final reply (``complete``, ``local_error`` ...);
* ``durable_seconds``: histogram of one ``durable()`` call (the fsync or batch that restart markers wait for);
* ``reloads_total{result="ok"|"refused"}``;
* ``max_resident_memory_bytes``: the peak resident memory of the process.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import OptionError
from .stats import Live, ServiceStats


class MetricsUnavailable(OptionError):
    """``--metrics-port`` without prometheus_client installed."""


def families(stats: ServiceStats, live: Callable[[], Live] | None, *, rss: int | None = None) -> Iterator[Any]:
    """The metric families of ``stats`` and ``live`` (``rss``: the peak resident memory, else this process's)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    now = live() if live is not None else Live(received=stats.bytes_received, sent=stats.bytes_sent)
    p = "transfercore_"
    yield CounterMetricFamily(p + "bytes_received", "Data bytes received by uploads (in progress included).",
                              value=now.received)
    yield CounterMetricFamily(p + "bytes_sent", "Data bytes sent by downloads (in progress included).",
                              value=now.sent)
    yield CounterMetricFamily(p + "bytes_durable", "Upload bytes made durable (restart markers, final 226).",
                              value=stats.bytes_durable)
    markers = CounterMetricFamily(p + "markers_sent", "Restart (111) and performance (112) markers sent.",
                                  labels=["kind"])
    for kind in ("restart", "perf"):
        markers.add_metric([kind], stats.markers.get(kind, 0))
    yield markers
    sessions = GaugeMetricFamily(p + "sessions", "Control connections now, by state.", labels=["state"])
    for state in ("connected", "idle", "transferring"):
        sessions.add_metric([state], now.sessions.get(state, 0))
    yield sessions
    yield CounterMetricFamily(p + "sessions_started", "Control connections accepted.", value=stats.sessions_total)
    yield CounterMetricFamily(p + "logins_refused", "Logins refused (password, grid-mapfile, CRL).",
                              value=stats.logins_refused)
    outcomes = CounterMetricFamily(p + "transfers", "Finished transfers by type and reason.",
                                   labels=["type", "reason"])
    for (kind, why), n in sorted(stats.outcomes.items()):
        outcomes.add_metric([kind, why], n)
    yield outcomes
    hist = stats.durable_latency
    yield HistogramMetricFamily(p + "durable_seconds", "Seconds one durable() call (fsync, batch) took.",
                                buckets=hist.cumulative(), sum_value=hist.sum)
    reloads = CounterMetricFamily(p + "reloads", "SIGHUP reloads by result.", labels=["result"])
    for result in ("ok", "refused"):
        reloads.add_metric([result], stats.reloads.get(result, 0))
    yield reloads
    for name, help_text, val in (
        ("spool_bytes", "Bytes in the spool directory (--spool-dir) now.", now.spool_bytes),
        ("spool_free_bytes", "Free bytes of the spool directory's file system.", now.spool_free),
        ("storage_free_bytes", "Free bytes of the file system under the served root.", now.storage_free),
    ):
        if val is not None:
            yield GaugeMetricFamily(p + name, help_text, value=val)
    if rss is None:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    yield GaugeMetricFamily(p + "max_resident_memory_bytes", "Peak resident memory of the process "
                            "(of the largest worker with --workers).", value=rss)


class Exporter:
    def __init__(self, server: Any, thread: Any) -> None:
        self._server = server
        self._thread = thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_exporter(stats: ServiceStats, host: str, port: int, *, live: Callable[[], Live] | None = None) -> Exporter:
    """Serve a server's ``/metrics`` on ``host:port`` from a daemon thread."""
    return serve_metrics(lambda: families(stats, live), host, port)


def serve_metrics(collect: Callable[[], Iterator[Any]], host: str, port: int) -> Exporter:
    """Serve the metric families ``collect`` yields at each scrape on ``http://host:port/metrics``."""
    try:
        from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
    except ImportError:
        raise MetricsUnavailable(
            "--metrics-port needs the prometheus_client package",
            hint="pip install 'transfercore[metrics]'",
        ) from None

    class Collector:
        def collect(self) -> Iterator[Any]:
            return collect()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    # the standard process_* metrics: resident memory now, CPU seconds, open file descriptors
    ProcessCollector(registry=registry)
    try:
        started = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise OptionError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}",
                          hint="choose another --metrics-port") from None
    server, thread = started if isinstance(started, tuple) else (started, None)
    return Exporter(server, thread)


__all__ = ["Exporter", "MetricsUnavailable", "serve_metrics", "start_exporter"]
