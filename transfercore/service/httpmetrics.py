"""Metrics of ``serve-http`` (``--metrics-port``), measured around the application.

An ASGI middleware sees each request's body as it arrives (bytes received)
and each reply's status and ``Upload-Offset``.  The upload application's
promise is that every ``Upload-Offset`` it reports is durable, so the bytes
an upload request made durable are its reply's offset less the offset it
started at (its own ``Upload-Offset``, or 0 for a creation with data).  The
application itself is not changed.
"""

from __future__ import annotations

import resource
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

#: Requests that carry upload data.
UPLOAD_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _offset(headers: Any) -> int | None:
    for name, value in headers or ():
        if bytes(name).lower() == b"upload-offset":
            try:
                return int(bytes(value))
            except ValueError:
                return None
    return None


class HttpStats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bytes_received = 0
        self.bytes_durable = 0
        self.requests: Counter[tuple[str, str]] = Counter()
        self.in_progress = 0

    def families(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        p = "transfercore_http_"
        with self.lock:
            yield CounterMetricFamily(p + "bytes_received", "Upload body bytes received.", value=self.bytes_received)
            yield CounterMetricFamily(p + "bytes_durable", "Upload bytes made durable (reported Upload-Offset).",
                                      value=self.bytes_durable)
            requests = CounterMetricFamily(p + "requests", "Finished requests by method and status.",
                                           labels=["method", "code"])
            for (method, code), n in sorted(self.requests.items()):
                requests.add_metric([method, code], n)
            yield requests
            yield GaugeMetricFamily(p + "requests_in_progress", "Requests being answered now.",
                                    value=self.in_progress)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        yield GaugeMetricFamily("transfercore_max_resident_memory_bytes", "Peak resident memory of the process.",
                                value=rss)


class MetricsMiddleware:
    """Counts around an ASGI application; everything else passes through unchanged."""

    def __init__(self, app: Any, stats: HttpStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        stats = self.stats
        method = str(scope.get("method", ""))
        start = _offset(scope.get("headers")) or 0
        status: list[int] = []

        async def counting_receive() -> Message:
            message = await receive()
            if message.get("type") == "http.request":
                with stats.lock:
                    stats.bytes_received += len(message.get("body", b""))
            return message

        async def watching_send(message: Message) -> None:
            if message.get("type") == "http.response.start":
                status.append(int(message["status"]))
                reported = _offset(message.get("headers"))
                if method in UPLOAD_METHODS and reported is not None and 200 <= status[0] < 300:
                    with stats.lock:
                        stats.bytes_durable += max(0, reported - start)
            await send(message)

        with stats.lock:
            stats.in_progress += 1
        try:
            await self.app(scope, counting_receive, watching_send)
        finally:
            with stats.lock:
                stats.in_progress -= 1
                stats.requests[(method, str(status[0]) if status else "none")] += 1


__all__ = ["HttpStats", "MetricsMiddleware"]
