"""One vrrp_instance, directive by directive: each value read, checked and kept for
`vrrpd.convert.spec`, or reported as not supported."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from ipaddress import IPv4Interface, IPv6Interface, ip_address, ip_interface
from typing import Any

from vrrpd.convert.definitions import NOTIFY_FIELDS, Definitions
from vrrpd.convert.reader import Statement
from vrrpd.convert.report import Severity
from vrrpd.convert.tracking import Tracking
from vrrpd.convert.values import decimal_seconds, integer
from vrrpd.limits import (
    PASSWORD_MAX_BYTES,
    PRIORITY_MIN,
    PRIORITY_OWNER,
    VRID_MAX,
    VRID_MIN,
)

INSTANCE_UNSUPPORTED = {
    "use_vmac_addr": "not supported (no VMAC interfaces)",
    "vmac_xmit_base": "not supported (no VMAC interfaces)",
    "use_ipvlan": "not supported (no ipvlan interfaces)",
    "dont_track_primary": "not supported: an instance always goes to FAULT while its "
    "interface is down",
    "debug": "no per-instance debug level; run vrrpd with --verbose",
    "mcast_src_ip": "not supported: adverts come from the interface's primary address",
    "mcast_dst_ip": "not supported: adverts use the RFC groups 224.0.0.18 / ff02::12",
    "vrf": "VRFs are not supported",
    "track_process": "process tracking is not supported; use an exec probe (e.g. pgrep -x NAME)",
    "track_bfd": "BFD tracking is not supported",
    "track_src_ip": "not supported",
    "unicast_ttl": "not supported: unicast adverts are sent with TTL 255",
    "check_unicast_src": "not needed: unicast adverts from addresses not in spec.peers are "
    "always dropped",
    "unicast_fault_no_peer": "not needed: unicast without peers is a configuration error here",
    "old_unicast_checksum": "not supported: checksums follow RFC 5798 (keepalived >= 1.3.6)",
    "v3_checksum_as_v2": "not supported: VRRPv3 IPv4 checksums include the pseudo-header",
    "native_ipv6": "not needed: the address families follow spec.addresses",
    "lvs_sync_daemon_interface": "IPVS sync is not part of kube-vrrp",
    "garp_master_refresh_repeat": "not supported: each refresh sends one burst",
    "garp_lower_prio_delay": "not supported",
    "garp_lower_prio_repeat": "not supported",
    "garp_extra_if": "not supported",
    "vmac_garp_intvl": "not supported",
    "down_timer_adverts": "not supported: master_down_interval is 3 adverts + skew (RFC 5798)",
    "timer_expired_backup": "not supported",
    "thread_timer_expired": "not supported",
    "lower_prio_no_advert": "not supported",
    "higher_prio_send_advert": "not supported",
    "owner_ignore_adverts": "not supported",
    "kernel_rx_buf_size": "not supported",
    "linkbeat_use_polling": "not needed: link state comes from netlink events",
    "notify_deleted": "not supported: there is no DELETED notification",
    "notify_master_rx_lower_pri": "not supported",
    "notify_priority_changes": "not supported: notifications are sent on state changes only",
    "no_virtual_ipaddress": "not supported: a VirtualIP has at least one address",
    "skip_check_adv_addr": "not supported: adverts whose address list differs are dropped "
    "(RFC 5798 section 7.1), as keepalived does without this option",
    "auth_hmac": "keepalived's HMAC authentication extension is not supported",
}

# virtual_ipaddress options followed by a value (keepalived vrrp_ipaddress.c)
_ADDRESS_VALUED = {"dev", "label", "brd", "broadcast", "scope", "peer", "preferred_lft"}


@dataclass(slots=True)
class Address:
    interface: IPv4Interface | IPv6Interface
    st: Statement
    dev: str | None = None
    label: str | None = None
    excluded: bool = False


class Instance:
    """One vrrp_instance's directives, gathered; `vrrpd.convert.spec` resolves them together."""

    def __init__(self, defs: Definitions, block: Statement, iname: str) -> None:
        self.defs = defs
        self.report = defs.report
        self.block = block
        self.iname = iname
        self.addresses: list[Address] = []
        self.vrid: int | None = None
        self.version: tuple[int, Statement] | None = None
        self.interface: str | None = None
        self.advert: tuple[Decimal, Statement] | None = None
        self.priority: tuple[int, Statement] | None = None
        self.state: tuple[str, Statement] | None = None
        self.nopreempt: Statement | None = None
        self.preempt_delay: tuple[Decimal, Statement] | None = None
        self.accept: bool | None = None
        self.strict: Statement | None = None
        self.unicast_src: tuple[str, Statement] | None = None
        self.unicast_peers: list[tuple[str, Statement]] = []
        self.unicast_block: Statement | None = None
        self.auth: tuple[str, Statement] | None = None
        self.garp: dict[str, Any] = {}
        self.tracking = Tracking(defs, iname)
        self.notify: dict[str, list[str]] = {}
        self.group_notify: dict[str, list[str]] = {}  # the sync group's own notify_*
        self.smtp_alert: bool | None = None
        self.routes: list[Statement] = []  # the entries of virtual_routes
        self.rules: list[Statement] = []  # the entries of virtual_rules
        self.use_vmac: Statement | None = None

    def gather(self) -> None:
        """Read every directive of the block, then what the instance's sync group adds."""
        handlers: dict[str, Callable[[Statement], None]] = {
            "virtual_ipaddress": self._virtual_ipaddress,
            "virtual_ipaddress_excluded": self._virtual_ipaddress,
            "virtual_router_id": self._vrid,
            "version": self._version,
            "interface": self._interface,
            "advert_int": self._advert_int,
            "priority": self._priority,
            "state": self._state,
            "nopreempt": self._nopreempt,
            "preempt": self._preempt,
            "preempt_delay": self._preempt_delay,
            "accept": self._accept,
            "no_accept": self._accept,
            "strict_mode": self._strict_mode,
            "unicast_src_ip": self._unicast_src_ip,
            "unicast_peer": self._unicast_peer,
            "authentication": self._authentication,
            "garp_master_delay": self._garp,
            "garp_master_repeat": self._garp,
            "garp_master_refresh": self._garp,
            "track_interface": self.tracking.track,
            "track_script": self.tracking.track,
            "track_file": self.tracking.track,
            "smtp_alert": self._smtp_alert,
            "promote_secondaries": self._promote_secondaries,
            "virtual_routes": self._routing,
            "virtual_rules": self._routing,
            "use_vmac": self._use_vmac,
            **{kw: self._notify for kw in NOTIFY_FIELDS},
        }
        for st in self.block.block or []:
            handler = handlers.get(st.keyword)
            if handler is not None:
                handler(st)
            elif st.keyword in INSTANCE_UNSUPPORTED:
                self._unsupported(st, INSTANCE_UNSUPPORTED[st.keyword])
            else:
                what = "block" if st.block is not None else "directive"
                self.report.on(st, f"unknown or unsupported vrrp_instance {what}; ignored")
        self._from_sync_group()

    def _unsupported(self, st: Statement, message: str) -> None:
        if st.block:
            lines = sorted({e.line for e in st.block})
            span = f"line {lines[0]}" if len(lines) == 1 else f"lines {lines[0]}-{lines[-1]}"
            count = len(st.block)
            message += f" ({count} entr{'y' if count == 1 else 'ies'}, {span})"
        self.report.on(st, message)

    def _virtual_ipaddress(self, st: Statement) -> None:
        if st.block is None:
            self.report.on(st, "expects a { } block of addresses; ignored")
            return
        excluded = st.keyword == "virtual_ipaddress_excluded"
        if excluded and st.block:
            self.report.on(
                st,
                "excluded addresses become ordinary addresses: they are listed in the "
                "adverts, so keepalived peers with this configuration and kube-vrrp drop each "
                "other's adverts (address list mismatch); move every node of this instance "
                "together",
            )
        for entry in st.block:
            address = self._address(entry, excluded)
            if address is not None:
                self.addresses.append(address)

    def _use_vmac(self, st: Statement) -> None:
        self.use_vmac = st

    def _routing(self, st: Statement) -> None:
        if st.block is None:
            self.report.on(st, "expects a { } block; ignored")
            return
        (self.routes if st.keyword == "virtual_routes" else self.rules).extend(st.block)

    def _address(self, entry: Statement, excluded: bool) -> Address | None:
        text = entry.keyword
        try:
            iface = ip_interface(text)
        except ValueError:
            self.report.at(
                entry.line,
                text,
                "not an IP address with an optional /prefix; ignored",
                file=entry.file,
            )
            return None
        if "/" not in text:
            self.report.at(
                entry.line,
                text,
                f"no prefix length: keepalived adds /{iface.network.prefixlen}, written out "
                f"as {iface.ip}/{iface.network.prefixlen}",
                severity="info",
                file=entry.file,
            )
        address = Address(iface, entry, excluded=excluded)
        words = entry.args
        i = 0
        while i < len(words):
            option = words[i]
            value = words[i + 1] if i + 1 < len(words) else None
            takes_value = option in _ADDRESS_VALUED
            if takes_value and value is None:
                self.address_warning(entry, option, "has no value; ignored")
                break
            if option == "dev":
                address.dev = value
            elif option == "label":
                address.label = value
            elif option in ("brd", "broadcast"):
                self.address_warning(
                    entry,
                    f"{option} {value}",
                    "ignored: addresses are added without a broadcast address (as `ip addr "
                    "add` without brd); only directed-broadcast senders notice",
                )
            elif option == "scope":
                severity: Severity = "info" if value in ("global", "universe") else "warning"
                self.address_warning(
                    entry,
                    f"scope {value}",
                    "ignored: addresses get global scope (link scope for link-local ones)",
                    severity,
                )
            elif option == "no_track":
                self.address_warning(
                    entry, option, "not supported: a removed VIP is put back while MASTER"
                )
            else:
                shown = f"{option} {value}" if takes_value else option
                self.address_warning(entry, shown, "address option not supported; ignored")
            i += 2 if takes_value else 1
        return address

    def address_warning(
        self, entry: Statement, option: str, message: str, severity: Severity = "warning"
    ) -> None:
        self.report.at(
            entry.line, f"{entry.keyword} {option}", message, severity=severity, file=entry.file
        )

    def _vrid(self, st: Statement) -> None:
        value = integer(st.args[0]) if st.args else None
        if value is None or not VRID_MIN <= value <= VRID_MAX:
            self.report.on(st, f"{' '.join(st.args)!r} is not {VRID_MIN}..{VRID_MAX}; ignored")
            return
        self.vrid = value

    def _version(self, st: Statement) -> None:
        value = integer(st.args[0]) if st.args else None
        if value not in (2, 3):
            self.report.on(st, f"{' '.join(st.args)!r} is not 2 or 3; ignored")
            return
        self.version = (value, st)

    def _interface(self, st: Statement) -> None:
        if not st.args:
            self.report.on(st, "no interface name; ignored")
            return
        self.interface = st.args[0]

    def _advert_int(self, st: Statement) -> None:
        seconds = decimal_seconds(st.args[0]) if st.args else None
        if seconds is None or seconds <= 0:
            self.report.on(st, f"{' '.join(st.args)!r} is not a positive number of seconds")
            return
        self.advert = (seconds, st)

    def _priority(self, st: Statement) -> None:
        value = integer(st.args[0]) if st.args else None
        if value is None or not PRIORITY_MIN <= value <= PRIORITY_OWNER:
            self.report.on(
                st,
                f"{' '.join(st.args)!r} is not {PRIORITY_MIN}..{PRIORITY_OWNER}; "
                "keepalived uses 100",
            )
            return
        self.priority = (value, st)

    def _state(self, st: Statement) -> None:
        state = st.args[0].upper() if st.args else ""
        self.state = (state, st)
        self.report.on(
            st,
            f"dropped: every node starts as BACKUP and the election makes the node with the "
            f"highest priority MASTER; `state {state or '?'}` is not a priority hint. Prefer a "
            "node with priority (nodePriorities)",
            severity="info",
        )

    def _nopreempt(self, st: Statement) -> None:
        self.nopreempt = st

    def _preempt(self, st: Statement) -> None:
        self.report.on(st, "the default (preempt: Always); nothing to set", severity="info")

    def _preempt_delay(self, st: Statement) -> None:
        seconds = decimal_seconds(st.args[0]) if st.args else None
        if seconds is None:
            self.report.on(st, f"{' '.join(st.args)!r} is not a number of seconds; ignored")
            return
        self.preempt_delay = (seconds, st)

    def _accept(self, st: Statement) -> None:
        self.accept = st.keyword == "accept"

    def _strict_mode(self, st: Statement) -> None:
        if self.defs.values.read_bool(st):
            self.strict = st
            self.report.on(
                st,
                "strict mode is not a setting here; converted as `accept: false` (its effect "
                "on accept mode)",
            )

    def _unicast_src_ip(self, st: Statement) -> None:
        if not st.args or not self._is_ip(st.args[0]):
            self.report.on(st, f"{' '.join(st.args)!r} is not an IP address; ignored")
            return
        self.unicast_src = (str(ip_address(st.args[0])), st)

    def _unicast_peer(self, st: Statement) -> None:
        if st.block is None:
            self.report.on(st, "expects a { } block of peer addresses; ignored")
            return
        self.unicast_block = st
        for entry in st.block:
            if not self._is_ip(entry.keyword):
                self.report.at(
                    entry.line, entry.keyword, "not an IP address; ignored", file=entry.file
                )
                continue
            if entry.args:
                self.report.at(
                    entry.line,
                    f"{entry.keyword} {' '.join(entry.args)}",
                    "TTL checks (min_ttl / max_ttl) are not supported; ignored",
                    file=entry.file,
                )
            self.unicast_peers.append((str(ip_address(entry.keyword)), entry))

    @staticmethod
    def _is_ip(text: str) -> bool:
        try:
            ip_address(text)
        except ValueError:
            return False
        return True

    def _authentication(self, st: Statement) -> None:
        if st.block is None:
            self.report.on(st, "expects a { } block; ignored")
            return
        auth_type: Statement | None = None
        password: Statement | None = None
        for entry in st.block:
            if entry.keyword == "auth_type":
                auth_type = entry
            elif entry.keyword == "auth_pass":
                password = entry
            else:
                self.report.on(entry, "unknown authentication option; ignored")
        kind = auth_type.args[0].upper() if auth_type is not None and auth_type.args else None
        if kind == "AH":
            assert auth_type is not None
            self.report.on(
                auth_type,
                "IPsec AH authentication is not supported; converted without authentication "
                "(peers still using AH will not accept our adverts)",
            )
            return
        if kind != "PASS":
            self.report.on(
                auth_type or st,
                f"auth_type {kind or '(none)'} is not PASS; authentication not converted",
            )
            return
        if password is None or not password.args:
            self.report.on(st, "auth_type PASS without auth_pass; not converted")
            return
        text = password.args[0]
        if len(text.encode()) > PASSWORD_MAX_BYTES:
            text = text.encode()[:PASSWORD_MAX_BYTES].decode(errors="ignore")
            self.report.on(
                password,
                f"longer than {PASSWORD_MAX_BYTES} characters: keepalived sends only the first "
                f"{PASSWORD_MAX_BYTES}, so the password is those ({text!r})",
            )
        self.auth = (text, password)

    def _garp(self, st: Statement) -> None:
        key = {
            "garp_master_delay": "masterDelay",
            "garp_master_repeat": "masterRepeat",
            "garp_master_refresh": "masterRefresh",
        }[st.keyword]
        if not st.args:
            self.report.on(st, "no value; ignored")
            return
        self.defs.values.garp_value(st, self.garp, key, st.args[0], whole=True)

    def _smtp_alert(self, st: Statement) -> None:
        self.smtp_alert = self.defs.values.read_bool(st)

    def _promote_secondaries(self, st: Statement) -> None:
        self.report.on(st, "always set: nothing to convert", severity="info")

    def _notify(self, st: Statement) -> None:
        argv = self.defs.values.notify_argv(st)
        if argv is not None:
            self.notify[NOTIFY_FIELDS[st.keyword]] = argv

    def _from_sync_group(self) -> None:
        group = self.defs.groups.get(self.iname)
        if group is None:
            return
        for kind, (argv, _) in group.notify.items():
            self.group_notify[kind] = argv
            group.copied.setdefault(kind, []).append(self.iname)
        if group.smtp_alert and self.smtp_alert is None:
            self.smtp_alert = True
        for st in group.tracking:
            self.report.on(
                st,
                f"group tracking is copied to each member (here {self.iname})",
                severity="info",
            )
            self.tracking.track(st, group.st.args[0])
