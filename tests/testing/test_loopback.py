import socket
import subprocess
import sys
import threading

import pytest

from transfercore.testing.loopback import free_port, wait_globus_listening, wait_port


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


def test_wait_globus_listening_reads_the_port_the_server_announces(tmp_path):
    out = tmp_path / "server.out"
    script = "import time; print('starting'); print('Server listening at localhost:40123', flush=True); time.sleep(30)"
    with open(out, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=sink)
    try:
        assert wait_globus_listening(out, proc, timeout=30) == 40123
    finally:
        proc.kill()
        proc.wait()


def test_wait_globus_listening_reports_a_server_that_exited_without_listening(tmp_path):
    out = tmp_path / "server.out"
    with open(out, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-c", "print('bind failed'); raise SystemExit(2)"], stdout=sink)
    proc.wait()
    with pytest.raises(RuntimeError, match="exited with 2"):
        wait_globus_listening(out, proc, timeout=5)
