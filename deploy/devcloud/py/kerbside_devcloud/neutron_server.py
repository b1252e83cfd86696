"""Start neutron-server from the python3-neutron library.

Neutron 21 (Zed) answers 500 on GET /v2.0/ports when the port-forwarding
model has not been imported before SQLAlchemy configures its mappers (the
Port model refers to it by name and the lookup fails at the first query).
The port-forwarding service plugin would import it; the dev cloud runs no
service plugins, so import it here and configure the mappers at once.
"""

import sys

import neutron.cmd.eventlet  # noqa: F401  (monkey-patches first, as neutron-server does)
from neutron.cmd.eventlet import server
import neutron.db.models.port_forwarding  # noqa: F401
from sqlalchemy import orm


def main():
    orm.configure_mappers()
    return server.main()


if __name__ == "__main__":
    sys.exit(main())
