"""The control-plane VIP for kubeadm HA: `vrrpd control-plane` writes a kubelet static pod and
its VirtualIP file on a control-plane node, before the cluster exists (docs/control-plane.md).

    render.py   the VirtualIP and the static Pod, from the flags' values (pure)
    command.py  `vrrpd control-plane`: flags, what it reads from the host, the files it writes
"""
