"""Sign-in under a flood of bad passwords: does an unrelated request starve?

    python bench/sign_in.py                    # 16 concurrent bad sign-ins, 10 s per setting
    python bench/sign_in.py --flood 32 --seconds 20

For each setting of the password gate (accounts.password_hash_concurrency / password_hash_queue) it starts a
fresh node (`creditnode serve`, SQLite, on a free port of 127.0.0.1) with the per-client sign-in limit lifted,
runs --flood threads that sign in with wrong passwords under names that never repeat (so no lockout stops
them), and meanwhile times an unrelated plain-`def` GET (the DID document) once every 100 ms. It prints the
GET's median, 95th percentile and maximum latency, and how the sign-ins were answered (401 wrong password,
429 refused by the gate). Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(setting: dict[str, str], *, flood: int, seconds: float) -> None:
    from node.cli import initialise_node

    with tempfile.TemporaryDirectory(prefix="bench-sign-in-") as tmp:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITNODE_")}
        saved = dict(os.environ)
        try:
            config, _password = initialise_node(region="shanghai", data_dir=Path(tmp),
                                                base_url=f"http://127.0.0.1:{port}")
        finally:
            os.environ.clear()
            os.environ.update(saved)
        env.update({"CREDITNODE_CONFIG": str(config), "CREDITNODE_RATELIMIT__SIGN_IN": "1000000/minute",
                    **{f"CREDITNODE_ACCOUNTS__{k.upper()}": v for k, v in setting.items()}})
        server = subprocess.Popen([sys.executable, "-c", "from node.cli import app; app()", "serve", "--port",
                                   str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(timeout=60, trust_env=False) as http:
                for _ in range(200):
                    try:
                        if http.get(base + "/.well-known/did.json").status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.1)
                stop = threading.Event()
                answers: Counter[int] = Counter()

                def attack() -> None:
                    with httpx.Client(timeout=60, trust_env=False) as own:
                        while not stop.is_set():
                            r = own.post(base + "/api/v1/auth/token",
                                         data={"username": f"nobody-{uuid.uuid4().hex}", "password": "wrong-1234"})
                            answers[r.status_code] += 1

                threads = [threading.Thread(target=attack) for _ in range(flood)]
                for t in threads:
                    t.start()
                latencies = []
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    t0 = time.perf_counter()
                    http.get(base + "/.well-known/did.json")
                    latencies.append(time.perf_counter() - t0)
                    time.sleep(0.1)
                stop.set()
                for t in threads:
                    t.join()
        finally:
            server.terminate()
            server.wait(timeout=10)
    latencies.sort()
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    label = ", ".join(f"{k}={v}" for k, v in setting.items())
    print(f"{label:55} GET median {statistics.median(latencies) * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms  "
          f"max {latencies[-1] * 1000:7.1f} ms  sign-ins {dict(sorted(answers.items()))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flood", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"{args.flood} concurrent bad sign-ins, {args.seconds:.0f} s each; {os.cpu_count()} cores")
    for setting in ({"password_hash_concurrency": "2", "password_hash_queue": "8"},
                    {"password_hash_concurrency": "64", "password_hash_queue": "64"}):
        run(setting, flood=args.flood, seconds=args.seconds)


if __name__ == "__main__":
    main()
