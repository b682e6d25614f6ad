"""`veil dataset --engine ray` on a two-node Ray cluster that loses a node mid-run (issue 16).

Both nodes run on this machine: a head (``ray start --head``, one CPU) and a worker node (``ray
start --address``, one CPU and a resource of its own), so each of the two actors lands on a
node of its own. Once the worker node's actor is writing a shard, every process of that node is
killed (SIGKILL: the raylet and its workers). The run must still finish, or finish when the same
command runs again, with every record in the manifest exactly once and the output byte for byte
that of the local engine.

Slow (a cluster starts, and a node's death is noticed by heartbeat): it runs when
``VEIL_RAY_CLUSTER=1`` or ``CI`` is set; see ``docs/cluster.md`` for a real cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyarrow", reason="dataset mode needs pip install 'veil[dataset]'")
pytest.importorskip("ray", reason="the Ray engine needs pip install 'veil[ray]'")

import pyarrow.parquet as pq

from helpers import descendants, file_hashes, leftovers
from helpers import make_shards as shards_of
from veil.dataset import run
from veil.dataset.manifest import MANIFEST

pytestmark = [
    pytest.mark.ray,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="walks /proc for processes"),
]
RAY = Path(sys.executable).with_name("ray")
SHARDS, PER = 8, 4
# One authentication mode for the nodes and the driver: Ray turns token authentication on for
# a head node when ~/.ray/auth_token exists (any local ray.init() writes one), and then a node
# or driver without the token is refused.
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def make_shards(root: Path, shards: int = SHARDS) -> None:
    shards_of(root, shards, PER, side=384)


# -- processes (Linux /proc) -------------------------------------------------------------------
def writing(pids: set[int], suffix: str = ".veil-tmp") -> bool:
    """Whether any of ``pids`` has a file ending in ``suffix`` open (a shard being written)."""
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        if any(link.endswith(suffix) for link in links):
            return True
    return False


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process we started and everything below it, all at once."""
    pids = descendants(proc.pid) | {proc.pid}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)


# -- the cluster -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    address: str
    head: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]


