"""Seed the kerbside-latency dev cloud, idempotently, in one process.

  seed catalog   services and endpoints (needed before nova-compute starts)
  seed all       the catalog, then projects, a user, roles, quotas, an
                 image (our guest's qcow2, which devcloud.sh writes first
                 with cmd/latency-guest-image), flavors and a network

Each step looks before it creates, so a second run changes nothing.
Configuration comes from DEVCLOUD_* variables set by devcloud.sh.
"""

import hashlib
import os
import sys

import openstack

AUTH_URL = os.environ["DEVCLOUD_AUTH_URL"]
STATE = os.environ["DEVCLOUD_STATE"]
BASE = int(os.environ["DEVCLOUD_PORT_BASE"])
ADMIN_PASSWORD = os.environ["DEVCLOUD_ADMIN_PASSWORD"]
USER_PASSWORD = os.environ["DEVCLOUD_USER_PASSWORD"]

PROJECT = "kerbside-latency"
NOQUOTA_PROJECT = "kerbside-latency-noquota"
USER = "latency"
IMAGE = "uefi-latency-guest"
FLAVOR = "vdi-tiny"
FLAVOR_TOO_BIG = "devcloud-too-big"  # more RAM than the fake host has: boots go to ERROR
# Servers of this flavor get a real QEMU guest of their own (kerbside_devcloud.virt).
FLAVOR_GUEST = "vdi-guest"
GUEST_SPEC = {"hw_video:ram_max_mb": "64", "devcloud:guest": "qemu"}
NETWORK = "public1"

SERVICES = [
    # type, name, URL
    ("image", "glance", "http://127.0.0.1:%d" % (BASE + 1)),
    ("placement", "placement", "http://127.0.0.1:%d" % (BASE + 2)),
    ("compute", "nova", "http://127.0.0.1:%d/v2.1" % (BASE + 3)),
    ("network", "neutron", "http://127.0.0.1:%d" % (BASE + 4)),
]


def say(msg):
    print("seed: " + msg, file=sys.stderr, flush=True)


def connect(project="admin"):
    return openstack.connect(
        auth_url=AUTH_URL, username="admin", password=ADMIN_PASSWORD,
        project_name=project, user_domain_name="Default",
        project_domain_name="Default", region_name="RegionOne",
        interface="public", identity_api_version="3")


def seed_catalog(conn):
    for typ, name, url in SERVICES:
        svc = conn.identity.find_service(name)
        if svc is None:
            svc = conn.identity.create_service(name=name, type=typ)
            say("service %s created" % name)
        have = {e.interface for e in conn.identity.endpoints(service_id=svc.id)}
        for interface in ("public", "internal"):
            if interface not in have:
                conn.identity.create_endpoint(service_id=svc.id, interface=interface,
                                              url=url, region_id="RegionOne")


def seed_image(conn):
    """The image IMAGE is our guest's qcow2 (devcloud.sh writes it before
    seeding): uploaded when missing, replaced when its checksum is not
    the file's (a cloud seeded by an older version, or a changed guest)."""
    path = os.path.join(STATE, "glance", "seed-image.qcow2")
    with open(path, "rb") as f:
        data = f.read()
    sha512 = hashlib.sha512(data).hexdigest()
    for i in conn.image.images(name=IMAGE):
        if i.status == "active" and i.hash_value == sha512:
            return
        conn.image.delete_image(i)
        say("image %s (%s) is not the guest's: deleted" % (IMAGE, i.id))
    # A BIOS guest: no hw_firmware_type=uefi (the loadtest's own uploads
    # carry it; the dev cloud's driver boots every guest with SeaBIOS).
    conn.image.create_image(name=IMAGE, filename=path, disk_format="qcow2",
                            container_format="bare", visibility="public",
                            hw_video_ram="64", wait=True, timeout=120)
    say("image %s created from %s (%d bytes)" % (IMAGE, path, len(data)))


def seed_all(conn):
    seed_catalog(conn)
    ident = conn.identity
    domain = ident.find_domain("default") or ident.find_domain("Default")
    member = ident.find_role("member")
    admin_role = ident.find_role("admin")
    projects = {}
    for name in (PROJECT, NOQUOTA_PROJECT):
        p = ident.find_project(name, domain_id=domain.id)
        if p is None:
            p = ident.create_project(name=name, domain_id=domain.id,
                                     description="kerbside-latency dev cloud")
            say("project %s created" % name)
        projects[name] = p
    user = ident.find_user(USER, domain_id=domain.id)
    if user is None:
        user = ident.create_user(name=USER, password=USER_PASSWORD, domain_id=domain.id,
                                 default_project_id=projects[PROJECT].id)
        say("user %s created" % USER)
    else:
        ident.update_user(user, password=USER_PASSWORD)
    admin = ident.find_user("admin", domain_id=domain.id)
    for p in projects.values():
        conn.grant_role(member.id, user=user.id, project=p.id)
        # The admin may work in these projects too (sweep tests, cleanup).
        conn.grant_role(admin_role.id, user=admin.id, project=p.id)

    conn.set_compute_quotas(projects[PROJECT].id, instances=50, cores=200, ram=4000000)
    conn.set_compute_quotas(projects[NOQUOTA_PROJECT].id, instances=0)

    seed_image(conn)

    flavors = {f.name: f for f in conn.compute.flavors()}
    if FLAVOR not in flavors:
        f = conn.compute.create_flavor(name=FLAVOR, ram=512, vcpus=1, disk=2, is_public=True)
        conn.compute.create_flavor_extra_specs(f, {"hw_video:ram_max_mb": "64"})
        say("flavor %s created" % FLAVOR)
    if FLAVOR_GUEST not in flavors:
        f = conn.compute.create_flavor(name=FLAVOR_GUEST, ram=512, vcpus=1, disk=2, is_public=True)
        conn.compute.create_flavor_extra_specs(f, GUEST_SPEC)
        say("flavor %s created" % FLAVOR_GUEST)
    if FLAVOR_TOO_BIG not in flavors:
        conn.compute.create_flavor(name=FLAVOR_TOO_BIG, ram=2000000, vcpus=1, disk=2, is_public=True)
        say("flavor %s created" % FLAVOR_TOO_BIG)

    net = conn.network.find_network(NETWORK)
    if net is None:
        net = conn.network.create_network(name=NETWORK, shared=True,
                                          provider_network_type="flat",
                                          provider_physical_network="physnet1")
        say("network %s created" % NETWORK)
    if not list(conn.network.subnets(network_id=net.id)):
        conn.network.create_subnet(network_id=net.id, name=NETWORK + "-v4", ip_version=4,
                                   cidr="10.99.0.0/16", enable_dhcp=False)
        say("subnet of %s created" % NETWORK)


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    conn = connect()
    if what == "catalog":
        seed_catalog(conn)
    elif what == "all":
        seed_all(conn)
    else:
        print("usage: seed catalog|all", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
