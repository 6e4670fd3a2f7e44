"""`kzoo serve` under load on 127.0.0.1, beside the model's own `predict` at batch 32 (issue 30).

- start-up: seconds from launching `kzoo serve` to the first answered `POST /predict`;
- load: `--clients` concurrent clients each sending single 32x32 PNGs to `/predict`, bounded (it
  stops by itself), from one of two generators on the same machine: `--generator wrk` (Debian's
  wrk, C, one thread, `--seconds` long) or `httpx` (asyncio + httpx in Python, `--requests` in all;
  on 2 cores this client costs the server more CPU than the server itself spends per request);
  throughput, latency percentiles, failed requests;
- peer: a separate process running `model.predict` on 32-image batches of the same checkpoint
  (images/s), before and after the load rounds; throughput ratio = served / median peer.
Rounds alternate peer and load (`--rounds`); medians.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/serve_load.py --checkpoint RUN/best.keras
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from throughput import cpu_model  # noqa: E402

PEER = """
import sys, time, numpy as np
from kzoo.training.api import load_checkpoint
model = load_checkpoint(sys.argv[1])
x = np.random.default_rng(0).uniform(0, 255, (32, 32, 32, 3)).astype("float32")
model.predict(x, batch_size=32, verbose=0)
runs, start = 0, time.perf_counter()
while time.perf_counter() - start < float(sys.argv[2]):
    model.predict(x, batch_size=32, verbose=0)
    runs += 1
print(32 * runs / (time.perf_counter() - start))
"""


def pngs(n: int) -> list[bytes]:
    from PIL import Image

    out = []
    for i in range(n):
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


async def load(url: str, clients: int, total: int, images: list[bytes]) -> dict:
    import httpx

    latencies, failures, sent = [], 0, 0

    async def client(c: httpx.AsyncClient):
        nonlocal failures, sent
        while sent < total:
            sent += 1
            data = images[sent % len(images)]
            start = time.perf_counter()
            try:
                r = await c.post(url, files={"images": ("x.png", data, "image/png")}, timeout=60)
                ok = r.status_code == 200 and r.json()["results"][0]["predictions"]
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - start)
            failures += not ok

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits) as c:
        start = time.perf_counter()
        await asyncio.gather(*(client(c) for _ in range(clients)))
        wall = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {"requests": len(latencies), "failed": failures, "seconds": round(wall, 2),
            "images_per_s": len(latencies) / wall, "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "p99_ms": float(np.percentile(ms, 99))}


WRK_SCRIPT = """
local f = io.open("%s", "rb")
wrk.method, wrk.body = "POST", f:read("*all")
f:close()
wrk.headers["Content-Type"] = "multipart/form-data; boundary=%s"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("KZOO %%d %%d %%d %%.1f %%.1f %%.1f\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout, latency:percentile(50), latency:percentile(95),
    latency:percentile(99)))
