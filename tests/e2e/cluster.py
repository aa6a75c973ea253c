"""Several booted hosts on one machine, on a private network that leads nowhere.

Each stand-in host is `systemd-nspawn --network-namespace-path=` in its own network
namespace; one veth per host joins a bridge in a hub namespace the test creates, where the
servers (PostgreSQL, Redis, slapd, the KDC, HAProxy) listen on the bridge address. No
namespace has a default route or a link to the machine's own network: nothing is sent
anywhere else. The test process enters the hub namespace (setns on its own thread) to
start the servers and to talk to the hosts; child processes inherit it. It leaves the
hub to build (`bundle build` may need PyPI on a cold cache). DESIGN.md section 6.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .proc import Daemon, run, wait_until
from .target import RootImage, TargetHost, boot_unpacked

CLONE_NEWNET = 0x40000000
SUBNET = "10.213.0"
HUB_ADDRESS = f"{SUBNET}.1"
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(path: str | int) -> None:
    fd = path if isinstance(path, int) else os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        if not isinstance(path, int):
            os.close(fd)


@dataclass
class ClusterNet:
    """The hub namespace with its bridge, and one namespace per host (name -> address)."""

    prefix: str
    hosts: dict[str, str] = field(default_factory=dict)   # short name -> address
    created: list[str] = field(default_factory=list)
    _home: int | None = None       # fd of the namespace the test started in

    @property
    def hub(self) -> str:
        return f"{self.prefix}-hub"

    def ns_path(self, short: str) -> str:
        return f"/run/netns/{self.prefix}-{short}"

    def _add(self, name: str) -> None:
        run(["ip", "netns", "add", name])
        self.created.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])

    def create(self, shorts: Sequence[str]) -> None:
        self._add(self.hub)
        run(["ip", "-n", self.hub, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", self.hub, "addr", "add", f"{HUB_ADDRESS}/24", "dev", "br0"])
        run(["ip", "-n", self.hub, "link", "set", "br0", "up"])
        for i, short in enumerate(shorts):
            ns = f"{self.prefix}-{short}"
            self._add(ns)
            address = f"{SUBNET}.{11 + i}"
            veth = f"v{self.prefix[-6:]}{short}"[:15]
            run(["ip", "-n", self.hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
            run(["ip", "-n", self.hub, "link", "set", veth, "master", "br0", "up"])
            run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            self.hosts[short] = address
        # No default route anywhere: the subnet is all there is.
        for ns in self.created:
            routes = run(["ip", "-n", ns, "route", "show", "default"]).stdout.strip()
            assert not routes, f"{ns} has a default route: {routes}"

    def destroy(self) -> None:
        self.leave()
        for ns in reversed(self.created):
            run(["ip", "netns", "del", ns], check=False)
        self.created.clear()

    def enter(self) -> None:
        """Put this thread (and what it starts from now on) into the hub namespace."""
        if self._home is None:
            self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        _setns(f"/run/netns/{self.hub}")

    def leave(self) -> None:
        if self._home is not None:
            _setns(self._home)

    @contextmanager
    def outside(self) -> Iterator[None]:
        """Back in the machine's namespace for a while (a build that may reach PyPI)."""
        self.leave()
        try:
            yield
        finally:
            self.enter()

    @contextmanager
    def inside(self) -> Iterator[None]:
        self.enter()
        try:
            yield
        finally:
            self.leave()


@dataclass
class ClusterHost(TargetHost):
    """A TargetHost booted in its own network namespace, with the cluster's /etc/hosts
    and read-write binds (the shared DAG folder, as an NFS mount would be)."""

    netns: str = ""
    hosts_text: str = ""
    binds_rw: dict[str, str] = field(default_factory=dict)
    # e.g. --capability=CAP_NET_ADMIN: firewalld programs the host's own namespace only.
    extra_args: tuple[str, ...] = ()

    def _set_identity(self) -> None:
        (self.root / "etc/hostname").write_text(self.hostname + "\n")
        (self.root / "etc/hosts").write_text(self.hosts_text)

    def _nspawn_args(self) -> list[str]:
        # Its own network namespace and /etc/hosts, the read-write binds, any extras.
        return ["--resolv-conf=off", f"--network-namespace-path={self.netns}",
                *[f"--bind={src}:{dest}" for src, dest in sorted(self.binds_rw.items())], *self.extra_args]


