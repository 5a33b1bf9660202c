//! Linux: NetworkManager's `Metered` property, read over the system D-Bus.
//!
//! zbus finds the system bus at `DBUS_SYSTEM_BUS_ADDRESS` when it is set (tests point it at
//! a private bus), else at `/run/dbus/system_bus_socket`.

use super::Cost;

const SERVICE: &str = "org.freedesktop.NetworkManager";
const PATH: &str = "/org/freedesktop/NetworkManager";
/// `NM_METERED_YES` and `NM_METERED_GUESS_YES`.
const METERED: [u32; 2] = [1, 3];

pub(super) fn current() -> Cost {
    match metered_property() {
        Ok(value) if METERED.contains(&value) => Cost::Metered,
        Ok(_) => Cost::Unmetered,
        Err(e) => Cost::Unknown(format!("asking NetworkManager over the system D-Bus: {e}")),
    }
}

fn metered_property() -> zbus::Result<u32> {
    let connection = zbus::blocking::Connection::system()?;
    let proxy = zbus::blocking::Proxy::new(&connection, SERVICE, PATH, SERVICE)?;
    proxy.get_property::<u32>("Metered")
}
