"""Load benchmark of ``rankstack serve`` against a plain sentence-transformers endpoint (issue 18, "Show").

    HF_HUB_OFFLINE=1 python benchmarks/serve_load.py run                      # the whole benchmark
    HF_HUB_OFFLINE=1 python benchmarks/serve_load.py run --servers peer-default --probe 3 --duration 5
    HF_HUB_OFFLINE=1 python benchmarks/serve_load.py load --url http://127.0.0.1:8080 --rate 4 --duration 10

Workload: SciFact test claims (``data/scifact/queries.jsonl``, the 300 with test qrels), each with its BM25
top-20 (``rankstack.index.BM25Index``, title + text, k1=0.9 b=0.4) as the passages: one request =
one claim and 20 abstracts (TEI shape ``{"query", "texts"}``), request i uses claim i mod 300. Every
server gets the same request sequence.

Load: a bounded open-loop asyncio client (httpx.AsyncClient, one event loop, keep-alive connections,
at most ``--inflight`` requests outstanding -- a request that would exceed it is counted as a
failure, never queued in the client). Requests are sent at fixed intervals 1/R for D seconds;
latency runs from a request's *scheduled* send time to its full answer (a client that falls behind
is charged to the server: no coordinated omission). A request fails if it is not a 200 carrying 20
ranked indices, or takes longer than ``--timeout``.

A rate is *held* when the run has 0 failures, p99 <= ``--p99-bound`` (2 s by default), and the
latency does not drift up (median of the last third <= 1.5 x median of the first third + 0.1 s:
a queue that keeps growing). Search per server: sequential service time S (median of 5 requests one
at a time, after 3 to warm up; a server whose S is over the bound holds no rate and is not searched), probes of ``--probe`` seconds from R = 0.5/S doubling until one fails, then bisection
(geometric) until hi/lo <= 1.08 or 4 steps, then a ``--duration`` (30 s) confirmation at the best
held rate (10 % lower, up to 3 times, if it is not held). The result is the confirmed rate with
its p50/p99.

Overload (rankstack only, ``--overload``): 5 x its confirmed rate for 20 s (status counts: 200 /
429 / other; 5xx must be 0), the server's RSS sampled from /proc every 0.2 s throughout, then at
once (when the burst's last request is sent) a recovery probe at 0.5 x the confirmed rate for 30 s:
its latencies by send time, and when the first request within 1.5 x the normal p50 was sent.

Machine use: the server runs under ``taskset -c 0`` with OMP_NUM_THREADS=MKL_NUM_THREADS=
RAYON_NUM_THREADS=1 and each runtime told 1 thread; this client pins itself to core 1
(``--server-cpu`` / ``--client-cpu``). Servers are started one after another by this script and
stopped (SIGTERM) after their runs.

Servers (``--servers``, comma-separated):

* ``rankstack``      -- ``rankstack serve --reranker cross-encoder --model M --backend onnx -O quantize=int8
  -O threads=1 --embed-model none`` (``python -m rankstack.interfaces.service.command`` when the
  ``rankstack serve`` command is not registered), micro-batching at its defaults unless
  ``--rankstack-args`` adds options.
* ``peer-default``, ``peer-bf16``, ``peer-onnx``, ``peer-onnx-int8`` -- benchmarks/serve_peer.py
  (sentence-transformers ``CrossEncoder.predict`` per request) in that configuration, the ONNX ones
  with ``--peer-site`` ahead on PYTHONPATH (see serve_peer.py).

The model (``--model``): default ``rankstack/ce-minilm-scifact`` if ``rankstack models`` has it complete,
else a MiniLM-L6 cross-encoder with a seeded random head (``rankstack.testing.random_head_cross_encoder``:
same architecture, same cost) copied to a fixed directory. The same directory goes to every server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
WORK = Path(os.environ.get("RSBENCH_DIR", "/tmp/rsbench"))
PASSAGES = 20
SERVERS = ("rankstack", "peer-default", "peer-bf16", "peer-onnx", "peer-onnx-int8")
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1",
              "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def log(*a: Any) -> None:
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# workload
# ----------------------------------------------------------------------------------------------


def workload(k: int = PASSAGES) -> list[dict[str, Any]]:
    """One request body per SciFact test claim: the claim and its BM25 top-k passages (cached)."""
    cache = WORK / f"scifact-test-bm25top{k}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    from rankstack.data.records import Document
    from rankstack.index.bm25 import BM25Index

    data = ROOT / "data" / "scifact"
    docs = [json.loads(line) for line in open(data / "corpus.jsonl")]
    recs = [Document(d["_id"], d.get("text", ""), title=d.get("title", "")) for d in docs]
    by_id = {d.id: d for d in recs}
    idx = BM25Index.build(recs, progress=False)
    test = {line.split("\t")[0] for line in open(data / "qrels" / "test.tsv").read().splitlines()[1:] if line}
    qs = [json.loads(line) for line in open(data / "queries.jsonl")]
    out = []
    for q in qs:
        if q["_id"] in test:
            hits = idx.search(q["text"], k=k)
            out.append({"query": q["text"], "texts": [by_id[d].contents for d, _ in hits]})
    WORK.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out))
    return out


def default_model() -> str:
    """The shipped SciFact cross-encoder if it is there, else the random-head MiniLM-L6 stand-in."""
    try:
        from rankstack import catalog

        for m in catalog.shipped():
            if m.name == "rankstack/ce-minilm-scifact" and m.complete:
                return str(m.path)
    except Exception:  # noqa: BLE001 - no catalogue yet
        pass
    d = WORK / "minilm-ce-random-head"
    if not (d / "model.safetensors").is_file():
        import shutil

        from rankstack.testing import random_head_cross_encoder

        src = random_head_cross_encoder()
        shutil.copytree(src, d, dirs_exist_ok=True)
    return str(d)


# ----------------------------------------------------------------------------------------------
# the load client
# ----------------------------------------------------------------------------------------------


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    i = min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))  # nearest-rank
    return s[i]


@dataclass
class RunResult:
    rate: float
    duration: float
    sent: list[float] = field(default_factory=list)  # scheduled send offsets (s)
    latency: list[float] = field(default_factory=list)  # s, from scheduled send
    status: list[str] = field(default_factory=list)
    wall: float = 0.0  # first scheduled send to last answer

    @property
    def n(self) -> int:
        return len(self.status)

    def ok_lat(self) -> list[float]:
        return [x for x, s in zip(self.latency, self.status) if s == "200"]

    def counts(self) -> dict[str, int]:
        c: dict[str, int] = {}
        for s in self.status:
            c[s] = c.get(s, 0) + 1
        return dict(sorted(c.items()))

    def failures(self, allowed: tuple[str, ...] = ("200",)) -> int:
        return sum(1 for s in self.status if s not in allowed)

    def drift(self) -> tuple[float, float]:
        """Median latency of the first and the last third of the run (by send time)."""
        n = self.n
        if n < 6:
            return (float("nan"), float("nan"))
        order = sorted(range(n), key=lambda i: self.sent[i])
        a = [self.latency[i] for i in order[: n // 3]]
        b = [self.latency[i] for i in order[-(n // 3):]]
        return statistics.median(a), statistics.median(b)

    def summary(self) -> dict[str, Any]:
        lat = self.ok_lat()
        first, last = self.drift()
        return {"rate": round(self.rate, 3), "duration": self.duration, "requests": self.n,
                "statuses": self.counts(), "failures": self.failures(),
                "p50": round(pct(lat, 50), 4), "p90": round(pct(lat, 90), 4), "p99": round(pct(lat, 99), 4),
                "max": round(max(lat), 4) if lat else None,
                "throughput_rps": round(len(lat) / self.wall, 3) if self.wall else None,
                "median_first_third": round(first, 4), "median_last_third": round(last, 4)}


def held(res: RunResult, bound: float) -> tuple[bool, str]:
    if res.failures():
        return False, f"{res.failures()} failures {res.counts()}"
    p99 = pct(res.ok_lat(), 99)
    if not p99 <= bound:
        return False, f"p99 {p99:.3f} s > {bound} s"
    a, b = res.drift()
    if b > 1.5 * a + 0.1:
        return False, f"latency drifts up (median {a:.3f} -> {b:.3f} s)"
    return True, f"p50 {pct(res.ok_lat(), 50):.3f} p99 {p99:.3f}"


class Client:
    def __init__(self, url: str, bodies: list[bytes], inflight: int = 512, timeout: float = 60.0):
        import httpx

        self.url = url.rstrip("/") + "/rerank"
        self.base = url.rstrip("/")
        self.bodies = bodies
        self.inflight_cap = inflight
        self.timeout = timeout
        self.http = httpx.AsyncClient(limits=httpx.Limits(max_connections=inflight,
                                                          max_keepalive_connections=inflight),
                                      timeout=httpx.Timeout(timeout, connect=10.0))
        self.inflight = 0
        self.cursor = 0  # the next body (the request sequence continues across runs)

    async def close(self) -> None:
        await self.http.aclose()

    async def one(self, body: bytes) -> tuple[str, Any]:
        try:
            r = await self.http.post(self.url, content=body, headers={"content-type": "application/json"})
        except Exception as e:  # noqa: BLE001 - timeouts, resets: failures of this request
            return type(e).__name__, None
        if r.status_code != 200:
            return str(r.status_code), None
        try:
            out = r.json()
            ok = isinstance(out, list) and sorted(int(x["index"]) for x in out) == list(range(PASSAGES))
        except Exception:  # noqa: BLE001
            ok = False
        return ("200" if ok else "bad-body"), None

    async def sequential(self, n: int) -> list[float]:
        lat = []
        for _ in range(n):
            t = time.perf_counter()
            s, _ = await self.one(self.bodies[self.cursor % len(self.bodies)])
            self.cursor += 1
            if s != "200":
                raise RuntimeError(f"sequential request failed: {s}")
            lat.append(time.perf_counter() - t)
        return lat

    async def run(self, rate: float, duration: float, on_start: Any = None) -> RunResult:
        loop = asyncio.get_running_loop()
        n = max(1, int(round(rate * duration)))
        res = RunResult(rate, duration)
        res.sent, res.latency, res.status = [0.0] * n, [0.0] * n, [""] * n
        t0 = loop.time() + 0.02
        last = [t0]

        async def fire(i: int, t_sched: float, body: bytes) -> None:
            self.inflight += 1
            try:
                s, _ = await self.one(body)
            finally:
                self.inflight -= 1
            now = loop.time()
            res.latency[i], res.status[i] = now - t_sched, s
            last[0] = max(last[0], now)

        tasks = []
        for i in range(n):
            t_sched = t0 + i / rate
            delay = t_sched - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            res.sent[i] = t_sched - t0
            body = self.bodies[self.cursor % len(self.bodies)]
            self.cursor += 1
            if self.inflight >= self.inflight_cap:
                res.status[i], res.latency[i] = "client-cap", 0.0
                continue
            tasks.append(asyncio.ensure_future(fire(i, t_sched, body)))
        if on_start is not None:  # called when the last request has been sent
            on_start()
        await asyncio.gather(*tasks)
        res.wall = last[0] - t0
        return res

    async def metrics(self) -> str:
        try:
            r = await self.http.get(self.base + "/metrics", timeout=5.0)
            return r.text if r.status_code == 200 else ""
        except Exception:  # noqa: BLE001
            return ""


# ----------------------------------------------------------------------------------------------
# servers
# ----------------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float | None:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _rankstack_serve_registered(py: str) -> bool:
    r = subprocess.run([py, "-m", "rankstack.interfaces.cli", "serve", "--help"], capture_output=True, text=True,
                       env={**os.environ, **THREAD_ENV}, timeout=120)
    return r.returncode == 0 and "--reranker" in r.stdout


def server_command(name: str, model: str, port: int, args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    py = sys.executable
    env = dict(THREAD_ENV)
    if name == "rankstack":
        if args.rankstack_cmd == "auto":
            args.rankstack_cmd = "cli" if _rankstack_serve_registered(py) else "module"
            log(f"rankstack serve through: {args.rankstack_cmd}")
        head = ([py, "-m", "rankstack.interfaces.cli", "serve"] if args.rankstack_cmd == "cli"
                else [py, "-m", "rankstack.interfaces.service.command"])
        cmd = head + ["--reranker", "cross-encoder", "--model", model, "--backend", args.rankstack_backend,
                      "-O", "threads=1", "--embed-model", "none", "--host", "127.0.0.1", "--port", str(port),
                      "--log-level", "warning"]
        if args.rankstack_quantize != "none":
            cmd += ["-O", f"quantize={args.rankstack_quantize}"]
        if args.max_length:
            cmd += ["-O", f"max_length={args.max_length}"]
        cmd += args.rankstack_args.split() if args.rankstack_args else []
    elif name.startswith("peer-"):
        config = name[len("peer-"):]
        cmd = [py, str(ROOT / "benchmarks" / "serve_peer.py"), "--model", model, "--config", config,
               "--port", str(port), "--threads", "1", "--dispatch", args.peer_dispatch]
        if args.max_length:
            cmd += ["--max-length", str(args.max_length)]
        if config.startswith("onnx"):
            site = Path(args.peer_site)
            if not (site / "optimum").is_dir():
                raise RuntimeError(f"{name} needs optimum-onnx under --peer-site {site} (see serve_peer.py)")
            env["PYTHONPATH"] = str(site)
    else:
        raise ValueError(name)
    return ["taskset", "-c", str(args.server_cpu)] + cmd, env


_LIVE: list[Server] = []  # stopped by main() whatever happens (SIGTERM, Ctrl-C, a crash)


class Server:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int):
        self.name, self.cmd, self.port = name, cmd, port
        WORK.mkdir(parents=True, exist_ok=True)
        (WORK / "logs").mkdir(exist_ok=True)
        self.log_path = WORK / "logs" / f"{name}.log"
        full_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        full_env.update(env)
        self.logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT,
                                     start_new_session=True)
        self.rss: list[tuple[float, float]] = []
        self.health: dict[str, Any] = {}
        _LIVE.append(self)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_ready(self, timeout: float = 600.0) -> float:
        import httpx

        t = time.time()
        async with httpx.AsyncClient() as c:
            while time.time() - t < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see {self.log_path}")
                try:
                    r = await c.get(self.url + "/health", timeout=2.0)
                    if r.status_code == 200:
                        self.health = r.json()
                        return time.time() - t
                except Exception:  # noqa: BLE001 - not up yet
                    pass
                await asyncio.sleep(0.5)
        raise RuntimeError(f"{self.name} not ready after {timeout} s; see {self.log_path}")

    async def sample_rss(self, stop: asyncio.Event, every: float = 0.2) -> None:
        t0 = time.time()
        while not stop.is_set():
            m = rss_mb(self.proc.pid)
            if m is not None:
                self.rss.append((time.time() - t0, m))
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                pass

    def stop(self) -> int | None:
        if self in _LIVE:
            _LIVE.remove(self)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.logf.close()
        return self.proc.returncode


# ----------------------------------------------------------------------------------------------
# search and the benchmark
# ----------------------------------------------------------------------------------------------


async def search_rate(client: Client, args: argparse.Namespace, record: dict[str, Any]) -> float | None:
    await client.sequential(1)  # warm (a first request may load lazily: tokenizers, ONNX sessions)
    first = (await client.sequential(1))[0]
    if first > 2 * args.p99_bound:  # a slow path (bf16 without AVX512-BF16): no rate can be held
        record["sequential_latency_s"] = round(first, 4)
        record["skipped"] = f"one request alone takes {first:.1f} s > 2 x the p99 bound; no rate can be held"
        log(f"  {record['skipped']}")
        return None
    await client.sequential(1)
    seq = await client.sequential(5)
    S = statistics.median(seq)
    record["sequential_latency_s"] = round(S, 4)
    log(f"  sequential service time {S:.3f} s (1 request at a time: {1 / S:.2f} req/s)")
    if S > args.p99_bound:
        record["skipped"] = f"one request alone takes {S:.2f} s > the p99 bound {args.p99_bound} s"
        log(f"  {record['skipped']}")
        return None
    probes = record.setdefault("probes", [])

    async def probe(r: float, d: float) -> bool:
        res = await client.run(r, d)
        ok, why = held(res, args.p99_bound)
        probes.append({**res.summary(), "held": ok})
        log(f"  {d:4.0f} s at {r:7.3f} req/s: {'held' if ok else 'NOT held'} ({why})")
        await asyncio.sleep(1.0)
        return ok

    lo, hi = None, None
    if args.rate:  # no search: confirm the given rate (e.g. to rerun the overload with other options)
        lo = args.rate
    r = max(0.05, 0.5 / S)
    for _ in range(0 if lo else 8):
        if await probe(r, args.probe):
            lo = r
            r *= 2
        else:
            hi = r
            break
    if lo is None:  # even 0.5/S was not held: halve
        for _ in range(3):
            r /= 2
            if await probe(r, args.probe):
                lo = r
                break
            hi = r
        if lo is None:
            return None
    if hi is not None:
        for _ in range(4):
            if hi / lo <= 1.08:
                break
            mid = math.sqrt(lo * hi)
            if await probe(mid, args.probe):
                lo = mid
            else:
                hi = mid
    confirms = record.setdefault("confirm", [])
    for _ in range(3):
        res = await client.run(lo, args.duration)
        ok, why = held(res, args.p99_bound)
        confirms.append({**res.summary(), "held": ok})
        log(f"  confirm {args.duration:.0f} s at {lo:.3f} req/s: {'held' if ok else 'NOT held'} ({why})")
        await asyncio.sleep(1.0)
        if ok:
            record["sustained"] = confirms[-1]
            return lo
        lo *= 0.9
    return None


async def overload(client: Client, server: Server, rate: float, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"rate": round(args.overload_factor * rate, 3), "duration": args.overload_seconds}
    n0 = len(server.rss)
    rss_before = server.rss[-1][1] if server.rss else None
    recovery: dict[str, Any] = {}
    started = asyncio.Event()

    async def recover() -> RunResult:
        await started.wait()
        return await client.run(args.recovery_factor * rate, args.recovery_seconds)

    rec_task = asyncio.ensure_future(recover())
    burst = await client.run(args.overload_factor * rate, args.overload_seconds, on_start=started.set)
    rec = await rec_task
    counts = burst.counts()
    five = sum(v for k, v in counts.items() if k.startswith("5"))
    rss_burst = [m for _, m in server.rss[n0:]]
    out.update(statuses=counts, server_5xx=five, ok=counts.get("200", 0), rejected_429=counts.get("429", 0),
               ok_p50=round(pct(burst.ok_lat(), 50), 4), ok_p99=round(pct(burst.ok_lat(), 99), 4),
               ok_max=round(max(burst.ok_lat()), 4) if burst.ok_lat() else None,
               rss_before_mb=round(rss_before, 1) if rss_before else None,
               rss_max_mb=round(max(rss_burst), 1) if rss_burst else None,
               alive=server.proc.poll() is None)
    normal_p50 = args._normal_p50
    sent_ok = sorted((s, lat) for s, lat, st in zip(rec.sent, rec.latency, rec.status) if st == "200")
    back = next((s for s, lat in sent_ok if lat <= 1.5 * normal_p50), None)
    last5 = [lat for s, lat in sent_ok if s >= args.recovery_seconds - 5]
    recovery = {**rec.summary(), "normal_p50": round(normal_p50, 4),
                "first_normal_latency_sent_at_s": None if back is None else round(back, 3),
                "p50_last_5s": round(statistics.median(last5), 4) if last5 else None,
                "timeline": [[round(s, 2), round(lat, 3)] for s, lat in sent_ok]}
    out["recovery"] = recovery
    m = await client.metrics()
    out["metrics_rejected"] = [line for line in m.splitlines() if "rejected" in line and not line.startswith("#")]
    return out


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    model = args.model or default_model()
    bodies = [json.dumps({"query": b["query"], "texts": b["texts"]}).encode() for b in workload()]
    ntok = None
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model)
        tok.model_max_length = int(1e12)
        lens = [len(x) for b in workload()[:50] for x in tok([b["query"]] * PASSAGES, b["texts"])["input_ids"]]
        ntok = {"mean_pair_tokens_untruncated": round(statistics.mean(lens), 1), "max": max(lens),
                "share_over_512": round(sum(x > 512 for x in lens) / len(lens), 3)}
    except Exception:  # noqa: BLE001
        pass
    os.sched_setaffinity(0, {args.client_cpu})
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "model": model,
        "load_before": os.getloadavg(), "server_cpu": args.server_cpu, "client_cpu": args.client_cpu,
        "p99_bound_s": args.p99_bound, "probe_s": args.probe, "duration_s": args.duration,
        "passages_per_request": PASSAGES, "requests_in_sequence": len(bodies), "pair_tokens": ntok,
        "max_length": args.max_length, "servers": {}}
    log(f"model {model}; {len(bodies)} request bodies; load {os.getloadavg()}")
    for k, name in enumerate(args.servers.split(",")):
        name = name.strip()
        port = args.port + k
        cmd, env = server_command(name, model, port, args)
        log(f"{name}: {' '.join(cmd)}")
        rec: dict[str, Any] = {"command": " ".join(cmd), "env": env, "load_at_start": os.getloadavg()}
        report["servers"][name] = rec
        server = Server(name, cmd, env, port)
        stop = asyncio.Event()
        sampler = None
        client = Client(server.url, bodies, inflight=args.inflight, timeout=args.timeout)
        try:
            rec["startup_s"] = round(await server.wait_ready(), 1)
            rec["health"] = server.health
            rec["rss_idle_mb"] = round(rss_mb(server.proc.pid) or 0, 1)
            sampler = asyncio.ensure_future(server.sample_rss(stop))
            rate = await search_rate(client, args, rec)
            rec["sustained_rate"] = None if rate is None else round(rate, 3)
            if rate is not None:
                s = rec["sustained"]
                rec["sustained_pairs_per_s"] = round(rate * PASSAGES, 2)
                log(f"  {name}: {rate:.3f} req/s = {rate * PASSAGES:.1f} pairs/s, p50 {s['p50']:.3f} s, "
                    f"p99 {s['p99']:.3f} s")
            rec["rss_max_normal_mb"] = round(max((m for _, m in server.rss), default=0), 1)
            if args.overload and name == "rankstack" and rate is not None:
                args._normal_p50 = rec["sustained"]["p50"]
                rec["overload"] = await overload(client, server, rate, args)
                o = rec["overload"]
                log(f"  overload {o['rate']} req/s: {o['statuses']}, RSS {o['rss_before_mb']} -> max "
                    f"{o['rss_max_mb']} MB, alive {o['alive']}; recovery p50 {o['recovery']['p50']} "
                    f"p99 {o['recovery']['p99']}, normal latency from t={o['recovery']['first_normal_latency_sent_at_s']} s")
        except Exception as e:  # noqa: BLE001 - record and go on with the next server
            rec["error"] = f"{type(e).__name__}: {e}"
            log(f"  {name}: {rec['error']}")
        finally:
            stop.set()
            if sampler is not None:
                await sampler
            await client.close()
            rec["alive_at_end"] = server.proc.poll() is None
            rec["exit_code"] = server.stop()
            rec["rss_samples"] = len(server.rss)
            rec["load_at_end"] = os.getloadavg()
        await asyncio.sleep(2.0)
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    report["load_after"] = os.getloadavg()
    return report


def table(report: dict[str, Any]) -> str:
    rows = ["| server | sustained rate (req/s) | pairs/s | p50 (s) | p99 (s) | sequential latency (s) | "
            "RSS idle / max (MB) | x rankstack vs this |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    rs = (report["servers"].get("rankstack") or {}).get("sustained_rate")
    for name, r in report["servers"].items():
        rate = r.get("sustained_rate")
        s = r.get("sustained") or {}
        ratio = f"{rs / rate:.2f}" if (rs and rate and name != "rankstack") else ""
        none = "none held" + (" (one request > bound)" if r.get("skipped") else "")
        rows.append(f"| {name} | {rate if rate is not None else none} | "
                    f"{r.get('sustained_pairs_per_s', '')} | {s.get('p50', '')} | {s.get('p99', '')} | "
                    f"{r.get('sequential_latency_s', '')} | {r.get('rss_idle_mb', '')} / {r.get('rss_max_normal_mb', '')} "
                    f"| {ratio} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="start each server, find its sustainable rate, (rankstack) overload it")
    r.add_argument("--servers", default=",".join(SERVERS))
    r.add_argument("--model", default=None, help="a cross-encoder directory (default: see the module doc)")
    r.add_argument("--max-length", type=int, default=192, help="pair max_length for every server (192: the shipped model's recipe; 0: the model's own)")
    r.add_argument("--duration", type=float, default=30.0, help="confirmation run (s)")
    r.add_argument("--probe", type=float, default=8.0, help="search probes (s)")
    r.add_argument("--p99-bound", type=float, default=2.0)
    r.add_argument("--timeout", type=float, default=60.0, help="a request's client timeout (s)")
    r.add_argument("--inflight", type=int, default=512, help="requests outstanding at most (client bound)")
    r.add_argument("--overload", action=argparse.BooleanOptionalAction, default=True)
    r.add_argument("--overload-factor", type=float, default=5.0)
    r.add_argument("--overload-seconds", type=float, default=20.0)
    r.add_argument("--recovery-factor", type=float, default=0.5)
    r.add_argument("--recovery-seconds", type=float, default=30.0)
    r.add_argument("--rate", type=float, default=None, help="skip the search: confirm this rate (req/s)")
    r.add_argument("--port", type=int, default=8190)
    r.add_argument("--server-cpu", type=int, default=0)
    r.add_argument("--client-cpu", type=int, default=1)
    r.add_argument("--rankstack-cmd", choices=("auto", "cli", "module"), default="auto")
    r.add_argument("--rankstack-backend", default="onnx")
    r.add_argument("--rankstack-quantize", default="int8", help="int8 or none")
    r.add_argument("--rankstack-args", default="", help="more rankstack serve options, e.g. '--max-wait-ms 10'")
    r.add_argument("--peer-dispatch", choices=("threadpool", "serial"), default="threadpool")
    r.add_argument("--peer-site", default="/tmp/peer-site", help="optimum-onnx stack for the peer's ONNX configs")
    r.add_argument("--out", type=Path, default=None, help="JSON report (default: $RSBENCH_DIR/serve_load-TIME.json)")
    lo = sub.add_parser("load", help="one open-loop run against a running server")
    lo.add_argument("--url", required=True)
    lo.add_argument("--rate", type=float, required=True)
    lo.add_argument("--duration", type=float, default=10.0)
    lo.add_argument("--inflight", type=int, default=512)
    lo.add_argument("--timeout", type=float, default=60.0)
    lo.add_argument("--client-cpu", type=int, default=None)
    args = ap.parse_args(argv)

    if args.cmd == "load":
        if args.client_cpu is not None:
            os.sched_setaffinity(0, {args.client_cpu})
        bodies = [json.dumps(b).encode() for b in workload()]

        async def go() -> dict[str, Any]:
            c = Client(args.url, bodies, args.inflight, args.timeout)
            try:
                return (await c.run(args.rate, args.duration)).summary()
            finally:
                await c.close()

        print(json.dumps(asyncio.run(go()), indent=1))
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        report = asyncio.run(bench(args))
    finally:
        for srv in _LIVE:
            srv.stop()
    out = args.out or WORK / f"serve_load-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print(table(report))
    rs = report["servers"].get("rankstack", {})
    if "overload" in rs:
        o = rs["overload"]
        print(f"\noverload {o['rate']} req/s for {o['duration']} s: {o['statuses']}; 5xx {o['server_5xx']}; "
              f"alive {o['alive']}; RSS {o['rss_before_mb']} -> max {o['rss_max_mb']} MB; recovery "
              f"{json.dumps({k: v for k, v in o['recovery'].items() if k != 'timeline'})}")
    print(f"\nreport: {out}")


if __name__ == "__main__":
    main()
