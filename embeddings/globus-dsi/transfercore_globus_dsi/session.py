"""One client session: the driver and the directory clients see as ``/``."""

from __future__ import annotations

import logging

from transfercore.contract import Driver

from .config import DsiConfig
from .flusher import Flusher
from .paths import driver_path

log = logging.getLogger("transfercore.globus_dsi")


class Session:
    """One client session: the driver and the directory clients see as ``/``."""

    def __init__(self, config: DsiConfig, driver: Driver) -> None:
        self.config = config
        self.driver = driver
        self.base = config.location.path
        #: the durability thread of every upload of this session
        self.flusher = Flusher()

    def path(self, client_path: str) -> str:
        return driver_path(self.base, client_path)

    def close(self) -> None:
        self.flusher.close()
        try:
            self.driver.close()
        except Exception:
            log.exception("closing the driver failed")
