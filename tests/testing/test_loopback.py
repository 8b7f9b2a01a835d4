import socket
import subprocess
import sys
import threading

import pytest

from transfercore.testing.loopback import free_port, wait_port


def test_free_port_can_be_listened_on_and_wait_port_sees_the_listener():
    port = free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        accepted = threading.Thread(target=lambda: server.accept()[0].close())
        accepted.start()
        wait_port(port, timeout=5)
        accepted.join(5)


def test_wait_port_gives_up_when_nothing_listens():
    with pytest.raises(RuntimeError, match="nothing listens"):
        wait_port(free_port(), timeout=0.3)


def test_wait_port_reports_a_server_that_exited():
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    with pytest.raises(RuntimeError, match="exited with 3"):
        wait_port(free_port(), proc=proc, timeout=5)
