"""The edge on a real `bentoml serve`: half bodies, odd numbers, idle and slow connections,
compressed bodies and identity fields (issue 23, items 8 to 11)."""

from __future__ import annotations

import gzip
import json
import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving import Server

from .conftest import AUTH, metric, running, scrape

pytestmark = pytest.mark.integration

ROW = [1.2, 100, 2000, 25, 50, 0.95]
HEADER_TIMEOUT_S = 2
#: What service.py must call for items 9 and 11 (models/bentoml_quirks.py has both).


@pytest.fixture(scope="module")
def edge(model_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("edge")
    with running(
        model_home, tmp, challenger_fraction="0", header_timeout_s=str(HEADER_TIMEOUT_S)
    ) as srv:
        yield srv


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _raw(server: Server, request: bytes, wait_s: float = 10) -> bytes:
    """Send ``request`` on a new connection; what came back until it closed or went quiet."""
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=wait_s) as s:
        s.sendall(request)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
                head, _, body = out.partition(b"\r\n\r\n")
                length = [x for x in head.split(b"\r\n") if x.lower().startswith(b"content-length")]
                if length and len(body) >= int(length[0].split(b":")[1]):
                    break
        except TimeoutError:
            pass
    return out


def _post(path: str, headers: bytes, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
        + headers
        + b"\r\n"
        + body
    )


def test_item_8_half_bodies_are_client_disconnected_not_internal(edge: Server) -> None:
    before = scrape(edge.url)
    auth = f"Authorization: {AUTH['Authorization']}\r\n".encode()
    sent = 0
    for path, extra in (("/predict", b""), ("/predict_batch", b""), ("/feedback", auth)):
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", _port(edge))) as s:
                s.sendall(_post(path, extra + b"Content-Length: 5000\r\n", b'{"features": [1.2,'))
            sent += 1
    time.sleep(1.5)
    after = scrape(edge.url)
    gone = metric(after, "yield_ensemble_errors_total", kind="client_disconnected")
    assert gone - metric(before, "yield_ensemble_errors_total", kind="client_disconnected") == sent
    internal = metric(after, "yield_ensemble_errors_total", kind="internal")
    assert internal == metric(before, "yield_ensemble_errors_total", kind="internal")
    text = edge.log_text()
    assert "Traceback" not in text and "ClientDisconnect" not in text
    lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
    left = [x for x in lines if x.get("kind") == "client_disconnected"]
    assert len(left) >= sent and all(x["level"] == "INFO" for x in left)
    assert httpx.post(f"{edge.url}/predict", json={"features": ROW}).status_code == 200
    # Each such request ends at once: BentoML's request timeout (60 s) held every one,
    # and a SIGTERM's drain waited for them, until the edge ended them (with a 499).
    held = {
        dict(labels).get("endpoint"): value
        for (name, labels), value in scrape(edge.url).items()
        if name.endswith("request_in_progress") and value
    }
    assert not {k: v for k, v in held.items() if k != "/metrics"}, held


@pytest.mark.parametrize(
    "length",
    [
        b"+45",
        b"45 ",
        b"045",
        b"00000000000000000000000045",
        b"-1",
        b"4_5",
        "٤٥".encode(),
        "²".encode(),
        b"9" * 5000,
        b"99999999999999999999",
        b"45\r\nContent-Length: 4",
    ],
)
def test_item_8_no_content_length_reaches_a_500_or_a_hang(edge: Server, length: bytes) -> None:
    body = json.dumps({"features": ROW}).encode()  # 45 bytes
    answer = _raw(edge, _post("/predict", b"Content-Length: " + length + b"\r\n", body))
    status = answer.split(b"\r\n", 1)[0]
    assert status.startswith((b"HTTP/1.1 400", b"HTTP/1.1 413")), (length[:40], answer[:300])


@pytest.mark.parametrize(
    "query",
    [
        "/dashboard/wafers?limit=" + "9" * 5000,
        "/dashboard/wafers?limit=1_0",
        "/dashboard/wafers?offset=%D9%A1",
        "/dashboard/wafers?limit=%2B5",
        "/dashboard/wafers/W1/map?limit=-0",
        "/admin/serving?history=" + "9" * 5000,
        "/admin/serving?history=%D9%A1%D9%A0",
        "/ab/report?since=1_000",
        "/ab/report?since=%D9%A1%D9%A1",
        "/dashboard/wafers/%2E%2E/map",
        "/dashboard/wafers/" + "9" * 5000,
    ],
)
def test_item_8_numbers_in_queries_and_paths_are_422_not_500(edge: Server, query: str) -> None:
    r = httpx.get(f"{edge.url}{query}", headers=AUTH)
    assert r.status_code == 422, (query[:60], r.text[:300])
    assert r.json()["field"] and len(r.text) < 1000


