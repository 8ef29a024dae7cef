"""`tunelab api` under concurrent load, with the official `openai` client against a real server.

    python benchmarks/api_load.py --quick                  # 100 concurrent requests, serial vs batched
    python benchmarks/api_load.py                          # 100 and 1,000 concurrent requests
    python benchmarks/api_load.py --model smollm2 --template tokenizer --counts 100

For each server setting (`--max-batch-size 1`, i.e. one request at a time as the server was before
batching, then `--batch-size`), one `tunelab api` process is started on 127.0.0.1 (a free port) and
every count of concurrent requests is sent at once from an asyncio client: half of them stream, a
share (`--abandon`) are streams closed after their second chunk (each asked for 400 tokens, so an
abandoned request that kept generating would show in the throughput and the latencies). Each reply
is compared with the sequential greedy reply to the same prompt and max_tokens, taken one request at
a time from the serial server first. Reported per setting: errors (other than deliberate 429s),
429s, mismatches, p50/p95/p99 latency of the answered requests, and completion tokens/s over the
wall time of the whole burst. Everything stays on loopback; each burst is bounded by --time-limit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
KEY = "bench-key"
TOPICS = ["learning rates", "LoRA rank", "gradient clipping", "tokenizers", "chat templates", "warm-up",
          "batch size", "weight decay", "mixed precision", "evaluation loss"]  # fmt: skip


def jobs(n: int) -> list[tuple[str, int]]:
    """n (question, max_tokens) pairs drawn from 40 distinct ones: different prompt and reply lengths."""
    distinct = [(f"Explain {TOPICS[i % 10]} " + "in detail " * (i % 4), 8 + (i * 7) % 33) for i in range(40)]
    return [distinct[i % len(distinct)] for i in range(n)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args: argparse.Namespace, batch: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "tunelab", "api", "--model", args.model, "--port", str(port),
               "--max-batch-size", str(batch), "--max-waiting", str(args.max_waiting), "--model-name", "m",
               "--request-timeout", "600", *(["--template", args.template] if args.template else []),
               "compute_type=fp32"]  # fmt: skip
    env = {**os.environ, "TUNELAB_API_KEY": KEY, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}: {' '.join(command)}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the server did not come up in 300 s")
        time.sleep(0.3)


async def one(client: openai.AsyncOpenAI, question: str, max_tokens: int, mode: str) -> dict[str, Any]:
    """mode: plain, stream or abandon; returns status, text, latency and completion tokens."""
    messages = [{"role": "user", "content": question}]
    start = time.monotonic()
    try:
        if mode == "plain":
            reply = await client.chat.completions.create(model="m", messages=messages, max_tokens=max_tokens)  # type: ignore[arg-type]
            text, tokens = (
                reply.choices[0].message.content or "",
                reply.usage.completion_tokens if reply.usage else 0,
            )
        else:
            stream = await client.chat.completions.create(
                model="m", messages=messages, stream=True, stream_options={"include_usage": True},  # type: ignore[arg-type]
                max_tokens=400 if mode == "abandon" else max_tokens,
            )  # fmt: skip
            parts, tokens, seen = [], 0, 0
            async for chunk in stream:
                seen += 1
                if mode == "abandon" and seen >= 2:
                    await stream.close()
                    return {"status": "abandoned", "latency": time.monotonic() - start, "tokens": 0}
                if chunk.choices:
                    parts.append(chunk.choices[0].delta.content or "")
                if chunk.usage:
                    tokens = chunk.usage.completion_tokens
            text = "".join(parts)
    except openai.RateLimitError:
        return {"status": "429", "latency": time.monotonic() - start, "tokens": 0}
    except openai.APIError as exc:
        return {
            "status": f"error: {type(exc).__name__} {exc}",
            "latency": time.monotonic() - start,
            "tokens": 0,
        }
    return {"status": "ok", "text": text, "latency": time.monotonic() - start, "tokens": tokens}


async def burst(url: str, n: int, abandon: float, time_limit: float) -> tuple[list[dict[str, Any]], float]:
    work = jobs(n)
    n_abandon = int(n * abandon)
    modes = ["abandon" if i < n_abandon else ("stream" if i % 2 else "plain") for i in range(n)]
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    http = httpx.AsyncClient(limits=limits, timeout=time_limit)
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, http_client=http)
    start = time.monotonic()
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(one(client, q, m, mode) for (q, m), mode in zip(work, modes))), time_limit
        )
    finally:
        await http.aclose()
    for result, (question, max_tokens) in zip(results, work):
        result["job"] = (question, max_tokens)
    return list(results), time.monotonic() - start


async def references(url: str) -> dict[tuple[str, int], str]:
    """The sequential greedy reply to each distinct job, one request at a time."""
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=120)
    out = {}
    for question, max_tokens in dict.fromkeys(jobs(40)):
        reply = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": question}],  # type: ignore[arg-type]
                                                     max_tokens=max_tokens)  # fmt: skip
        out[(question, max_tokens)] = reply.choices[0].message.content or ""
    await client.close()
    return out


def summarize(results: list[dict[str, Any]], wall: float, want: dict[tuple[str, int], str]) -> dict[str, Any]:
    answered = [r for r in results if r["status"] == "ok"]
    latencies = sorted(r["latency"] for r in answered)

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * q))] if latencies else float("nan")

    errors = [r["status"] for r in results if r["status"].startswith("error")]
    return {
        "answered": len(answered),
        "abandoned": sum(r["status"] == "abandoned" for r in results),
        "429": sum(r["status"] == "429" for r in results),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "mismatches": sum(r["text"] != want[r["job"]] for r in answered),
        "p50": pct(0.50),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "tokens_per_s": sum(r["tokens"] for r in answered) / wall,
        "wall": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny:llama")
    parser.add_argument("--template", default="chatml")
    parser.add_argument("--counts", default="100,1000", help="concurrent requests per burst, comma-separated")
    parser.add_argument("--batch-size", type=int, default=32, help="--max-batch-size of the batched server")
    parser.add_argument("--max-waiting", type=int, default=2000)
    parser.add_argument("--abandon", type=float, default=0.1, help="share of requests abandoned mid-stream")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the server")
    parser.add_argument("--time-limit", type=float, default=900, help="seconds one burst may take")
    parser.add_argument("--quick", action="store_true", help="100 concurrent requests only")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/benchmarks.md")
    args = parser.parse_args()
    counts = [100] if args.quick else [int(c) for c in args.counts.split(",")]
    rows = []
    want: dict[tuple[str, int], str] = {}
    for label, batch in (
        ("serial (--max-batch-size 1)", 1),
        (f"batched (--max-batch-size {args.batch_size})", args.batch_size),
    ):
        proc, url = start_server(args, batch)
        try:
            if not want:
                want = asyncio.run(references(url))
            for n in counts:
                results, wall = asyncio.run(burst(url, n, args.abandon, args.time_limit))
                row = {"server": label, "n": n, **summarize(results, wall, want)}
                rows.append(row)
                print(row, flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    table = render(rows, args)
    print(table)
    if not args.no_write:
        write(table)


def render(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    serial = {r["n"]: r["tokens_per_s"] for r in rows if r["server"].startswith("serial")}
    lines = [
        "| server | concurrent | answered | abandoned | 429 | errors | mismatches | p50 s | p95 s | p99 s | tokens/s | vs serial |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        ratio = r["tokens_per_s"] / serial[r["n"]] if serial.get(r["n"]) else float("nan")
        lines.append(
            f"| {r['server']} | {r['n']} | {r['answered']} | {r['abandoned']} | {r['429']} | {r['errors']} | "
            f"{r['mismatches']} | {r['p50']:.2f} | {r['p95']:.2f} | {r['p99']:.2f} | {r['tokens_per_s']:.1f} | {ratio:.1f}x |"
        )
    command = "python benchmarks/api_load.py " + " ".join(sys.argv[1:])
    cpu = _cpu()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"### tunelab api under load: {args.model}, {args.abandon:.0%} abandoned mid-stream, half streaming\n\n"
        f"`{command}` on {cpu}, {os.cpu_count()} cores, server OMP_NUM_THREADS={args.threads}, "
        f"{time.strftime('%Y-%m-%d')}, load average at the end {load}\n\n" + "\n".join(lines) + "\n\n"
        "Official `openai` client (asyncio) against a real `tunelab api` process on 127.0.0.1; all requests of a "
        "burst sent at once. Serial is the same server with `--max-batch-size 1`: one request at a time, as "
        "the server answered before batching. Mismatches: replies that differ from the sequential greedy "
        "reply to the same prompt and max_tokens. Latencies are of answered requests, from sending to the last "
        "byte; tokens/s counts their completion tokens over the burst's wall time. Abandoned streams asked "
        "for 400 tokens each and were closed after their second chunk.\n"
    )


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def write(table: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    head = table.splitlines()[0]
    start = text.find(head.split(":")[0])
    if start >= 0:  # replace the previous section of this benchmark
        end = text.find("\n### ", start + 1)
        text = text[:start] + table + (text[end + 1 :] if end >= 0 else "")
    else:
        text = text.rstrip() + "\n\n" + table
    DOCS.write_text(text)


if __name__ == "__main__":
    main()
