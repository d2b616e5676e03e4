"""In-process bus throughput and latency against a raw ``asyncio.Queue`` pipe, in the same run.

Goal: the bus delivers >= 100 000 events/s and at least half the rate of a raw queue pipe fed the
same pre-built messages in the same batches on the same machine. Both pipes run on the default
asyncio loop, each measurement on a fresh loop, alternating pipes within a round so that drift
(thermal, other load) hits both alike. Medians over the rounds are reported.

    .venv/bin/python bench/bus_throughput.py [--messages N] [--rounds R] [--quick] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from campusguard.core.bus import InProcessBus
from campusguard.sdk.bus import Overflow, Topic
from campusguard.sdk.models import Message

GOAL_EVENTS_PER_S = 100_000
GOAL_RATIO = 0.5
BATCH = 1000  # publish this many, then yield once: the same pattern for both pipes
FANOUT = 4
RESULTS = Path(__file__).resolve().parent / "results" / "bus_throughput.json"


class BenchEvent(Message):
    """A small real message: the bus type-checks it against the topic like any other."""

    seq: int


TOPIC: Topic[BenchEvent] = Topic("bench", BenchEvent, Overflow.NEVER_DROP)

Handler = Callable[[BenchEvent], Awaitable[None]]
# A pipe takes the batches, one handler per subscriber and the event that ends the run; returns seconds.
Pipe = Callable[[list[list[BenchEvent]], list[Handler], asyncio.Event], Coroutine[Any, Any, float]]
Paced = Callable[[list[BenchEvent], "LatencyRecorder"], Coroutine[Any, Any, None]]


# --- the workload --------------------------------------------------------------------------------


class Countdown:
    """Counts deliveries across every subscriber and wakes the timer when all have arrived."""

    def __init__(self, expected: int) -> None:
        self.left = expected
        self.done = asyncio.Event()

    async def handler(self, msg: BenchEvent) -> None:
        self.left -= 1
        if self.left == 0:
            self.done.set()


class LatencyRecorder:
    """Publish stamps and handler stamps, keyed by the message's index."""

    def __init__(self, n: int) -> None:
        self.sent = [0] * n
        self.latency_ns = [0] * n
        self.countdown = Countdown(n)

    async def handler(self, msg: BenchEvent) -> None:
        self.latency_ns[msg.seq] = time.perf_counter_ns() - self.sent[msg.seq]
        await self.countdown.handler(msg)


def build_messages(n: int) -> list[BenchEvent]:
    # Built once, outside every timed section: we measure the transport, not pydantic.
    return [BenchEvent(seq=i) for i in range(n)]


def batches(messages: list[BenchEvent], size: int) -> list[list[BenchEvent]]:
    return [messages[i : i + size] for i in range(0, len(messages), size)]


# --- the two pipes -------------------------------------------------------------------------------


async def _queue_consumer(queue: asyncio.Queue[BenchEvent], handler: Handler) -> None:
    while True:
        await handler(await queue.get())


async def queue_pipe(chunks: list[list[BenchEvent]], handlers: list[Handler], done: asyncio.Event) -> float:
    """Raw baseline: one unbounded asyncio.Queue and one consumer task per handler."""
    queues: list[asyncio.Queue[BenchEvent]] = [asyncio.Queue() for _ in handlers]
    tasks = [asyncio.create_task(_queue_consumer(q, h)) for q, h in zip(queues, handlers, strict=True)]
    await asyncio.sleep(0)  # let the consumers reach their first get() before the clock starts
    start = time.perf_counter()
    for chunk in chunks:
        for msg in chunk:
            for queue in queues:
                queue.put_nowait(msg)
        await asyncio.sleep(0)
    await done.wait()
    elapsed = time.perf_counter() - start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return elapsed


async def bus_pipe(chunks: list[list[BenchEvent]], handlers: list[Handler], done: asyncio.Event) -> float:
    """campusguard: InProcessBus, one never-drop subscription per handler, bounded high enough not to warn."""
    total = sum(len(c) for c in chunks)
    bus = InProcessBus()
    for i, handler in enumerate(handlers):
        bus.subscribe(TOPIC, handler, name=f"bench{i}", overflow=Overflow.NEVER_DROP, maxsize=total)
    await asyncio.sleep(0)
    start = time.perf_counter()
    for chunk in chunks:
        for msg in chunk:
            bus.publish(TOPIC, msg)
        await asyncio.sleep(0)
    await done.wait()
    elapsed = time.perf_counter() - start
    await bus.close()
    return elapsed


async def queue_paced(messages: list[BenchEvent], rec: LatencyRecorder) -> None:
    queue: asyncio.Queue[BenchEvent] = asyncio.Queue()
    task = asyncio.create_task(_queue_consumer(queue, rec.handler))
    await asyncio.sleep(0)
    for msg in messages:
        rec.sent[msg.seq] = time.perf_counter_ns()
        queue.put_nowait(msg)
        await asyncio.sleep(0)
    await rec.countdown.done.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def bus_paced(messages: list[BenchEvent], rec: LatencyRecorder) -> None:
    bus = InProcessBus()
    bus.subscribe(TOPIC, rec.handler, name="bench", overflow=Overflow.NEVER_DROP, maxsize=len(messages))
    await asyncio.sleep(0)
    for msg in messages:
        rec.sent[msg.seq] = time.perf_counter_ns()
        bus.publish(TOPIC, msg)
        await asyncio.sleep(0)
    await rec.countdown.done.wait()
    await bus.close()


# --- measurement ---------------------------------------------------------------------------------

PIPES: dict[str, Pipe] = {"asyncio.Queue": queue_pipe, "campusguard bus": bus_pipe}
PACED: dict[str, Paced] = {"asyncio.Queue": queue_paced, "campusguard bus": bus_paced}


