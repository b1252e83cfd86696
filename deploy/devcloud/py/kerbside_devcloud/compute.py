"""Start nova-compute with the fake virt driver so that it can restart.

Nova 2025.1 keeps a compute node's identity in <state_path>/compute_id and
refuses a second start without it ("No local node identity found, but this
is not our first startup"). The fake driver never writes that file, and
takes its node's UUID from oslo's uuidsentinel, which is random in each
process. So: pin the sentinel to a UUID kept in the state directory, and
write compute_id with the same UUID once, before nova-compute starts.

DEVCLOUD_NOVA_STATE is Nova's state_path; the host name is devcloud
(nova.conf's [DEFAULT] host), the fake driver's node name. The driver is
kerbside_devcloud.virt's GuestDriver (Nova's fake driver that boots a real
guest per server of the flavor vdi-guest), registered as
nova.virt.devcloud_guest.
"""

import os
import sys
import uuid

from oslo_utils.fixture import uuidsentinel

NODE = "devcloud"


def pin_node_uuid(state):
    path = os.path.join(state, "compute_id")
    if os.path.exists(path):
        with open(path) as f:
            node = f.read().strip()
    else:
        node = str(uuid.uuid4())
        with open(path + ".tmp", "w") as f:
            f.write(node)
        os.rename(path + ".tmp", path)
    uuid.UUID(node)  # a damaged file stops here, not deep inside Nova
    uuidsentinel._sentinels["node_" + NODE] = node
    return node


def main():
    pin_node_uuid(os.environ["DEVCLOUD_NOVA_STATE"])
    sys.argv[0] = "nova-compute"
    # eventlet's monkey patching first, as nova-compute's own start does,
    # then the driver: Nova 2025.1 loads compute_driver from the nova.virt
    # namespace only, so ours (kerbside_devcloud.virt, nova.conf's
    # devcloud_guest.GuestDriver) is named there.
    import nova.cmd  # noqa: F401
    from kerbside_devcloud import virt
    sys.modules["nova.virt.devcloud_guest"] = virt
    from nova.cmd.compute import main as compute_main
    return compute_main()


if __name__ == "__main__":
    sys.exit(main())
