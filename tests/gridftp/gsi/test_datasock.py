from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from transfercore.gridftp.gsi import AuthenticationFailed, Credential, TrustStore
from transfercore.gridftp.gsi.dataprot import DataProtection, Dcau, Prot
from transfercore.gridftp.gsi.datasock import SecureDataSocket
from transfercore.testing.gsi_pki import GridPKI

PAYLOAD = bytes(range(251)) * 4099  # ~1 MB, not a multiple of any record size


def run_pair(server_cred: Credential, client_cred: Credential, trust: TrustStore, prot: DataProtection,
             own: str, payload: bytes) -> tuple[bytes, SecureDataSocket, SecureDataSocket]:
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    acceptor = SecureDataSocket(a, initiator=False, credential=server_cred, trust=trust, protection=prot,
                                own_identity=own)
    initiator = SecureDataSocket(b, initiator=True, credential=client_cred, trust=trust, protection=prot,
                                 own_identity=own)

    def receive() -> bytes:
        out = bytearray()
        buf = bytearray(70000)
        while True:
            n = acceptor.recv_into(memoryview(buf))
            if not n:
                return bytes(out)
            out += buf[:n]

    def send() -> None:
        initiator.sendall(payload[:1000])
        rest = memoryview(payload)[1000:]
        while rest:  # sendmsg may send part, as on a plain socket
            rest = rest[initiator.sendmsg([rest[:4000], rest[4000:]]):]
        initiator.shutdown(socket.SHUT_WR)

    with ThreadPoolExecutor(2) as pool:
        got = pool.submit(receive)
        sent = pool.submit(send)
        sent.result(timeout=30)
        data = got.result(timeout=30)
    a.close()
    b.close()
    return data, acceptor, initiator


@pytest.mark.parametrize("prot", [Prot.CLEAR, Prot.PRIVATE])
def test_dcau_a_data_arrives_identical(prot: Prot, proxy: Credential, trust: TrustStore, pki: GridPKI) -> None:
    delegated = pki.python_proxy()  # the server's side holds a credential of the same user
    state = DataProtection(dcau=Dcau.SELF, prot=prot)
    data, acceptor, initiator = run_pair(delegated, proxy, trust, state, pki.user_dn, PAYLOAD)
    assert data == PAYLOAD
    assert acceptor.peer_identity == initiator.peer_identity == pki.user_dn


def test_private_data_is_not_in_the_clear_on_the_wire(proxy: Credential, trust: TrustStore, pki: GridPKI) -> None:
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    state = DataProtection(dcau=Dcau.SELF, prot=Prot.PRIVATE)
    initiator = SecureDataSocket(b, initiator=True, credential=proxy, trust=trust, protection=state,
                                 own_identity=pki.user_dn)
    acceptor = SecureDataSocket(a, initiator=False, credential=pki.python_proxy(), trust=trust,
                                protection=state, own_identity=pki.user_dn)
    t = threading.Thread(target=acceptor.authenticate)
    t.start()
    initiator.authenticate()
    t.join(10)
    secret = b"the secret payload " * 100
    initiator.sendall(secret)
    wire = a.recv(65536)
    assert wire[:1] == b"\x17" and b"secret" not in wire
    a.close()
    b.close()


def test_dcau_refuses_a_peer_of_another_identity(proxy: Credential, trust: TrustStore, host: Credential,
                                                 pki: GridPKI) -> None:
    state = DataProtection(dcau=Dcau.SELF, prot=Prot.CLEAR)
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    # the server side presents its host certificate, not the user's: DCAU A must refuse it
    acceptor = SecureDataSocket(a, initiator=False, credential=host, trust=trust, protection=state,
                                own_identity=pki.user_dn)
    initiator = SecureDataSocket(b, initiator=True, credential=proxy, trust=trust, protection=state,
                                 own_identity=pki.user_dn)
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(acceptor.authenticate)
        with pytest.raises(AuthenticationFailed, match="host/localhost, not .*Jane Doe as DCAU A requires"):
            initiator.authenticate()
        b.close()
        with pytest.raises(AuthenticationFailed):
            fut.result(timeout=10)
    a.close()
