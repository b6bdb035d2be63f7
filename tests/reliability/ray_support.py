"""A local Ray for the `gentriage scan --ray` tests, started once per test session.

The head runs in a helper process (not in pytest's own: ray stays out of the test process,
whose other tests check what is imported and which threads run). It keeps Ray local — 2 CPUs,
no dashboard, no usage statistics, bound to the loopback address, its session files and
token under a temporary folder — and takes commands on stdin so a test can kill a worker at
the moment it chooses:
    kill-worker   -> "KILLED <actor name>" (or "NONE" when no scan worker is running)
Closing stdin shuts the head down; so does the end of the pytest process (stdin closes).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from reliability_support import REPO, child_env

from library.distributed import NAMESPACE, WORKER_NAME

RAY_CPUS = 2
HEAD_START_TIMEOUT_S = 120

RAY_MISSING = importlib.util.find_spec("ray") is None
NO_RAY = "Ray is not installed (pip install -e '.[ray]')"
needs_ray = pytest.mark.skipif(RAY_MISSING, reason=NO_RAY)

HEAD = r'''
import sys
import ray

ray.init(num_cpus=int(sys.argv[1]), include_dashboard=False, namespace=sys.argv[2],
         log_to_driver=False, logging_level="WARNING", object_store_memory=256 * 1024**2)
print("ADDRESS " + ray.get_runtime_context().gcs_address, flush=True)
for line in sys.stdin:
    if line.strip() == "kill-worker":
        names = sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                       if a["name"].startswith(sys.argv[3]))
        if not names:
            print("NONE", flush=True)
            continue
        ray.kill(ray.get_actor(names[0], namespace=sys.argv[2]))
        print("KILLED " + names[0], flush=True)
ray.shutdown()
'''


def ray_env(root: Path) -> dict[str, str]:
    """What every Ray-using process of the tests shares: Ray's session files and its token
    (under $HOME/.ray) in a temporary folder, no usage statistics, loopback only."""
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    # RAY_AUTH_MODE: Ray's token authentication, on as a local ray.init turns it on; a
    # process joining the cluster must say so too (and finds the token in $HOME/.ray).
    return {"RAY_TMPDIR": str(root / "tmp"), "HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}


@dataclass
class RayHead:
    address: str
    env: dict[str, str]
    proc: subprocess.Popen

    def kill_worker(self) -> str:
        """Kill one scan worker actor (ray.kill); its name."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("kill-worker\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer.startswith("KILLED "), answer
        return answer.removeprefix("KILLED ")


def short_root() -> Path:
    """A new folder for Ray's files with a short path: Ray's unix sockets live under it, and
    their paths are limited to ~100 bytes (pytest's tmp_path is too long)."""
    root = Path(tempfile.mkdtemp(prefix="gt-ray-", dir="/tmp"))
    (root / "tmp").mkdir()
    return root


def start_head() -> RayHead:
    root = short_root()
    env = ray_env(root)
    proc = subprocess.Popen([sys.executable, "-c", HEAD, str(RAY_CPUS), NAMESPACE, WORKER_NAME],
                            cwd=REPO, env=child_env(root / "gentriage-home", (), **env),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(HEAD_START_TIMEOUT_S)
    if not line or not line[0].startswith("ADDRESS "):
        proc.kill()
        proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"the test's Ray head did not start: {line}")
    env["_ROOT"] = str(root)
    return RayHead(line[0].split()[1], env, proc)


def stop_head(head: RayHead) -> None:
    assert head.proc.stdin is not None
    head.proc.stdin.close()  # the head shuts Ray down and exits
    try:
        head.proc.wait(60)
    except subprocess.TimeoutExpired:
        head.proc.kill()
        head.proc.wait(30)
    shutil.rmtree(head.env["_ROOT"], ignore_errors=True)


def driver_env(head: RayHead) -> dict[str, str]:
    """Environment additions for a `gentriage scan --ray` child joining the head."""
    return {k: v for k, v in head.env.items() if not k.startswith("_")
            and k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}  # the driver decides that itself