def booted_cluster_host(image: RootImage, workdir: Path, hostname: str, netns: str, hosts_text: str,
                        binds_ro: dict[str, str], binds_rw: dict[str, str], keep: bool = False,
                        extra_args: tuple[str, ...] = ()) -> AbstractContextManager[ClusterHost]:
    """booted_host() for a cluster member: unpack the shared cached root, boot, harden."""
    def host(root: Path, unpack_seconds: float) -> ClusterHost:
        return ClusterHost(root, hostname, workdir / "nspawn.log", dict(binds_ro), unpack_seconds=unpack_seconds,
                           netns=netns, hosts_text=hosts_text, binds_rw=dict(binds_rw), extra_args=extra_args)

    return boot_unpacked(image, workdir, host, keep=keep, hardened=True)


def haproxy_config(port: int, backends: dict[str, str], log: Path) -> str:
    """TLS passes through (TCP mode): each api-server presents the site's certificate."""
    servers = "\n".join(f"    server {name} {addr}:{port} check inter 1s fall 2 rise 1"
                        for name, addr in sorted(backends.items()))
    return f"""global
    log stdout format raw local0
defaults
    mode tcp
    log global
    timeout connect 3s
    timeout client 120s
    timeout server 120s
frontend api
    bind {HUB_ADDRESS}:{port}
    default_backend apiservers
backend apiservers
    balance roundrobin
{servers}
"""


class MemorySampler:
    """Peak memory used by the machine during the cluster test (MemTotal - MemAvailable)."""

    def __init__(self) -> None:
        import threading

        self.baseline = self._used()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    @staticmethod
    def _used() -> int:
        info = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0])
        return (info["MemTotal"] - info["MemAvailable"]) * 1024

    def _loop(self) -> None:
        while not self._stop.wait(2):
            self.peak = max(self.peak, self._used())

    def stop(self) -> tuple[int, int]:
        self._stop.set()
        self._thread.join(5)
        return self.baseline, self.peak


@contextmanager
def hub_redis(base: Path, ca) -> Iterator:
    """redis-server on the hub address: the remote broker of every host, as docs/cluster.md
    tells an admin to run one. TLS only (no plain port), its certificate from the test CA for
    the hub address; no default user, the site's ACL user. servers.redis_server binds loopback
    with protected mode, which refuses every other address; the hub is a private namespace
    and every user has a password, so it is off."""
    from .proc import free_port
    from .servers import Control, Redis, broker_password, redis_acl, redis_cli, _password

    base.mkdir(parents=True, exist_ok=True)
    port = free_port(HUB_ADDRESS)
    tls = ca.issue_server(base / "tls", "redis", dns=[], ips=[HUB_ADDRESS])
    password, admin = broker_password(), _password()
    (base / "users.acl").write_text(redis_acl("airflow", password, admin))
    conf = base / "redis.conf"
    conf.write_text(f"bind {HUB_ADDRESS}\nport 0\ntls-port {port}\ntls-cert-file {tls.cert}\n"
                    f"tls-key-file {tls.key}\ntls-ca-cert-file {ca.cert_path}\ntls-auth-clients no\n"
                    f"protected-mode no\ndaemonize no\ndir {base}\nsave \"\"\nappendonly no\nlogfile \"\"\n"
                    f"aclfile {base / 'users.acl'}\n")
    t0 = time.monotonic()
    daemon = Daemon("redis-server", ["redis-server", str(conf)], log=base / "redis.log").start()
    cli = redis_cli(HUB_ADDRESS, port, admin, ca.cert_path)

    def ping() -> bool:
        return run([*cli, "PING"], check=False).stdout.strip() == "PONG"
    control = Control(daemon, ping, stop_command=[*cli, "SHUTDOWN", "SAVE"])
    try:
        wait_until(ping, 15, "redis PING", alive=daemon.exited)
        yield Redis(HUB_ADDRESS, port, daemon.log, time.monotonic() - t0, control, password=password,
                    admin_password=admin, ca_file=ca.cert_path)
    finally:
        from .proc import stop_pid

        if daemon.proc is not None and daemon.proc.poll() is None:
            stop_pid(daemon.pid)


def open_postgres_to_subnet(postgres) -> None:
    """initdb's pg_hba.conf admits loopback only: admit the cluster's subnet (password auth)."""
    hba = postgres.data_dir / "pg_hba.conf"
    hba.write_text(hba.read_text() + f"host all all {SUBNET}.0/24 scram-sha-256\n")
    postgres.psql("SELECT pg_reload_conf()", superuser=True)
