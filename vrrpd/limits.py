"""The protocol's limits, named once: what RFC 5798 / 3768, Linux and keepalived allow.

The spec's validators, the CRD generated from it, the codec, the state machine, probe
tracking, `vrrpd convert` and the operator all bound values by these names, and
`clamp_priority` is the one place an effective priority is brought within them. Pure: no
imports beyond the address types every side passes around.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface  # an address with its prefix length

# --- the VRRP header (RFC 5798 §5.2, RFC 3768 §5.3) -------------------------------------

VRRP_VERSIONS = (2, 3)  # RFC 3768 (IPv4, whole seconds, PASS) and RFC 5798
VRID_MIN, VRID_MAX = 1, 255  # Virtual Rtr ID is one octet; 0 is reserved
PRIORITY_RESIGN = 0  # RFC 5798 §6.1: "the current Master has stopped participating"
PRIORITY_MIN = 1  # the lowest priority of a router that takes part
# RFC 5798 §5.2.4: routers backing up a virtual router use 1..254, and effective
# priorities (base + probe weights) are kept within PRIORITY_MIN..PRIORITY_BACKUP_MAX ...
PRIORITY_BACKUP_MAX = 254
PRIORITY_OWNER = 255  # ... while 255, the highest, is the router that owns the addresses

ADDRESS_COUNT_MAX = 0xFF  # Count IPvX Addrs is one octet
# What one advert carries per family: the count's octet, and for IPv6 a 1500-byte link:
# 40 (IPv6 header) + 8 (VRRP header) + 16 n <= 1500.
MAX_ADDRESSES = {4: ADDRESS_COUNT_MAX, 6: 90}
ADVERT_INTERVAL_V3_MAX_CS = 0x0FFF  # RFC 5798 §5.2.7: Max Adver Int, 12 bits of centiseconds
ADVERT_INTERVAL_V2_MAX_S = 0xFF  # RFC 3768 §5.3.7: Adver Int, 8 bits of whole seconds
ADVERT_INTERVAL_MAX_CS = {2: ADVERT_INTERVAL_V2_MAX_S * 100, 3: ADVERT_INTERVAL_V3_MAX_CS}
PASSWORD_MAX_BYTES = 8  # RFC 3768 §5.3.10: 8 octets of Authentication Data (PASS)

# --- Linux ------------------------------------------------------------------------------

IFNAMSIZ = 16  # interface names and address labels are at most IFNAMSIZ - 1 bytes

# --- keepalived's ranges, kept so that its configurations carry over --------------------

PROBE_WEIGHT_MAX = 254  # vrrp_script weight: read in -254..254 (then ±254 trimmed to ±253)
PROBE_RISE_FALL_MAX = 255
GARP_REPEAT_MIN, GARP_REPEAT_MAX = 1, 255  # vrrp_garp_master_repeat
GARP_MASTER_DELAY_MAX_CS = 3600 * 100  # vrrp_garp_master_delay
GARP_INTERVAL_MAX_CS = 10 * 100  # vrrp_garp_interval
GARP_MASTER_REFRESH_MAX_CS = 24 * 3600 * 100  # vrrp_garp_master_refresh

# --- our own bounds (durations in centiseconds) -----------------------------------------

PREEMPT_DELAY_MAX_CS = 3600 * 100
PROBE_INTERVAL_MAX_CS = 3600 * 100
NOTIFY_TIMEOUT_MAX_CS = 3600 * 100
WEBHOOK_TIMEOUT_MAX_CS = 5 * 60 * 100
WEBHOOK_RETRIES_MAX = 10
SMTP_CONNECT_TIMEOUT_MAX_CS = 5 * 60 * 100
SMTP_PORT = 25
PORT_MIN, PORT_MAX = 1, 65535
HTTP_STATUS_MIN, HTTP_STATUS_MAX = 100, 599


# --- the one rule applying them ---------------------------------------------------------


def clamp_priority(base: int, effective: int) -> int:
    """The priority a router advertises, given its base and its effective priority (base
    adjusted by probe weights): the address owner (base 255) keeps 255; any other router
    stays within 1..254, never 0 (that resigns) nor 255 (that claims the addresses). The one
    place this rule is applied: probe tracking and the state machine both call it."""
    if base == PRIORITY_OWNER:
        return PRIORITY_OWNER
    return max(PRIORITY_MIN, min(PRIORITY_BACKUP_MAX, effective))
