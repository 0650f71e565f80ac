"""vrrpd: a keepalived-compatible VRRP daemon that moves virtual IPs on Linux interfaces."""
