"""The kube-vrrp operator: VirtualIP objects in, per-node vrrpd pods, ConfigMaps and Secrets out.

Layers (pure modules import no kubernetes, kopf or asyncio; tests/operator checks it):

- `objects`   plain records read from API objects (Node, daemon Pod)
- `render`    VirtualIPs x Nodes x Secrets -> per-node daemon configuration (pure)
- `manifests` per-node configuration -> ConfigMap, Secret, Pod (pure)
- `status`    daemon reports -> VirtualIP status and Events (pure)
- `rollout`   existing vs desired objects -> the next actions, one node at a time (pure)
- `services`  VirtualIPs -> LoadBalancer Service ingress (pure)
- `settings`  operator settings from the environment (pure)
- `kube`      the only module that talks to the API server (kubernetes client)
- `handlers`  thin kopf handlers: read, call the pure core, apply, patch status
"""