def _whole_response(s: socket.socket) -> bytes:
    """One HTTP response from ``s``, headers and its Content-Length of body: a recv may
    return part of it (the body of the first came with the second once, under load)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
         if line.lower().startswith(b"content-length:")),
        0,
    )  # fmt: skip
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk, "connection closed inside the body"
        body += chunk
    assert len(body) == length, "more bytes than one response"
    return head


def test_item_9_idle_connections_outlive_the_proxy_and_slow_headers_are_cut(
    edge: Server,
) -> None:
    probe = b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", _port(edge)), timeout=10) as s:
        s.sendall(probe)
        assert _whole_response(s).startswith(b"HTTP/1.1 200")
        time.sleep(6)  # past uvicorn's 5 s: the proxy's next request on it was lost
        s.sendall(probe)  # the same connection, idle 6 s
        assert _whole_response(s).startswith(b"HTTP/1.1 200")
    with socket.create_connection(("127.0.0.1", _port(edge))) as s:
        s.settimeout(HEADER_TIMEOUT_S + 20)
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Ty")  # then stall
        started = time.monotonic()
        try:
            closed = s.recv(1024) == b""
        except ConnectionResetError:
            closed = True
        except TimeoutError:
            closed = False
        waited = time.monotonic() - started
    assert closed and waited < HEADER_TIMEOUT_S + 5, waited


def test_item_10_gzip_and_deflate_bodies_are_expanded(edge: Server) -> None:
    body = json.dumps({"features": ROW, "device_id": "gz-1"}).encode()
    plain = httpx.post(
        f"{edge.url}/predict", content=body, headers={"Content-Type": "application/json"}
    )
    for name, packed in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body))):
        r = httpx.post(
            f"{edge.url}/predict",
            content=packed,
            headers={"Content-Type": "application/json", "Content-Encoding": name},
        )
        assert r.status_code == 200, (name, r.text)
        assert r.json()["probability"] == plain.json()["probability"]
    wafer = {"features": [ROW] * 2000, "device_id": [f"gz-d{i}" for i in range(2000)]}
    packed = gzip.compress(json.dumps(wafer).encode())
    r = httpx.post(
        f"{edge.url}/predict_wafer",
        content=packed,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 200 and r.json()["count"] == 2000, r.text[:300]


def test_item_10_a_gzip_bomb_is_413_and_unknown_codings_415(edge: Server) -> None:
    bomb = gzip.compress(b'{"devices": [' + b" " * (200 << 20) + b"]}")  # 200 MB in ~200 KB
    r = httpx.post(
        f"{edge.url}/predict_batch",
        content=bomb,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        timeout=60,
    )
    assert r.status_code == 413 and "MAX_BODY_MB" in r.json()["error"], r.text
    for coding in ("br", "zstd", "gzip, br"):
        r = httpx.post(
            f"{edge.url}/predict",
            content=b"{}",
            headers={"Content-Type": "application/json", "Content-Encoding": coding},
        )
        assert r.status_code == 415 and repr(coding) in r.json()["error"], r.text
    r = httpx.post(
        f"{edge.url}/predict",
        content=b'{"features": []}',
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 400 and "not valid gzip" in r.json()["error"]
    assert httpx.get(f"{edge.url}/readyz").status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/predict", {"features": ROW, "deviceId": "D1"}, "deviceId"),
        ("/predict_batch", {"devices": [{"features": ROW}], "wafer_id": "W1"}, "wafer_id"),
        ("/predict_wafer", {"features": [ROW], "dieX": [1]}, "dieX"),
    ],
)
def test_item_11_unknown_fields_are_422_naming_them(
    edge: Server, path: str, body: dict[str, object], field: str
) -> None:
    r = httpx.post(f"{edge.url}{path}", json=body)
    assert r.status_code == 422 and r.json()["field"] == field, r.text
    assert "the fields are features" in r.json()["error"] or "devices" in r.json()["error"]


@pytest.mark.parametrize("bad", [True, 1.5, 1.0, [1], {"id": 1}])
def test_item_11_ids_are_never_booleans_floats_or_containers(edge: Server, bad: object) -> None:
    r = httpx.post(f"{edge.url}/predict", json={"features": ROW, "device_id": bad})
    assert r.status_code == 422 and r.json()["field"] == "device_id", r.text


def test_item_11_a_die_twice_or_an_id_the_dashboard_cannot_address_is_422(edge: Server) -> None:
    base = {"features": [ROW] * 3, "wafer_id": "W-edge", "die_x": [0, 1, 2], "die_y": [0, 0, 0]}
    twice = httpx.post(f"{edge.url}/predict_wafer", json={**base, "device_id": ["a", "b", "a"]})
    assert twice.status_code == 422 and twice.json()["field"] == "device_id[2]", twice.text
    assert "index 0" in twice.json()["error"]
    spot = httpx.post(f"{edge.url}/predict_wafer", json={**base, "die_x": [0, 1, 0]})
    assert spot.status_code == 422 and spot.json()["field"] == "die_x[2], die_y[2]", spot.text
    for wafer in ("W/1", "..", "W%1", "W?1"):
        r = httpx.post(f"{edge.url}/predict_wafer", json={**base, "wafer_id": wafer})
        assert r.status_code == 422 and r.json()["field"] == "wafer_id", r.text
        assert "/ \\ ? # %" in r.json()["error"]
    batch = {"devices": [{"features": ROW, "device_id": "x"}, {"features": ROW, "device_id": "x"}]}
    r = httpx.post(f"{edge.url}/predict_batch", json=batch)
    assert r.status_code == 422 and r.json()["field"] == "devices[1].device_id", r.text
    ok = httpx.post(f"{edge.url}/predict_wafer", json={**base, "device_id": ["a", "b", "c"]})
    assert ok.status_code == 200, ok.text
    die_map = httpx.get(f"{edge.url}/dashboard/wafers/W-edge/map", headers=AUTH).json()
    assert die_map["total"] == 3, die_map
