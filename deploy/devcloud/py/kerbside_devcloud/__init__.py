"""Small pieces the kerbside-latency dev cloud needs on top of Debian's
OpenStack Zed libraries: a port-binding ML2 mechanism driver, a Neutron
server launcher with the mapper fix, the nova-compute launcher, the
virt driver that boots a real guest per server (virt.py), and the seeding
script."""
