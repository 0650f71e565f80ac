"""The VirtualIP API (kubevrrp.io/v1alpha1): one validated model for the CRD, the operator
and the daemon.

- `fields`: the field types the models share (durations, names, hosts, addresses ...) and
  their validators; `errors`: problems worded as field, value and what would work.
- `selectors`, `election`, `probes`, `notify`: the parts of a spec; `virtualip`: the
  VirtualIP resource itself.
- `load`: YAML text, files and API objects into validated VirtualIPs.

Resolving a spec for one node is `vrrpd.resolve`; what that yields, `vrrpd.config`.
Pure: no sockets, no clock, no event loop.
"""

API_VERSION = "kubevrrp.io/v1alpha1"
KIND = "VirtualIP"
