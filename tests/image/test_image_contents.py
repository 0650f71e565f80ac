"""The built image itself: its configuration, and byte code for everything the entrypoints
import (the pods' root filesystem is read-only: what is not compiled in the image is
compiled again at every start, in every pod)."""

from __future__ import annotations

import json
from ipaddress import ip_address

from tests.image.podman import Podman
from vrrpd.noaccept import TABLE, ruleset

# Every module of both packages but the lab and the `python -m` mains (which run a CLI),
# then the modules the console scripts load: what `vrrpd run` and `kube-vrrp-operator` can
# import, and all that pulls in.
IMPORT_ALL = """
import importlib, importlib.metadata, json, os, pkgutil, sys
import vrrpd, vrrp_operator
for package in (vrrpd, vrrp_operator):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not module.name.endswith(".__main__") and not module.name.startswith("vrrpd.lab"):
            importlib.import_module(module.name)
for script in importlib.metadata.distribution("kube-vrrp").entry_points:
    importlib.import_module(script.module)
venv = os.path.dirname(os.path.dirname(sys.executable))
print(json.dumps(sorted(
    m.__name__ for m in list(sys.modules.values())
    if (getattr(m, "__file__", None) or "").startswith(venv)
    and m.__file__.endswith(".py") and not os.path.exists(m.__cached__)
)))
"""


def test_the_image_runs_the_operator_as_65532_by_default(podman: Podman, image: str) -> None:
    (config,) = json.loads(podman("image", "inspect", image).stdout)
    assert config["Config"]["User"] == "65532:65532"
    assert config["Config"]["Cmd"] == ["kube-vrrp-operator"]
    assert not config["Config"].get("Entrypoint")
    who = podman("run", "--rm", image, "id", "-u").stdout.strip()
    assert who == "65532"


def test_everything_the_entrypoints_import_has_byte_code(podman: Podman, image: str) -> None:
    result = podman("run", "--rm", "--read-only", "--cap-drop", "ALL", image,
                    "python", "-c", IMPORT_ALL)  # fmt: skip
    uncompiled = json.loads(result.stdout.strip().splitlines()[-1])
    assert uncompiled == [], "imported without byte code in the image (see the Dockerfile)"


def test_the_daemon_can_write_its_accept_false_table(podman: Podman, image: str) -> None:
    # accept: false is an nftables table (vrrpd.noaccept), written with the daemon pod's
    # capabilities alone: root, NET_ADMIN (and NET_RAW); in a network namespace of its own,
    # never the host's.
    script = ruleset([ip_address("192.168.77.100")])
    listed = podman(
        "run", "--rm", "--read-only", "--network", "none", "--user", "0", "--cap-drop", "ALL",
        "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW", image,
        "sh", "-c", f"printf '%s' '{script}' | nft -f - && nft list table inet {TABLE}",
    ).stdout  # fmt: skip
    assert "ip daddr @vips4 drop" in listed and "192.168.77.100" in listed
