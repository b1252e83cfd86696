"""An ML2 mechanism driver that binds every port on every host.

The dev cloud runs Neutron without agents (no Open vSwitch, no Linux
bridge) and Nova with its fake virt driver, which plugs nothing. Without a
driver that binds, every boot ends in PortBindingFailed. This one binds the
first segment it is offered with a plain "other" VIF, which the fake virt
driver accepts, and does nothing else.
"""

from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class BindAllMechanismDriver(api.MechanismDriver):
    """Binds each port to the first segment offered, with no agent."""

    def initialize(self):
        pass

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(segment[api.ID], portbindings.VIF_TYPE_OTHER,
                                {portbindings.CAP_PORT_FILTER: False},
                                status="ACTIVE")
            return
