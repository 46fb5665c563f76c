"""The lab: a simulated slice of the province on one machine.

Hosts are systemd-nspawn containers over a cached debootstrap base, the network is namespaces,
veth links and tc, field devices are the simulators in `hazmon.lab.sim`.
"""
