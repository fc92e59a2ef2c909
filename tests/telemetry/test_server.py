"""The exporter over HTTP on loopback: faults mid-run, 100 concurrent scrapers, TLS and basic auth."""

from __future__ import annotations

import datetime
import hashlib
import http.client
import ipaddress
import ssl
import threading
import time

import bcrypt
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiinfra.telemetry.exporter import (
    Exporter,
    ExporterConfig,
    Source,
    WebConfig,
    load_web_config,
    serve,
)
from aiinfra.telemetry.nvml import Collector
from aiinfra.telemetry.simulate import Fleet, ManualClock, parse_spec


def _exporter(spec: str, interval: float = 0.05) -> tuple[Exporter, ManualClock]:
    clock = ManualClock(0.0)
    host = Fleet(parse_spec(spec), clock=clock).hosts[0]
    exp = Exporter([Source(host.name, Collector(lib=host, host=host.name, clock=clock))], ExporterConfig(), interval)
    exp.start()
    return exp, clock


@pytest.fixture
def running():
    started = []

    def make(spec: str, web: WebConfig | None = None, interval: float = 0.05):
        exp, clock = _exporter(spec, interval)
        server = serve(exp, "127.0.0.1", 0, web)
        started.append((exp, server))
        return exp, clock, server.server_address[1]

    yield make
    for exp, server in started:
        server.shutdown()
        server.server_close()
        exp.stop()


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _wait(pred, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_gpu_lost_mid_run(running):
    """A GPU that raises NVMLError_GpuIsLost mid-run: its series disappear, aiinfra_ error metrics rise,
    the other GPUs keep reporting, and /healthz and /metrics answer throughout."""
    _exp, clock, port = running("gpus=4,seed=1,faults=lost:g2@10")
    base = f"http://127.0.0.1:{port}"
    with httpx.Client() as c:
        before = _families(c.get(f"{base}/metrics").text)
        assert {s.labels["gpu"] for s in before["DCGM_FI_DEV_GPU_TEMP"].samples} == {"0", "1", "2", "3"}
        assert before["aiinfra_gpus_lost"].samples[0].value == 0
        clock.advance(11)
        seen_lost = {}

        def lost_now() -> bool:
            assert c.get(f"{base}/healthz").status_code == 200
            r = c.get(f"{base}/metrics")
            assert r.status_code == 200
            seen_lost.update(_families(r.text))
            return seen_lost["aiinfra_gpus_lost"].samples[0].value == 1

        assert _wait(lost_now)
        after = seen_lost
        assert {s.labels["gpu"] for s in after["DCGM_FI_DEV_GPU_TEMP"].samples} == {"0", "1", "3"}
        assert all(s.labels["gpu"] != "2" for f in after.values() if f.name.startswith("DCGM_") for s in f.samples)
        errors = {s.labels["gpu"]: s.value for s in after["aiinfra_collection_errors"].samples}
        assert errors["2"] >= 1 and errors["0"] == 0
        assert {s.labels["gpu"]: s.value for s in after["aiinfra_gpu_lost"].samples} == {"0": 0, "1": 0, "2": 1, "3": 0}
        passes = after["aiinfra_collections"].samples[0].value
        assert _wait(lambda: _families(c.get(f"{base}/metrics").text)["aiinfra_collections"].samples[0].value > passes)


def test_100_concurrent_scrapers_64_gpus(running):
    """100 scrapers for a bounded time against 64 simulated GPUs: no failed request, and every
    response is complete (Content-Length honoured, last family present) and parses."""
    _exp, _clock, port = running("gpus=64,seed=7", interval=0.2)
    deadline = time.monotonic() + 3.0
    failures: list[str] = []
    bodies: dict[bytes, bytes] = {}
    counts = [0] * 100
    lock = threading.Lock()

    def scraper(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while counts[n] == 0 or time.monotonic() < deadline:
                conn.request("GET", "/metrics")
                r = conn.getresponse()
                body = r.read()
                counts[n] += 1
                if r.status != 200 or len(body) != int(r.headers["Content-Length"]) or not body.endswith(b"\n\n") or b"# TYPE aiinfra_gpu_lost gauge" not in body:
                    with lock:
                        failures.append(f"scraper {n}: status {r.status}, {len(body)} bytes")
                    return
                with lock:
                    bodies.setdefault(hashlib.sha256(body).digest(), body)
        except (OSError, http.client.HTTPException) as e:
            with lock:
                failures.append(f"scraper {n}: {e!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=scraper, args=(n,)) for n in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert sum(counts) >= 100 and min(counts) >= 1
    for body in bodies.values():  # every distinct body a scraper saw parses and is whole
        fams = _families(body.decode())
        assert len(fams["DCGM_FI_DEV_GPU_TEMP"].samples) == 64
        assert len(fams["aiinfra_gpu_lost"].samples) == 64


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tmp_path / "server.crt"


def test_basic_auth_and_tls(running, tmp_path):
    """exporter-toolkit web config: without credentials the exporter answers 401, with the bcrypt-hashed
    password 200, and it is reachable over https with a certificate generated here."""
    ca = _self_signed(tmp_path)
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$")  # htpasswd style
    (tmp_path / "web.yml").write_text(f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prom: '{hashed}'\n")
    web = load_web_config(tmp_path / "web.yml")
    _exp, _clock, port = running("gpus=2,seed=1", web=web)
    ctx = ssl.create_default_context(cafile=str(ca))
    with httpx.Client(verify=ctx) as c:
        url = f"https://127.0.0.1:{port}/metrics"
        assert c.get(url).status_code == 401
        assert c.get(url, auth=("prom", "wrong")).status_code == 401
        assert c.get(url, auth=("nobody", "s3cret")).status_code == 401
        r = c.get(url, auth=("prom", "s3cret"))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert len(_families(r.text)["DCGM_FI_DEV_GPU_TEMP"].samples) == 2
        assert c.get(f"https://127.0.0.1:{port}/healthz", auth=("prom", "s3cret")).text == "ok\n"
    with pytest.raises(httpx.HTTPError):  # plain http to a TLS port does not get metrics
        httpx.get(f"http://127.0.0.1:{port}/metrics", auth=("prom", "s3cret"), timeout=5)


def test_gzip_and_extra_prometheus_collectors(running):
    """Prometheus asks for gzip; the body is the same exposition. Ordinary prometheus-client collectors
    added to the exporter's registry render with their usual names (process_cpu_seconds_total)."""
    from prometheus_client import ProcessCollector

    exp, _clock, port = running("gpus=2,seed=1")
    exp.registry.register(ProcessCollector(registry=None))
    exp.collect_once()
    with httpx.Client() as c:
        r = c.get(f"http://127.0.0.1:{port}/metrics", headers={"Accept-Encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip"
        plain = c.get(f"http://127.0.0.1:{port}/metrics", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
    assert r.text == plain.text or _families(r.text).keys() == _families(plain.text).keys()
    fams = _families(plain.text)
    assert fams["process_cpu_seconds"].type == "counter" and fams["process_cpu_seconds"].samples[0].name == "process_cpu_seconds_total"
    assert fams["DCGM_FI_DEV_PCIE_REPLAY_COUNTER"].type == "counter"
    assert "# TYPE DCGM_FI_DEV_PCIE_REPLAY_COUNTER counter\nDCGM_FI_DEV_PCIE_REPLAY_COUNTER{" in plain.text  # dcgm name kept whole
