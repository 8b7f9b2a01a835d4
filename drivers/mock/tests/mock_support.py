"""Helpers shared by the mock driver's tests."""

from transfercore.registry import open_location


def payload(size: int, seed: int = 1) -> bytes:
    return bytes((i * 31 + seed * 7 + (i >> 8)) & 0xFF for i in range(size))


def open_mock(url: str):
    ep = open_location(url)
    return ep.driver, ep.path