end
"""


def wrk(url: str, clients: int, seconds: float, image: bytes, out: str) -> dict:
    boundary = "kzooLoadBoundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="x.png"\r\n'
            f"Content-Type: image/png\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    body_path, script = os.path.join(out, "body.bin"), os.path.join(out, "post.lua")
    with open(body_path, "wb") as f:
        f.write(body)
    with open(script, "w") as f:
        f.write(WRK_SCRIPT % (body_path, boundary))
    text = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "-s", script, url], check=True,
                          capture_output=True, text=True).stdout
    requests, micros, failed, p50, p95, p99 = next(line for line in text.splitlines() if line.startswith("KZOO")).split()[1:]
    return {"requests": int(requests), "failed": int(failed), "seconds": int(micros) / 1e6,
            "images_per_s": int(requests) / (int(micros) / 1e6), "p50_ms": float(p50) / 1000,
            "p95_ms": float(p95) / 1000, "p99_ms": float(p99) / 1000}


def main() -> None:
    import httpx

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=None, help="default: a random-init airbench94 (10 classes)")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--peer-seconds", type=float, default=20)
    p.add_argument("--out", default="/tmp/kzoo-serve-load")
    p.add_argument("--generator", choices=("wrk", "httpx"), default="wrk")
    p.add_argument("--seconds", type=float, default=20, help="length of a wrk round")
    p.add_argument("--serve-flags", default="", help="extra kzoo serve flags, e.g. '--max-wait-ms 20'")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    ckpt = args.checkpoint
    if ckpt is None:
        ckpt = os.path.join(args.out, "best.keras")
        subprocess.run([sys.executable, "-c", "import keras, kzoo; keras.utils.set_random_seed(0); "
                        f"kzoo.create_model('airbench94', num_classes=10).save({ckpt!r})"], check=True, env=env)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/predict"
    images = pngs(64)
    peers, rounds = [], []
    peers.append(float(subprocess.run([sys.executable, "-c", PEER, ckpt, str(args.peer_seconds)], env=env,
                                      check=True, capture_output=True, text=True).stdout.split()[-1]))
    launched = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "kzoo.cli", "-q", "serve", "--checkpoint", ckpt, "--port",
                               str(port), *args.serve_flags.split()], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while True:
            try:
                if httpx.post(url, files={"images": ("x.png", images[0])}, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
            if server.poll() is not None:
                raise SystemExit(server.stderr.read().decode()[-2000:])
        startup = time.perf_counter() - launched
        for r in range(args.rounds):
            rounds.append(wrk(url, args.clients, args.seconds, images[0], args.out) if args.generator == "wrk"
                          else asyncio.run(load(url, args.clients, args.requests, images)))
            print(f"round {r + 1}: {rounds[-1]}", file=sys.stderr, flush=True)
            if r + 1 < args.rounds:  # the peer between load rounds runs with the server idle
                peers.append(float(subprocess.run([sys.executable, "-c", PEER, ckpt, str(args.peer_seconds)], env=env,
                                                  check=True, capture_output=True, text=True).stdout.split()[-1]))
        health = httpx.get(url.replace("/predict", "/health"), timeout=5).json()
    finally:
        server.terminate()
        server.wait(timeout=30)
    peers.append(float(subprocess.run([sys.executable, "-c", PEER, ckpt, str(args.peer_seconds)], env=env,
                                      check=True, capture_output=True, text=True).stdout.split()[-1]))
    served = statistics.median(r["images_per_s"] for r in rounds)
    peer = statistics.median(peers)
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": cpu_model(), "cpus": os.cpu_count(), "checkpoint": ckpt,
              "clients": args.clients, "requests_per_round": args.requests, "startup_s": round(startup, 2),
              "rounds": rounds, "peer_predict_images_per_s": peers, "served_median": served, "peer_median": peer,
              "ratio": served / peer, "mean_batch": health["images"] / max(1, health["model_calls"]),
              "failed": sum(r["failed"] for r in rounds), "generator": args.generator, "command": " ".join(sys.argv)}
    with open(os.path.join(args.out, "serve_load.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"{result['date']} UTC, {result['cpu']}, {result['cpus']} CPUs, TF backend, float32, {args.clients} clients, "
          f"load from {args.generator}")
    print(f"start-up to first answer: {startup:.1f} s")
    print("| round | requests | failed | img/s | p50 ms | p95 ms | p99 ms |\n|---:|---:|---:|---:|---:|---:|---:|")
    for i, r in enumerate(rounds, 1):
        print(f"| {i} | {r['requests']} | {r['failed']} | {r['images_per_s']:.0f} | {r['p50_ms']:.0f} | "
              f"{r['p95_ms']:.0f} | {r['p99_ms']:.0f} |")
    print(f"model.predict at batch 32 (peer, {len(peers)} runs): {', '.join(f'{v:.0f}' for v in peers)} img/s; "
          f"served / predict = {served / peer:.2f}x; mean model batch {result['mean_batch']:.1f}")


if __name__ == "__main__":
    main()
