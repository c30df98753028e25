"""A real split: mosquitto in one network namespace, two ``gate run`` in two others, each
joined to the broker's by a veth pair. Cutting gate A's veth splits the LAN for A alone (the
broker and gate B stay up); healing it lets the gates converge. Needs root and ``ip netns``;
skips with the reason otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_mesh_run_e2e import RunGate, started, until

PORT = 1883


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class Lan:
    """Namespaces ``<tag>-br`` (the broker), ``<tag>-a`` and ``<tag>-b``, and a veth pair
    from each gate's namespace to the broker's: 10.77.N.1 (broker side) - 10.77.N.2."""

    def __init__(self, folder: Path) -> None:
        tag = f"gm{uuid.uuid4().hex[:6]}"
        self.br, self.spaces = f"{tag}-br", {"a": f"{tag}-a", "b": f"{tag}-b"}
        self.made: list[str] = []
        self.broker: subprocess.Popen[bytes] | None = None
        try:
            for ns in (self.br, *self.spaces.values()):
                ip("netns", "add", ns)
                self.made.append(ns)
            for n, (side, ns) in enumerate(self.spaces.items(), 1):
                near, far = f"{tag}{side}0", f"{tag}{side}1"
                ip("link", "add", near, "type", "veth", "peer", "name", far)
                ip("link", "set", near, "netns", self.br)
                ip("link", "set", far, "netns", ns)
                ip("-n", self.br, "addr", "add", f"10.77.{n}.1/24", "dev", near)
                ip("-n", ns, "addr", "add", f"10.77.{n}.2/24", "dev", far)
                for space, dev in ((self.br, near), (ns, far), (ns, "lo")):
                    ip("-n", space, "link", "set", dev, "up")
            ip("-n", self.br, "link", "set", "lo", "up")
        except (subprocess.CalledProcessError, OSError) as exc:
            self.close()
            reason = getattr(exc, "stderr", b"") or str(exc).encode()
            pytest.skip(f"network namespaces are not available: {reason.decode().strip()}")
        conf = folder / "mosquitto.conf"
        conf.write_text(f"listener {PORT} 0.0.0.0\nallow_anonymous true\npersistence false\n"
                        "user root\nlog_dest none\n")
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            self.close()
            pytest.skip("mosquitto is not installed (deploy/bootstrap.sh --test installs it)")
        self.broker = subprocess.Popen(["ip", "netns", "exec", self.br, binary, "-c", str(conf)])
        self.tag = tag

    def url(self, side: str) -> str:
        return f"mqtt://10.77.{1 + list(self.spaces).index(side)}.1:{PORT}"

    def cut(self, side: str, up: bool = False) -> None:
        ip("-n", self.br, "link", "set", f"{self.tag}{side}0", "up" if up else "down")

    def close(self) -> None:
        if self.broker is not None:
            self.broker.kill()
            self.broker.wait(10)
        for ns in self.made:  # deleting a namespace deletes its end of each veth pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[Lan]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("a real split needs root and iproute2 (ip netns)")
    net = Lan(tmp_path)
    yield net
    net.close()


@pytest.mark.slow
def test_a_gate_cut_off_by_its_veth_decides_alone_and_converges_once_healed(
        tmp_path: Path, lan: Lan, sim_server: Any) -> None:
    a, b = (RunGate(tmp_path / g, g, sim_server, lan.url(side), credentials=False,
                    netns=lan.spaces[side]) for side, g in (("a", "gateA"), ("b", "gateB")))
    try:
        [code] = started(a, b, 1)
        assert a.daemon and b.daemon
        lan.cut("a")
        a.daemon.wait_log("mesh: partitioned")  # the keepalive notices: about 15 s
        a.handheld.scan(code)
        b.handheld.scan(code)
        for gate in (a, b):
            gate.daemon.wait_log(r"decision \S+ GRANTED IN \S+ hand")
        assert "mesh: partitioned" not in b.daemon.log()  # B kept its broker all along
        lan.cut("a", up=True)
        a.daemon.wait_log("mesh: healed")
        until(lambda: a.peer_records("gateB") == 1 and b.peer_records("gateA") == 1,
              "each gate to hold the other's scan")
        until(lambda: len(a.conflicts()) == len(b.conflicts()) == 1, "both to list it")
    finally:
        a.close()
        b.close()
