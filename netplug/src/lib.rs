//! krun-netplug: a flannel-like bridge network for pods (bridge, veth,
//! IPAM, NAT, hostPort), also usable as a CNI plugin.