def measure_throughput(pipe_name: str, messages: list[BenchEvent], subscribers: int) -> float:
    """Events/s: messages published per second, end to end until every subscriber handled them all."""

    async def once() -> float:
        countdown = Countdown(len(messages) * subscribers)
        handlers: list[Handler] = [countdown.handler] * subscribers
        return await PIPES[pipe_name](batches(messages, BATCH), handlers, countdown.done)

    gc.collect()
    elapsed = asyncio.run(once())
    return len(messages) / elapsed


def measure_latency(pipe_name: str, messages: list[BenchEvent]) -> tuple[float, float]:
    """p50 and p99 publish-to-handler latency in microseconds, one message per loop iteration."""
    rec = LatencyRecorder(len(messages))
    gc.collect()
    asyncio.run(PACED[pipe_name](messages, rec))
    lat = sorted(rec.latency_ns)
    return percentile(lat, 50) / 1000, percentile(lat, 99) / 1000


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    index = min(len(sorted_values) - 1, round(pct / 100 * (len(sorted_values) - 1)))
    return float(sorted_values[index])


@dataclass
class Series:
    """One metric for one pipe over all rounds."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)


@dataclass
class Results:
    messages: int
    latency_messages: int
    rounds: int
    throughput: dict[str, Series] = field(default_factory=dict)
    fanout: dict[str, Series] = field(default_factory=dict)
    p50_us: dict[str, Series] = field(default_factory=dict)
    p99_us: dict[str, Series] = field(default_factory=dict)


def run_rounds(messages: list[BenchEvent], latency_messages: int, rounds: int) -> Results:
    res = Results(len(messages), latency_messages, rounds)
    for table in (res.throughput, res.fanout, res.p50_us, res.p99_us):
        for name in PIPES:
            table[name] = Series()
    for r in range(rounds):
        # Alternate which pipe goes first so neither always gets the warmer (or the colder) machine.
        order = list(PIPES) if r % 2 == 0 else list(reversed(PIPES))
        for name in order:
            res.throughput[name].values.append(measure_throughput(name, messages, 1))
            res.fanout[name].values.append(measure_throughput(name, messages, FANOUT))
            p50, p99 = measure_latency(name, messages[:latency_messages])
            res.p50_us[name].values.append(p50)
            res.p99_us[name].values.append(p99)
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr)
    return res


# --- report --------------------------------------------------------------------------------------


def ratio(table: dict[str, Series]) -> float:
    return table["campusguard bus"].median / table["asyncio.Queue"].median


def print_table(res: Results) -> None:
    print(f"\nmessages={res.messages} rounds={res.rounds} batch={BATCH} latency_messages={res.latency_messages}")
    print(f"python {platform.python_version()} on {platform.machine()}, default asyncio loop\n")
    print(f"{'case':<28} {'pipe':<16} {'median':>12} {'min':>12} {'max':>12}")
    rows = [
        ("throughput, 1 sub (ev/s)", res.throughput, "{:,.0f}"),
        (f"fan-out, {FANOUT} subs (msg/s)", res.fanout, "{:,.0f}"),
        ("latency p50 (us)", res.p50_us, "{:,.1f}"),
        ("latency p99 (us)", res.p99_us, "{:,.1f}"),
    ]
    for label, table, fmt in rows:
        for name, series in table.items():
            cells = (fmt.format(v) for v in (series.median, min(series.values), max(series.values)))
            print(f"{label:<28} {name:<16} " + " ".join(f"{c:>12}" for c in cells))
    print(f"\nratio bus/queue: throughput {ratio(res.throughput):.2f}, fan-out {ratio(res.fanout):.2f}")


def verdict(res: Results) -> bool:
    bus = res.throughput["campusguard bus"].median
    queue = res.throughput["asyncio.Queue"].median
    ok = bus >= GOAL_EVENTS_PER_S and ratio(res.throughput) >= GOAL_RATIO
    print(
        f"bus {bus:,.0f} ev/s, raw queue {queue:,.0f} ev/s, ratio {ratio(res.throughput):.2f} "
        f"(goal >= {GOAL_EVENTS_PER_S:,} ev/s and ratio >= {GOAL_RATIO}): {'PASS' if ok else 'FAIL'}"
    )
    return ok


def write_json(res: Results, ok: bool) -> None:
    payload = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "batch": BATCH,
        "fanout_subscribers": FANOUT,
        "goals": {"events_per_s": GOAL_EVENTS_PER_S, "ratio": GOAL_RATIO},
        "medians": {
            "bus_events_per_s": res.throughput["campusguard bus"].median,
            "queue_events_per_s": res.throughput["asyncio.Queue"].median,
            "ratio": ratio(res.throughput),
            "fanout_ratio": ratio(res.fanout),
        },
        "pass": ok,
        "raw": asdict(res),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    sys.stdout.flush()  # keep the table ahead of the stderr note when both go to one pipe
    print(f"results: {RESULTS}", file=sys.stderr)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000, help="messages per throughput run")
    parser.add_argument("--latency-messages", type=int, default=20_000, help="messages per latency run")
    parser.add_argument("--rounds", type=int, default=5, help="repeats; medians are reported")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 000 messages, 2 rounds")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.latency_messages, args.rounds = 20_000, 2_000, 2
    args.latency_messages = min(args.latency_messages, args.messages)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    messages = build_messages(args.messages)
    # Move the pre-built messages out of the collector's way: collections triggered while timing
    # would otherwise rescan them and charge whichever pipe happened to be running.
    gc.collect()
    gc.freeze()
    res = run_rounds(messages, args.latency_messages, args.rounds)
    print_table(res)
    ok = verdict(res)
    write_json(res, ok)
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
