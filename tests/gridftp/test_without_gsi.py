"""A server without GSI never loads ``cryptography`` (about 10 MiB of memory and 30 ms of start-up).

The check runs in a fresh interpreter: a server on loopback takes a login and
a MODE E upload through a raw client, then the interpreter says what it loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, socket, sys, threading
    from transfercore.gridftp.modee import encode_block, encode_eof_eod
    from transfercore.gridftp.server import GridFTPServer, ServerConfig
    from transfercore.gridftp.session import SessionConfig
    from transfercore.gridftp.users import UserDB
    from transfercore.location import Location
    from transfercore.registry import open_location

    root = sys.argv[1]
    driver = open_location(Location("posix", "/", options={"root": root})).driver
    config = ServerConfig(host="127.0.0.1", port=0, session=SessionConfig(anonymous=True, anonymous_write=True))
    loop = asyncio.new_event_loop()
    server = GridFTPServer(config, driver, UserDB({}))
    port = loop.run_until_complete(server.start())
    threading.Thread(target=loop.run_forever, daemon=True).start()

    c = socket.create_connection(("127.0.0.1", port), timeout=20)
    f = c.makefile("rb")

    def reply():
        line = f.readline().decode()
        while line[3:4] == "-":
            line = f.readline().decode()
        return int(line[:3]), line

    def cmd(text):
        c.sendall(text.encode() + b"\\r\\n")
        return reply()

    codes = [reply()[0]]
    for text in ("USER anonymous", "PASS x@y", "TYPE I", "MODE E"):
        codes.append(cmd(text)[0])
    code, text = cmd("PASV")
    nums = [int(n) for n in text[text.index("(") + 1 : text.index(")")].split(",")]
    d = socket.create_connection(("127.0.0.1", nums[4] * 256 + nums[5]), timeout=20)
    codes.append(cmd("ALLO 5")[0])
    c.sendall(b"STOR /up.bin\\r\\n")
    d.sendall(encode_block(0, b"hello") + encode_eof_eod(1))
    while True:
        code, _ = reply()
        codes.append(code)
        if code >= 200:
            break
    print(json.dumps({"codes": codes, "loaded": sorted(m for m in sys.modules if m.split(".")[0] == "cryptography"
                                                       or m.startswith("transfercore.gridftp.gsi."))}))
    """
)


def test_a_server_without_gsi_loads_no_cryptography(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["codes"][-1] == 226, result
    assert (tmp_path / "up.bin").read_bytes() == b"hello"
    # only the light parts of the GSI package: what DCAU/PROT answer, and the control events
    assert result["loaded"] == [
        "transfercore.gridftp.gsi.dataprot", "transfercore.gridftp.gsi.errors", "transfercore.gridftp.gsi.events",
    ], result
