"""Small pieces the kerbside-latency dev cloud needs on top of Debian's
OpenStack Zed libraries: a port-binding ML2 mechanism driver, a Neutron
server launcher with the mapper fix, and the seeding script."""
