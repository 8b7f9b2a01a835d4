"""The sans-I/O core: requests in, decisions and replies out."""

from __future__ import annotations

import base64
import json

from transfercore.http import protocol as p


def req(method: str, path: str, **headers: str) -> p.Request:
    return p.Request(method, path, {k.replace("_", "-").lower(): v for k, v in headers.items()})


CFG = p.Config(max_size=1000, expiry=60)


def record(**kw: object) -> p.UploadRecord:
    base: dict[str, object] = dict(id="x" * 32, path="/a", length=100, owner="o", protocol="ietf",
                                   created=0.0, expires=60.0)
    return p.UploadRecord(**(base | kw))  # type: ignore[arg-type]


def test_tus_creation_names_the_destination_from_metadata() -> None:
    meta = "filename " + base64.b64encode(b"data.bin").decode()
    d = p.decide(req("POST", "/files/", tus_resumable="1.0.0", upload_length="10", upload_metadata=meta), CFG)
    assert d == p.Create("/data.bin", 10, "tus", meta, None, None)


def test_tus_version_mismatch_is_412() -> None:
    d = p.decide(req("POST", "/files/", tus_resumable="0.2.2", upload_length="10"), CFG)
    assert isinstance(d, p.Reply) and d.status == 412


def test_path_escape_in_metadata_is_refused() -> None:
    for name in (b"../../etc/passwd", b"a/../../b", b"..", b".hidden"):
        meta = "filename " + base64.b64encode(name).decode()
        d = p.decide(req("POST", "/files/", tus_resumable="1.0.0", upload_length="1", upload_metadata=meta), CFG)
        assert isinstance(d, p.Reply) and d.status == 403, name
    d = p.decide(req("POST", "/files/../../x", upload_complete="?1", content_length="1"), CFG)
    assert isinstance(d, p.Reply) and d.status == 403


def test_ietf_creation_length_from_complete_content() -> None:
    d = p.decide(req("POST", "/files/d/x", upload_complete="?1", content_length="7"), CFG)
    assert isinstance(d, p.Create) and (d.path, d.length, d.body) == ("/d/x", 7, p.Body(0, True))


def test_ietf_creation_inconsistent_lengths() -> None:
    d = p.decide(req("POST", "/files/x", upload_complete="?1", content_length="7", upload_length="8"), CFG)
    assert isinstance(d, p.Reply) and d.status == 400
    assert json.loads(d.body)["type"].endswith("#inconsistent-upload-length")


def test_unknown_length_is_411_and_absurd_length_413_or_400() -> None:
    d = p.decide(req("POST", "/files/x", upload_complete="?0"), CFG)
    assert isinstance(d, p.Reply) and d.status == 411
    d = p.decide(req("POST", "/files/x", upload_complete="?0", upload_length="1001"), CFG)
    assert isinstance(d, p.Reply) and d.status == 413 and ("Upload-Limit", "max-size=1000") in d.headers
    d = p.decide(req("POST", "/files/x", upload_complete="?0", upload_length="9" * 40), CFG)
    assert isinstance(d, p.Reply) and d.status == 400


def test_wrong_offset_is_409_with_the_offset_and_problem() -> None:
    a = p.decide(req("PATCH", "/uploads/" + "x" * 32, upload_offset="5", upload_complete="?0",
                     content_type="application/partial-upload"), CFG)
    assert isinstance(a, p.Append)
    r = p.check_append(record(offset=10), a, 10, tus=False)
    assert r is not None and r.status == 409 and ("Upload-Offset", "10") in r.headers
    assert json.loads(r.body)["type"] == "https://iana.org/assignments/http-problem-types#mismatching-upload-offset"
    assert p.check_append(record(offset=5), a, 5, tus=False) is None


def test_patch_needs_the_partial_upload_media_type() -> None:
    d = p.decide(req("PATCH", "/uploads/abc", upload_offset="0", upload_complete="?0",
                     content_type="application/octet-stream"), CFG)
    assert isinstance(d, p.Reply) and d.status == 415


def test_reported_offset_is_never_more_than_the_storage_holds() -> None:
    assert p.offset_of(record(offset=50), 30) == 30
    assert p.offset_of(record(offset=50), 80) == 50
    assert p.offset_of(record(offset=50, complete=True), 0) == 100


def test_head_replies_carry_every_draft_field() -> None:
    r = p.reply_head(CFG, record(offset=40), 40, 10.0, tus=False)
    h = dict(r.headers)
    assert r.status == 204
    assert h == {"Upload-Offset": "40", "Upload-Complete": "?0", "Upload-Length": "100",
                 "Upload-Limit": "max-size=1000, max-age=50", "Cache-Control": "no-store"}


def test_repr_digest_parsing() -> None:
    good = base64.b64encode(b"\0" * 32).decode()
    d = p.decide(req("POST", "/files/x", upload_complete="?1", content_length="1",
                     repr_digest=f"md5=:AAAA:, sha-256=:{good}:"), CFG)
    assert isinstance(d, p.Create) and d.digest == ("sha-256", good)
    d = p.decide(req("POST", "/files/x", upload_complete="?1", content_length="1", repr_digest="md5=:AAAA:"), CFG)
    assert isinstance(d, p.Reply) and d.status == 400


def test_completed_upload_refuses_appends() -> None:
    a = p.Append("x", p.Body(100, True), None, None)
    r = p.check_append(record(offset=100, complete=True), a, 100, tus=False)
    assert r is not None and r.status == 410


def test_only_a_draft_creation_with_content_from_an_interop_8_client_is_announced_by_a_104() -> None:
    def interim(method: str = "POST", **headers: str) -> bool:
        d = p.decide(req(method, "/files/a", **headers), CFG)
        assert isinstance(d, p.Create), d
        return d.interim

    draft = {"upload_draft_interop_version": "8"}
    assert interim(**draft, upload_complete="?1", content_length="5")
    assert interim("PUT", **draft, upload_complete="?0", upload_length="9", content_length="5")
    assert interim(**draft, upload_complete="?0", upload_length="9")  # chunked: content of unknown length
    assert not interim(**draft, upload_complete="?0", upload_length="9", content_length="0")  # nothing to resume
    assert not interim(upload_complete="?1", content_length="5")  # a client that did not say it expects one
    assert not interim(upload_draft_interop_version="7", upload_complete="?1", content_length="5")
    meta = "filename " + base64.b64encode(b"a").decode()
    assert not interim(**draft, tus_resumable="1.0.0", upload_length="5", upload_metadata=meta,
                       content_type="application/offset+octet-stream", content_length="5")
    r = p.reply_interim(CFG, record())
    assert r.status == 104
    assert dict(r.headers) == {"Location": "/uploads/" + "x" * 32, "Upload-Limit": "max-size=1000",
                               "Upload-Draft-Interop-Version": "8"}
