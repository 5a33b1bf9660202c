//! Windows: the Internet Options proxy from the registry (see [`super`]).

use windows_sys::Win32::System::Registry::{
    HKEY, HKEY_CURRENT_USER, HKEY_LOCAL_MACHINE, RRF_RT_REG_DWORD, RRF_RT_REG_SZ, RegGetValueW,
};

use super::SystemSetting;

const SETTINGS_KEY: &str = r"Software\Microsoft\Windows\CurrentVersion\Internet Settings";
const POLICY_KEY: &str = r"Software\Policies\Microsoft\Windows\CurrentVersion\Internet Settings";

/// Longest registry string read (a `ProxyOverride` list can be long, not this long).
const MAX_VALUE_BYTES: u32 = 64 * 1024;

/// The manual proxy setting in force, if it is on.
pub(super) fn setting() -> Option<SystemSetting> {
    // A machine policy can make the setting machine-wide rather than per user.
    let root = match dword(HKEY_LOCAL_MACHINE, POLICY_KEY, "ProxySettingsPerUser") {
        Some(0) => HKEY_LOCAL_MACHINE,
        _ => HKEY_CURRENT_USER,
    };
    if let Some(script) = string(root, SETTINGS_KEY, "AutoConfigURL") {
        log::info!(
            "the system proxy setting uses the automatic configuration script {script}, which appstart does not run; use install --proxy or HTTPS_PROXY if requests must go through a proxy"
        );
    }
    if dword(root, SETTINGS_KEY, "ProxyEnable").unwrap_or(0) == 0 {
        return None;
    }
    let server = string(root, SETTINGS_KEY, "ProxyServer")?;
    Some(SystemSetting {
        server,
        bypass: string(root, SETTINGS_KEY, "ProxyOverride").unwrap_or_default(),
    })
}

fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(std::iter::once(0)).collect()
}

/// A `REG_DWORD` value, or `None` when it is missing or of another type.
fn dword(root: HKEY, key: &str, name: &str) -> Option<u32> {
    let (key, name) = (wide(key), wide(name));
    let mut value = 0u32;
    let mut size = std::mem::size_of::<u32>() as u32;
    // SAFETY: the key and value names are NUL-terminated UTF-16; the buffer is a u32 and
    // `size` says so; the type pointer may be null.
    let status = unsafe {
        RegGetValueW(
            root,
            key.as_ptr(),
            name.as_ptr(),
            RRF_RT_REG_DWORD,
            std::ptr::null_mut(),
            (&mut value as *mut u32).cast(),
            &mut size,
        )
    };
    (status == 0).then_some(value)
}

/// A `REG_SZ` value (without its NUL), or `None` when missing, empty, too long or not text.
fn string(root: HKEY, key: &str, name: &str) -> Option<String> {
    let (key, name) = (wide(key), wide(name));
    let mut size = 0u32;
    // SAFETY: as above; a null buffer asks for the size in bytes only.
    let status = unsafe {
        RegGetValueW(
            root,
            key.as_ptr(),
            name.as_ptr(),
            RRF_RT_REG_SZ,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut size,
        )
    };
    if status != 0 || size == 0 || size > MAX_VALUE_BYTES {
        return None;
    }
    let mut buffer = vec![0u16; (size as usize).div_ceil(2)];
    let mut size = (buffer.len() * 2) as u32;
    // SAFETY: `buffer` holds `size` bytes; RegGetValueW NUL-terminates within them.
    let status = unsafe {
        RegGetValueW(
            root,
            key.as_ptr(),
            name.as_ptr(),
            RRF_RT_REG_SZ,
            std::ptr::null_mut(),
            buffer.as_mut_ptr().cast(),
            &mut size,
        )
    };
    if status != 0 {
        return None;
    }
    let length = buffer.iter().position(|&c| c == 0).unwrap_or(buffer.len());
    let text = String::from_utf16(&buffer[..length]).ok()?;
    let text = text.trim().to_string();
    (!text.is_empty()).then_some(text)
}
