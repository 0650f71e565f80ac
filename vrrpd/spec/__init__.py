"""The VirtualIP API (kubevrrp.io/v1alpha1): one validated model for the CRD, the operator
and the daemon.

- `fields`: the field types the models share (durations, names, hosts ...) and their
  validators; `errors`: problems worded as field, value and what would work.
- `addresses`, `selectors`, `election`, `probes`, `notify`: the parts of a spec;
  `virtualip`: the VirtualIP resource itself; `status`: the status the operator writes.
- `load`: YAML text, files and API objects into validated VirtualIPs.
- `openapi`, `crds`: the CRDs generated from these models (`make crds`).

Resolving a spec for one node is `vrrpd.resolve`; what that yields, `vrrpd.config`.
Pure: no sockets, no clock, no event loop.
"""

API_VERSION = "kubevrrp.io/v1alpha1"
API_GROUP = API_VERSION.split("/")[0]
KIND = "VirtualIP"