def _node(*args: str, temp: Path, log: Path) -> subprocess.Popen[bytes]:
    """A Ray node in the foreground (``--block``): its processes are all ours, below it."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(RAY), "start", "--block", "--disable-usage-stats", "--num-gpus", "0", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=ENV,
            cwd=temp,
            start_new_session=True,
        )


def _wait_for(proc: subprocess.Popen[bytes], name: str, log: Path, timeout_s: float) -> None:
    """Until a process called ``name`` runs below ``proc``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        for pid in descendants(proc.pid):
            try:
                if name in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode():
                    return
            except OSError:
                continue
        time.sleep(0.2)
    pytest.fail(f"no {name} after {timeout_s} s: {log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if not (os.environ.get("VEIL_RAY_CLUSTER") or os.environ.get("CI")):
        pytest.skip("starts a two-node Ray cluster (30-60 s): set VEIL_RAY_CLUSTER=1")
    # Short: Ray's Unix sockets live below it, and a socket path may not pass 107 bytes.
    temp = Path(tempfile.mkdtemp(prefix="veil-ray-", dir="/tmp"))
    log = temp / "nodes.log"
    port = free_port()
    head = _node(
        "--head",
        f"--port={port}",
        "--num-cpus=1",
        "--include-dashboard=false",
        f"--temp-dir={temp}",
        "--object-store-memory=100000000",
        temp=temp,
        log=log,
    )
    worker = None
    try:
        _wait_for(head, "raylet", log, 60)
        worker = _node(
            f"--address=127.0.0.1:{port}",
            "--num-cpus=1",
            '--resources={"second_node": 1}',
            "--object-store-memory=100000000",
            temp=temp,
            log=log,
        )
        _wait_for(worker, "raylet", log, 60)
        yield Cluster(f"127.0.0.1:{port}", head, worker)
    finally:
        for node in (worker, head):
            if node is not None:
                kill_tree(node)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_node_lost_mid_run_loses_no_record_and_writes_none_twice(
    tmp_path: Path, cluster: Cluster
) -> None:
    make_shards(tmp_path / "in")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "veil", "dataset", str(tmp_path / "in"), str(out)]
    command += ["--engine", "ray", "--ray-address", cluster.address, "--workers", "2"]
    command += ["--progress", "off"]
    started = time.monotonic()
    log = tmp_path / "driver.log"
    with log.open("wb") as sink:
        driver = subprocess.Popen(
            command, stdout=sink, stderr=sink, env=ENV, start_new_session=True
        )
    try:
        # Once the second node's actor is writing a shard (and one shard is done), kill the node.
        parts = out / ".veil-dataset" / "parts"
        deadline = time.monotonic() + 120
        while not (
            parts.is_dir()
            and any(parts.glob("*.parquet"))
            and writing(descendants(cluster.worker.pid))
        ):
            if driver.poll() is not None:
                pytest.fail(f"the run ended before the node could be killed: {log.read_text()}")
            assert time.monotonic() < deadline, "the second node never wrote a shard"
            time.sleep(0.02)
        killed_at = time.monotonic()
        kill_tree(cluster.worker)
        driver.wait(timeout=180)
    finally:
        if driver.poll() is None:
            kill_tree(driver)
    finished = time.monotonic()
    err = log.read_text(errors="replace")
    runs = 1
    if driver.returncode != 0:
        # The run may stop; the same command then finishes it (on the one node left).
        runs = 2
        again = subprocess.run(
            command, capture_output=True, text=True, env=ENV, timeout=180, check=False
        )
        assert again.returncode == 0, again.stderr
        finished = time.monotonic()
    print(
        f"node killed {killed_at - started:.1f} s in; done {finished - killed_at:.1f} s later "
        f"in {runs} run(s); first run: exit {driver.returncode}: {err.strip()[-500:]}"
    )
    rows = pq.read_table(out / MANIFEST).to_pylist()
    ids = [row["id"] for row in rows]
    assert sorted(ids) == [f"{i:06d}" for i in range(SHARDS * PER)], "a record lost or twice"
    assert all(row["status"] == "cleaned" for row in rows)
    assert not leftovers(out)
    local = run(tmp_path / "in", tmp_path / "local", workers=1, progress=False)
    assert local.complete
    assert file_hashes(out) == file_hashes(tmp_path / "local")


# -- without a cluster ---------------------------------------------------------------------------
def test_an_unreachable_cluster_is_a_usage_error_at_once(tmp_path: Path, cli: Any) -> None:
    """Ray retries a wrong address for minutes, printing warnings; veil says so in a line."""
    make_shards(tmp_path / "in", shards=1)
    started = time.monotonic()
    failed = cli(
        "dataset",
        tmp_path / "in",
        tmp_path / "out",
        "--engine",
        "ray",
        "--ray-address",
        f"127.0.0.1:{free_port()}",
        "--progress",
        "off",
    )
    assert failed.code == 2, failed.err
    assert "veil: error: cannot reach the Ray cluster" in failed.err
    assert time.monotonic() - started < 30


def test_a_write_error_stops_a_ray_run_with_a_clear_error(tmp_path: Path, cli: Any) -> None:
    """An actor's write error comes back to the driver as veil's error, not a Ray traceback
    (Ray started by the command, in this process)."""
    make_shards(tmp_path / "in", shards=2)
    out = tmp_path / "out"
    (out / "000001.tar").mkdir(parents=True)  # a folder where a shard's file must go
    failed = cli(
        "dataset", tmp_path / "in", out, "--engine", "ray", "--workers", "1", "--progress", "off"
    )
    assert failed.code == 1, failed.err
    assert "veil: error: cannot write" in failed.err, failed.err
    assert "run the same command again" in failed.err
    assert not (out / MANIFEST).exists() and not leftovers(out)
    (out / "000001.tar").rmdir()
    summary = run(tmp_path / "in", out, workers=1, progress=False)
    assert summary.complete and summary.shards_run == 1
