"""Training across processes and hosts: JAX's distributed runtime under Keras's
``DataParallel``.

Every process runs ``edgeclf train`` with the same options plus ``--num-processes N
--process-id I --coordinator HOST:PORT`` (or ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``,
``JAX_COORDINATOR_ADDRESS``). :func:`start` calls ``jax.distributed.initialize`` (CPU
collectives over gloo) before JAX runs anything; the model is then replicated over every
device of every process, each process feeds its slice of each global batch and the
gradients are averaged across processes. Only process 0 writes the run folder; the others
read what it wrote (the split, the checkpoints), so ``--out`` must be a folder every
process sees (a shared filesystem across hosts).

A process that dies makes the next collective of the others fail at once (its connections
close); :func:`guard` turns that into :class:`PeerLostError` naming the processes that no
longer answer. JAX's coordination service is the backstop: a process silent for
``EDGECLF_HEARTBEAT_SECONDS`` (default :data:`HEARTBEAT_SECONDS`) stops every other one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from edgeclf.errors import ConfigError, EdgeclfError, RunError

log = logging.getLogger(__name__)

ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"        # read by jax.distributed itself too
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"
ENV_HEARTBEAT = "EDGECLF_HEARTBEAT_SECONDS"
#: Seconds without a heartbeat after which JAX declares a process dead and stops the rest.
HEARTBEAT_SECONDS = 60
#: Seconds a process that saw a collective fail waits for the others to answer.
PROBE_SECONDS = 3
#: Longest wait for process 0 to decode the dataset before the others take their turn.
TURN_TIMEOUT_SECONDS = 24 * 3600
#: Longest wait for every process to join at start.
JOIN_TIMEOUT_SECONDS = 300

T = TypeVar("T")


class PeerLostError(RunError):
    """Another process of a multi-process run stopped; this one cannot go on."""


@dataclass(frozen=True, kw_only=True)
class ProcessGroup:
    """Which process this is, of how many, and where process 0 coordinates them."""

    num_processes: int = 1
    process_id: int = 0
    coordinator: str | None = None

    def __post_init__(self) -> None:
        if self.num_processes < 1:
            raise ConfigError(f"--num-processes must be >= 1, got {self.num_processes}")
        if not 0 <= self.process_id < self.num_processes:
            raise ConfigError(f"--process-id must be in 0..{self.num_processes - 1} for "
                              f"--num-processes {self.num_processes}, got {self.process_id}")
        if self.coordinator is not None:
            parse_coordinator(self.coordinator)
        if self.num_processes > 1 and not self.coordinator:
            raise ConfigError(f"--num-processes {self.num_processes} needs --coordinator "
                              f"HOST:PORT (or ${ENV_COORDINATOR}): process 0's address")

    @property
    def multi(self) -> bool:
        return self.num_processes > 1

    @property
    def main(self) -> bool:
        return self.process_id == 0

    def describe(self) -> str:
        return f"process {self.process_id} of {self.num_processes}"


def parse_coordinator(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6addr]:PORT`` too) -> (host, port); a ConfigError otherwise."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--coordinator must be HOST:PORT (process 0's address and a free "
                          f"port, e.g. 10.0.0.1:1234), got {text!r}")
    return host, int(port)


def process_group(num_processes: int | None, process_id: int | None,
                  coordinator: str | None,
                  environ: Mapping[str, str] | None = None) -> ProcessGroup:
    """The group from the options, each missing one read from the environment."""
    env = os.environ if environ is None else environ

    def number(value: int | None, name: str, option: str, default: int) -> int:
        if value is not None:
            return int(value)
        text = env.get(name, "").strip()
        if not text:
            return default
        if not text.isdigit():
            raise ConfigError(f"${name} must be a number ({option}), got {text!r}")
        return int(text)

    return ProcessGroup(
        num_processes=number(num_processes, ENV_NUM_PROCESSES, "--num-processes", 1),
        process_id=number(process_id, ENV_PROCESS_ID, "--process-id", 0),
        coordinator=coordinator or env.get(ENV_COORDINATOR) or None)


_STARTED: ProcessGroup | None = None


def started() -> ProcessGroup | None:
    """The group :func:`start` joined in this process (None: single process)."""
    return _STARTED


def heartbeat_seconds() -> int:
    text = os.environ.get(ENV_HEARTBEAT, "").strip()
    if text and (not text.isdigit() or int(text) < 1):
        raise ConfigError(f"${ENV_HEARTBEAT} must be a whole number of seconds, got {text!r}")
    return int(text) if text else HEARTBEAT_SECONDS


def start(group: ProcessGroup) -> None:
    """Join the group (``jax.distributed.initialize``); nothing for a single process."""
    global _STARTED
    if not group.multi:
        return
    if _STARTED is not None:
        if _STARTED != group:
            raise RunError(f"this process already joined {_STARTED}; one group per process")
        return
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")   # CPU across processes
    log.info("%s joining the run at %s", group.describe(), group.coordinator)
    try:
        jax.distributed.initialize(coordinator_address=group.coordinator,
                                   num_processes=group.num_processes,
                                   process_id=group.process_id,
                                   initialization_timeout=JOIN_TIMEOUT_SECONDS,
                                   heartbeat_timeout_seconds=heartbeat_seconds())
    except RuntimeError as e:        # too late (JAX already ran) or nobody answered in time
        raise RunError(f"{group.describe()} could not join the run at {group.coordinator}: "
                       f"{str(e).splitlines()[0][:300]}") from None
    _STARTED = group
    log.info("%s joined: %d device(s) in all, %d here", group.describe(),
             jax.device_count(), jax.local_device_count())


def _client() -> Any:
    from jax._src import distributed

    return distributed.global_state.client


def barrier(name: str) -> None:
    """Every process reaches ``name`` before any goes on (a collective: a dead peer makes
    it fail at once)."""
    if _STARTED is None:
        return
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(f"edgeclf:{name}")


def in_turn(name: str, fn: Callable[[], T]) -> T:
    """``fn()`` on process 0 first, then on the others (which wait for it: they read what
    it wrote, and a decode cache on a shared disk is built once)."""
    if _STARTED is None:
        return fn()
    timeout_ms = TURN_TIMEOUT_SECONDS * 1000
    if _STARTED.main:
        result = fn()
        _client().wait_at_barrier(f"edgeclf:{name}", timeout_ms)
        return result
    _client().wait_at_barrier(f"edgeclf:{name}", timeout_ms)
    return fn()


def lost_peers() -> list[int]:
    """The other processes that do not answer within :data:`PROBE_SECONDS`: each process
    that saw a collective fail says so in the coordinator's key-value store and waits for
    the others' word (a coordinator that is gone answers for nobody)."""
    group = _STARTED
    if group is None:
        return []
    client = _client()
    try:
        client.key_value_set(f"edgeclf/failed/{group.process_id}", "1", allow_overwrite=True)
    except Exception:  # noqa: BLE001 - the coordinator (process 0) itself is gone
        return [0] if not group.main else []
    lost = []
    for peer in range(group.num_processes):
        if peer == group.process_id:
            continue
        try:
            client.blocking_key_value_get(f"edgeclf/failed/{peer}", PROBE_SECONDS * 1000)
        except Exception:  # noqa: BLE001 - timed out: that process does not answer
            lost.append(peer)
    return lost


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """A failed collective (a peer died) becomes :class:`PeerLostError` naming the lost
    processes; edgeclf's own errors and anything else pass through unchanged."""
    try:
        yield
    except EdgeclfError:
        raise
    except Exception as e:
        group = _STARTED
        if group is None:
            raise
        lost = lost_peers()
        if not lost:
            raise
        names = ", ".join(str(p) for p in lost)
        raise PeerLostError(
            f"{group.describe()}: process {names} of the run stopped (died or unreachable), "
            f"so this one stops too; the checkpoints keep the last completed epoch "
            f"(--resume continues it). Cause here: {str(e).splitlines()[0][:200]}") from e


@contextlib.contextmanager
def without_distribution() -> Iterator[None]:
    """Keras work on this process alone (saving a checkpoint on process 0): under a
    multi-process distribution even creating a variable is a collective."""
    import keras

    current = keras.distribution.distribution()
    if current is None:
        yield
        return
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(current)


def abandon(code: int) -> NoReturn:
    """Leave at once after a failure: JAX's exit handler would wait at a shutdown barrier
    for the lost processes and then abort. The error has been printed; flush and go."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    logging.shutdown()
    os._exit(code)
