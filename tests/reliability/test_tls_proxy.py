"""The engine behind Debian's nginx with TLS, configured as ``docs/deployment.md`` recommends.

nginx (self-signed certificate, one TLS port per engine listener) fronts the worker socket, the
HTTP API and the stream socket; a worker connects over ``wss://``, an ``https://`` request reaches
its function, and a stream subscription over ``wss://`` receives the item that function sets.
This proves the upgrade headers, the forwarded headers and the TLS termination of the documented
configuration, not just that nginx starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import getpass
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import iii_worker
import pytest
import websockets

from iii_core.testing import RawWorker, free_port, stop_process, wait_until

CONFIG: dict[str, Any] = {
    "modules": [
        {"class": "modules::rest_api::RestApiModule", "config": {"port": 0}},
        {
            "class": "modules::stream::StreamModule",
            "config": {
                "port": 0,
                "adapter": {
                    "class": "modules::stream::adapters::KvStore",
                    "config": {"path": ":memory:"},
                },
            },
        },
    ]
}

# The proxy part of docs/deployment.md, with one TLS port per listener instead of one host name
# per listener (the test cannot resolve names); keep the two in step.
NGINX_CONF = """\
{user}worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    ssl_certificate     {tmp}/cert.pem;
    ssl_certificate_key {tmp}/key.pem;
    ssl_protocols       TLSv1.2 TLSv1.3;

    # nginx drops inherited proxy_set_header lines in a block that sets any of its own, so
    # every location below lists all of them.
    proxy_http_version 1.1;

    server {{  # workers: /, /otel, /ws/channels/
        listen 127.0.0.1:{worker_tls} ssl;
        location / {{
            proxy_pass http://127.0.0.1:{worker_port};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            proxy_buffering off;
        }}
    }}
    server {{  # HTTP API
        listen 127.0.0.1:{api_tls} ssl;
        client_max_body_size 16m;
        location / {{
            proxy_pass http://127.0.0.1:{api_port};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_read_timeout 60s;
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
    server {{  # stream socket
        listen 127.0.0.1:{stream_tls} ssl;
        location / {{
            proxy_pass http://127.0.0.1:{stream_port};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            proxy_buffering off;
        }}
    }}
}}
"""


def _nginx_binary() -> str:
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )
    if binary is None:
        pytest.fail("nginx is not installed; install it with 'apt-get install -y nginx'")
    return binary


def _self_signed_cert(directory: Path) -> Path:
    """Write cert.pem/key.pem for 127.0.0.1 and localhost; return the certificate's path."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    openssl = shutil.which("openssl")
    if openssl is not None:
        subprocess.run(
            [
                openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout", str(key), "-out", str(cert),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        return cert
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        pytest.fail("neither openssl nor cryptography is available: apt-get install -y openssl")
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


@contextlib.contextmanager
def _nginx(tmp: Path, upstreams: dict[str, int]) -> Iterator[dict[str, int]]:
    """Run nginx in the foreground with everything under ``tmp`` (so any user can run it); yield
    its TLS ports."""
    ports = {"worker_tls": free_port(), "api_tls": free_port(), "stream_tls": free_port()}
    # As root the workers would drop to ``nobody``, which cannot enter pytest's 0700 tmp dirs.
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, tmp=tmp, **upstreams, **ports))
    log = tmp / "error.log"
    command = [_nginx_binary(), "-p", str(tmp), "-e", str(log), "-c", str(conf)]
    with (tmp / "nginx.out").open("wb") as out:
        proc = subprocess.Popen([*command, "-g", "daemon off;"], stdout=out, stderr=out)
    try:
        yield ports
        if proc.poll() is not None:
            raise AssertionError(f"nginx exited early ({proc.returncode}):\n{_logs(tmp)}")
    finally:
        stop_process(proc, 10)


def _logs(tmp: Path) -> str:
    return "".join(p.read_text() for p in (tmp / "nginx.out", tmp / "error.log") if p.exists())


async def _wait_for_nginx(tmp: Path, ports: dict[str, int]) -> None:
    def ready() -> bool:
        if "[emerg]" in _logs(tmp):
            raise AssertionError(f"nginx did not start:\n{_logs(tmp)}")
        return all(_accepts(p) for p in ports.values())

    await wait_until(ready, 15, "nginx to listen")


async def test_worker_http_and_stream_through_nginx_tls(
    engine_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert = _self_signed_cert(tmp_path)
    tls = ssl.create_default_context(cafile=str(cert))
    async with engine_factory(CONFIG) as engine:
        from iii_rest import RestApiModule
        from iii_stream import StreamModule

        rest = next(m for m in engine.modules if isinstance(m, RestApiModule))
        stream = next(m for m in engine.modules if isinstance(m, StreamModule))
        upstreams = {"worker_port": engine.port, "api_port": rest.port, "stream_port": stream.port}
        with _nginx(tmp_path, upstreams) as ports:
            await _wait_for_nginx(tmp_path, ports)

            # A browser-like stream subscriber, through nginx.
            subscriber = await websockets.connect(
                f"wss://127.0.0.1:{ports['stream_tls']}/", ssl=tls, open_timeout=10
            )
            join = {"subscriptionId": "s1", "streamName": "orders", "groupId": "tls"}
            await subscriber.send(json.dumps({"type": "join", "data": join}))
            synced = json.loads(await asyncio.wait_for(subscriber.recv(), 10))
            assert synced["event"]["type"] == "sync", synced

            # A worker, through nginx; its function answers HTTP and writes a stream item.
            worker = RawWorker(f"wss://127.0.0.1:{ports['worker_tls']}/")
            await worker.connect(ssl=tls, open_timeout=10)
            assert engine.workers.get(worker.worker_id) is not None
            seen: list[dict[str, Any]] = []

            async def hello(req: dict[str, Any]) -> dict[str, Any]:
                seen.append(req)
                name = req["query_params"]["name"]
                await worker.call(
                    "stream::set",
                    {
                        "stream_name": "orders",
                        "group_id": "tls",
                        "item_id": "o1",
                        "data": {"for": name},
                    },
                )
                return {"status_code": 200, "body": {"hello": name}}

            await worker.register_function("tls.hello", hello)
            await worker.register_trigger(
                "http", "tls.hello", {"api_path": "tls/hello", "http_method": "GET"}
            )

            async with httpx.AsyncClient(
                base_url=f"https://127.0.0.1:{ports['api_tls']}", verify=tls, timeout=10
            ) as client:
                # The trigger is registered asynchronously: poll until the route answers.
                deadline = asyncio.get_running_loop().time() + 10
                while True:
                    response = await client.get("/tls/hello", params={"name": "Ada"})
                    if response.status_code != 404:
                        break
                    assert asyncio.get_running_loop().time() < deadline, response.text
                    await asyncio.sleep(0.05)
            assert response.status_code == 200, response.text
            assert response.json() == {"hello": "Ada"}
            headers = seen[-1]["headers"]
            assert headers["x-forwarded-proto"] == "https"
            assert headers["x-forwarded-for"] == "127.0.0.1"

            envelope = json.loads(await asyncio.wait_for(subscriber.recv(), 10))
            assert envelope["streamName"] == "orders" and envelope["id"] == "o1", envelope
            assert envelope["event"]["type"] == "create"
            assert envelope["event"]["data"] == {"for": "Ada"}

            # This repo's SDK trusts the certificate through SSL_CERT_FILE, as the docs say.
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))
            async with iii_worker.connect(
                f"wss://127.0.0.1:{ports['worker_tls']}", connect_timeout=10
            ) as sdk_worker:
                got = await sdk_worker.call(
                    "stream::get",
                    {"stream_name": "orders", "group_id": "tls", "item_id": "o1"},
                    timeout=10,
                )
                assert got == {"for": "Ada"}

            await worker.close()
            await subscriber.close()
            await wait_until(lambda: len(engine.workers) == 0, 10, "the worker to disconnect")
