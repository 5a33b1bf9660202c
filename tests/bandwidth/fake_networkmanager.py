"""A stand-in for NetworkManager on a private D-Bus, for tests/bandwidth.rs.

Owns the name org.freedesktop.NetworkManager on the bus at DBUS_SYSTEM_BUS_ADDRESS and
exposes the read-only property `Metered` (type u) on /org/freedesktop/NetworkManager, as
NetworkManager does. Its value is read from the file named by argv[1] at every Get, so the
test changes it between runs. Prints "ready" once the name is owned.
"""

import asyncio
import sys

from dbus_next import BusType, PropertyAccess
from dbus_next.aio import MessageBus
from dbus_next.service import ServiceInterface, dbus_property


class NetworkManager(ServiceInterface):
    def __init__(self, value_file):
        super().__init__("org.freedesktop.NetworkManager")
        self.value_file = value_file

    @dbus_property(access=PropertyAccess.READ)
    def Metered(self) -> "u":  # noqa: F821 (a D-Bus signature, not a Python name)
        with open(self.value_file) as f:
            return int(f.read().strip())


async def main():
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    bus.export("/org/freedesktop/NetworkManager", NetworkManager(sys.argv[1]))
    await bus.request_name("org.freedesktop.NetworkManager")
    print("ready", flush=True)
    await asyncio.get_running_loop().create_future()


asyncio.run(main())
