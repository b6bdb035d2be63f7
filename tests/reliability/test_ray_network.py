"""`gentriage scan --ray local` keeps to this machine.

The suite's network guard (test_security.py) refuses every IPv4/IPv6 connection, loopback
included, and Ray's processes talk to each other over loopback TCP (gRPC): Ray cannot run
under it. This test uses a variant of its libc guard that lets loopback through and records
(and refuses) everything else — connections elsewhere, and name lookups other than
`localhost` — in every process of the run — the driver, Ray's own daemons
(C++ and Python) and the worker processes: LD_PRELOAD is inherited by all of them.

One thing Ray does is allowed, by name: its dashboard process (started even without the
dashboard, for usage statistics, which are off) asks the cloud metadata service which cloud
it runs on — a lookup of metadata.google.internal and HTTP requests to 169.254.169.254, the
link-local metadata address — whether or not statistics are on. Nothing else may be there:
no lookup or connection from GenTriage, from the workers, or from any other Ray process.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from ray_support import needs_ray, ray_env
from reliability_support import NSFW_ONLY, counts, gentriage, write_images

LOOPBACK_GUARD = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* One line per attempt: what, where to, and which program (its command line), in $NO_NET_LOG;
   loopback connections in $LOOPBACK_LOG (the witness that the guard sat in that program). */
static void note_in(const char *variable, const char *what, const char *target) {
    const char *log = getenv(variable);
    if (!log) return;
    char cmd[256] = "?";
    int cf = open("/proc/self/cmdline", O_RDONLY);
    if (cf >= 0) {
        ssize_t n = read(cf, cmd, sizeof cmd - 1);
        if (n > 0) {
            cmd[n] = 0;
            for (ssize_t i = 0; i < n; i++)
                if (!cmd[i] || cmd[i] == '\n' || cmd[i] == '\t') cmd[i] = ' ';
        }
        close(cf);
    }
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd < 0) return;
    char line[512];
    int n = snprintf(line, sizeof line, "%s\t%s\t%s\n", what, target ? target : "?", cmd);
    if (n > 0) (void)!write(fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    close(fd);
}

static void note(const char *what, const char *target) { note_in("NO_NET_LOG", what, target); }

/* No lookup leaves the machine: "localhost", or a numeric address (where it leads is for
   connect() to judge). */
static int local_lookup(const char *node) {
    unsigned char buf[sizeof(struct in6_addr)];
    return !node || !strcmp(node, "localhost") || inet_pton(AF_INET, node, buf) == 1
        || inet_pton(AF_INET6, node, buf) == 1;
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
    static int (*real)(const char *, const char *, const struct addrinfo *,
                       struct addrinfo **);
    if (!local_lookup(node)) { note("getaddrinfo", node); return EAI_FAIL; }
    if (!real) real = dlsym(RTLD_NEXT, "getaddrinfo");
    return real(node, service, hints, res);
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    static int (*real)(int, const struct sockaddr *, socklen_t);
    char where[64] = "?";
    int outside = 0;
    if (addr && addr->sa_family == AF_INET) {
        const struct in_addr *a = &((const struct sockaddr_in *)addr)->sin_addr;
        outside = (ntohl(a->s_addr) >> 24) != 127;
        inet_ntop(AF_INET, a, where, sizeof where);
    } else if (addr && addr->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)addr)->sin6_addr;
        outside = !IN6_IS_ADDR_LOOPBACK(a) && !(IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
        inet_ntop(AF_INET6, a, where, sizeof where);
    }
    if (outside) { note("connect", where); errno = ENETUNREACH; return -1; }
    if (addr && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6))
        note_in("LOOPBACK_LOG", "connect", where);
    if (!real) real = dlsym(RTLD_NEXT, "connect");
    return real(fd, addr, len);
}
"""

# Ray's dashboard process asking the cloud metadata service where it runs (see the docstring).
RAY_CLOUD_PROBE = {("getaddrinfo", "metadata.google.internal"), ("connect", "169.254.169.254")}


@pytest.fixture(scope="module")
def loopback_guard(tmp_path_factory) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        pytest.skip("building the libc-level network guard needs a C compiler (cc)")
    root = tmp_path_factory.mktemp("loopback-guard")
    (root / "guard.c").write_text(LOOPBACK_GUARD)
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", str(root / "guard.so"),
                    str(root / "guard.c"), "-ldl"], check=True, capture_output=True,
                   timeout=120)
    return root / "guard.so"


def _attempts(log: Path) -> list[tuple[str, str, str]]:
    """(what, where, the program's command line) of each line the guard wrote."""
    if not log.exists():
        return []
    return [tuple(line.split("\t", 2)) for line in log.read_text().splitlines()]  # type: ignore[misc]


def test_the_loopback_guard_lets_loopback_through_and_catches_the_rest(tmp_path,
                                                                       loopback_guard):
    """Guard for the guard: a loopback connection works, one elsewhere is recorded."""
    import os
    import sys

    log = tmp_path / "attempts.log"
    probe = ("import socket\n"
             "server = socket.create_server(('127.0.0.1', 0))\n"
             "socket.create_connection(server.getsockname(), timeout=5).close()\n"
             "try:\n    socket.create_connection(('192.0.2.1', 80), timeout=1)\n"
             "except OSError:\n    pass\n"
             "try:\n    socket.getaddrinfo('example.invalid', 80)\n"
             "except OSError:\n    pass\n")
    env = dict(os.environ, NO_NET_LOG=str(log), LD_PRELOAD=str(loopback_guard))
    subprocess.run([sys.executable, "-c", probe], env=env, check=True, timeout=60)
    seen = {(what, where) for what, where, _ in _attempts(log)}
    assert seen == {("connect", "192.0.2.1"), ("getaddrinfo", "example.invalid")}


@needs_ray
@pytest.mark.slow
def test_scan_ray_local_reaches_nothing_beyond_this_machine(tmp_path, loopback_guard,
                                                            ray_files):
    folder = tmp_path / "pics"
    write_images(folder, 8)
    db = tmp_path / "lib.sqlite3"
    log, loopback = tmp_path / "attempts.log", tmp_path / "loopback.log"
    env = ray_env(ray_files)
    for decided_by_gentriage in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_AUTH_MODE",
                                 "RAY_USAGE_STATS_ENABLED"):
        env.pop(decided_by_gentriage)

    result = gentriage(["scan", str(folder), "--db", str(db), *NSFW_ONLY, "--ray", "local"],
                       tmp_path / "home", timeout=240, NO_NET_LOG=str(log),
                       LOOPBACK_LOG=str(loopback), LD_PRELOAD=str(loopback_guard), **env)

    assert result.returncode == 0, result.stderr[-3000:]
    assert counts(db)["analysis_results"] == 8
    # The guard sat in every kind of process the run had, and saw them talk over loopback.
    programs = " ".join(program for _, _, program in _attempts(loopback))
    for process in ("-m gentriage scan", "gcs_server", "raylet", "default_worker.py"):
        assert process in programs
    unexpected = [(what, where, program) for what, where, program in _attempts(log)
                  if (what, where) not in RAY_CLOUD_PROBE or "dashboard.py" not in program]
    assert unexpected == []
