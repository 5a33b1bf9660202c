//! A fresh install: the newest eligible release into a new folder, with its shortcuts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use appstart_layout::{InstallDir, LauncherConfig, history};

use super::UpdateReport;
use super::find::{Chooser, refresh};
use super::stage::{local_files, stage_version};
use crate::cancel::CancelToken;
use crate::control::install_id::InstallId;
use crate::control::policy::Policy;
use crate::download::RetryPolicy;
use crate::error::{Error, Result};
use crate::events::Events;
use crate::lock::InstallLock;
use crate::manifest_fetch::{ManifestSource, fetch_fresh, pack_data_start};
use crate::metered::Metered;
use crate::mirrors::Mirrors;
use crate::proxy::ProxySettings;
use crate::settings::{CA_FILE_NAME, InstallSettings};
use crate::shortcut::{self, ShortcutLocation};
use crate::stage::Records;
use crate::switch;
use crate::tls::TlsTrust;
use crate::tuf::client::{Limits, TrustedMetadata};

/// Options of a fresh install: [`InstallOptions::new`] with the four things every install
/// needs, then the `with_` methods (or the public fields) for the rest.
///
/// ```
/// # use updater_core::InstallOptions;
/// let options = InstallOptions::new(
///     "https://updates.example.com/myapp",
///     "/media/usb/1.root.json",
///     "myapp",
///     "/opt/myapp",
/// )
/// .with_channel("beta")
/// .with_groups(vec!["staff".into()]);
/// assert_eq!(options.channel, "beta");
/// assert_eq!(options.platform, updater_core::advanced::release::current_platform());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InstallOptions {
    /// Repository base URL.
    pub url: String,
    /// The root metadata file to trust (distributed out of band by the publisher).
    pub trusted_root: PathBuf,
    /// App to install.
    pub app: String,
    /// Install folder (must not exist or be empty).
    pub dir: PathBuf,
    /// Channel.
    pub channel: String,
    /// Platform (default: this machine's).
    pub platform: String,
    /// The launcher binary to place as `DIR/appstart` when the release ships none.
    pub launcher: PathBuf,
    /// Shortcuts to the launcher to create (recorded in `state/shortcuts.toml`).
    pub shortcuts: Vec<ShortcutLocation>,
    /// Groups the install is in, for releases published to groups.
    pub groups: Vec<String>,
    /// Where progress events go while the release downloads (`None`: nowhere).
    pub events: Option<Events>,
    /// Fail a request after this long without data from the server (once, not retried).
    /// `None`: 30 s, the installed `stall_secs` default. Not saved in the install.
    pub timeout: Option<Duration>,
    /// Stops the install part-way when cancelled (the folder is then removed again).
    pub cancel: CancelToken,
    /// The HTTP proxy settings, saved in the install (default: none, the environment's).
    pub proxy: ProxySettings,
    /// A PEM file of CA certificates to trust for HTTPS beside the OS trust store; copied to
    /// `state/ca.pem` and trusted by every later request of the install (`--ca-file`).
    pub ca_file: Option<PathBuf>,
    /// More base URLs of the same repository (`install --mirror`), tried after `url` in
    /// order of recent health and kept in the install (docs/hosting.md, "Mirrors").
    pub mirrors: Vec<String>,
    /// Bandwidth limit in bytes per second (at least 1024): kept as the install's
    /// `max_bandwidth` for its background downloads (`install --max-bandwidth`), and applied
    /// to this install's own download too. `None`: unlimited.
    pub max_bandwidth: Option<u64>,
}

impl InstallOptions {
    /// Options to install `app` from the repository at `url` into `dir`, trusting the root
    /// metadata file `trusted_root`. Defaults: channel `stable`, this machine's platform, the
    /// launcher `appstart` (`appstart.exe` on Windows) beside the running program, no
    /// shortcuts, no groups.
    pub fn new(
        url: impl Into<String>,
        trusted_root: impl Into<PathBuf>,
        app: impl Into<String>,
        dir: impl Into<PathBuf>,
    ) -> Self {
        let launcher_name = format!("appstart{}", std::env::consts::EXE_SUFFIX);
        let launcher = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|folder| folder.join(&launcher_name)))
            .unwrap_or_else(|| PathBuf::from(&launcher_name));
        InstallOptions {
            url: url.into(),
            trusted_root: trusted_root.into(),
            app: app.into(),
            dir: dir.into(),
            channel: crate::release::DEFAULT_CHANNEL.into(),
            platform: crate::release::current_platform(),
            launcher,
            shortcuts: Vec::new(),
            groups: Vec::new(),
            events: None,
            timeout: None,
            cancel: CancelToken::default(),
            proxy: ProxySettings::default(),
            ca_file: None,
            mirrors: Vec::new(),
            max_bandwidth: None,
        }
    }

    /// More base URLs of the same repository, tried after `url` (`install --mirror`): each
    /// an `http://`, `https://` or `file://` URL or a repository folder's path.
    pub fn with_mirrors(mut self, mirrors: Vec<String>) -> Self {
        self.mirrors = mirrors;
        self
    }

    /// The HTTP proxy settings to use and keep (`install --proxy`, ...).
    pub fn with_proxy(mut self, proxy: ProxySettings) -> Self {
        self.proxy = proxy;
        self
    }

    /// Trusts the CA certificates of the PEM file `path` for HTTPS, beside the OS trust store.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// The channel to follow.
    pub fn with_channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }

    /// The platform to install for (another machine's, for a cross install).
    pub fn with_platform(mut self, platform: impl Into<String>) -> Self {
        self.platform = platform.into();
        self
    }

    /// The launcher binary to place when the release ships none.
    pub fn with_launcher(mut self, launcher: impl Into<PathBuf>) -> Self {
        self.launcher = launcher.into();
        self
    }

    /// Shortcuts to make.
    pub fn with_shortcuts(mut self, shortcuts: Vec<ShortcutLocation>) -> Self {
        self.shortcuts = shortcuts;
        self
    }

    /// Groups the install is in.
    pub fn with_groups(mut self, groups: Vec<String>) -> Self {
        self.groups = groups;
        self
    }

    /// Where progress events go while the release downloads.
    pub fn with_events(mut self, events: Events) -> Self {
        self.events = Some(events);
        self
    }

    /// Fail a request after `timeout` without data from the server.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Stop the install part-way when `cancel` is cancelled.
    pub fn with_cancel(mut self, cancel: CancelToken) -> Self {
        self.cancel = cancel;
        self
    }
}

/// Installs the newest eligible release of an app into a new folder, with the shortcuts
/// asked for. On failure the shortcuts made so far and the folder are removed again (the
/// folder is emptied, if it existed and was empty).
pub fn install(options: &InstallOptions) -> Result<UpdateReport> {
    // A bad repository path is refused before anything is made.
    crate::transport::repository_url(&options.url)?;
    for mirror in &options.mirrors {
        crate::transport::repository_url(mirror)?;
    }
    if options.mirrors.len() > crate::settings::MAX_MIRRORS {
        return Err(Error::Invalid(format!(
            "{} mirrors given; at most {} are kept",
            options.mirrors.len(),
            crate::settings::MAX_MIRRORS
        )));
    }
    options.proxy.check()?;
    // So is a bad CA file, naming it.
    let trust = match &options.ca_file {
        Some(path) => TlsTrust::with_ca_file(path)?,
        None => TlsTrust::system(),
    };
    let dir = &options.dir;
    let existed = dir.exists();
    if existed {
        let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
        if entries.next().is_some() {
            return Err(Error::Invalid(format!(
                "{} is not empty; install into a new folder (or use `appupdate update --dir` for an existing install)",
                dir.display()
            )));
        }
    }
    let result = install_into(options, &trust);
    if result.is_err() {
        match shortcut::remove_recorded(&InstallDir::new(dir)) {
            Ok(_) => {}
            Err(err) => log::warn!("could not remove the shortcuts made: {err}"),
        }
        let cleanup = if existed {
            empty_folder(dir)
        } else {
            appstart_layout::fsutil::remove_dir_all_if_exists(dir).map_err(Error::from)
        };
        if let Err(err) = cleanup {
            log::warn!("could not clean up {}: {err}", dir.display());
        }
    }
    result
}

fn empty_folder(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)
        .map_err(|e| Error::io("listing", dir, e))?
        .flatten()
    {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            appstart_layout::fsutil::remove_dir_all_if_exists(&path)?;
        } else {
            appstart_layout::fsutil::remove_file_if_exists(&path)?;
        }
    }
    Ok(())
}

fn install_into(options: &InstallOptions, trust: &TlsTrust) -> Result<UpdateReport> {
    let install = InstallDir::new(&options.dir);
    appstart_layout::fsutil::create_dir_all(&install.versions_dir())?;
    appstart_layout::fsutil::create_dir_all(&install.state_dir())?;
    let _lock = InstallLock::acquire(&install, "install", Duration::from_secs(0))?;
    let root_bytes = appstart_layout::fsutil::read_capped(
        &options.trusted_root,
        Limits::default().max_root_size,
    )?;
    TrustedMetadata::init(
        &install.metadata_dir(),
        &root_bytes,
        &options.trusted_root.display().to_string(),
    )?;
    let mut settings = InstallSettings::new(
        crate::transport::repository_url(&options.url)?,
        options.app.clone(),
        options.channel.clone(),
        options.platform.clone(),
    );
    for group in &options.groups {
        crate::control::check_group(group).map_err(Error::Invalid)?;
    }
    settings.groups.clone_from(&options.groups);
    settings.mirrors = options
        .mirrors
        .iter()
        .map(|mirror| crate::transport::repository_url(mirror))
        .collect::<Result<_>>()?;
    settings.proxy.clone_from(&options.proxy.url);
    settings.no_proxy.clone_from(&options.proxy.no_proxy);
    // Absolute, so later runs from anywhere read the same file.
    settings.proxy_credentials = match &options.proxy.credentials_file {
        Some(path) => Some(std::path::absolute(path).map_err(|e| Error::io("resolving", path, e))?),
        None => None,
    };
    if let Some(path) = &options.ca_file {
        let bytes = appstart_layout::fsutil::read_capped(path, crate::tls::MAX_CA_FILE)?;
        appstart_layout::fsutil::write_atomic(&install.state_dir().join(CA_FILE_NAME), &bytes)?;
        settings.ca_file = Some(CA_FILE_NAME.to_string());
    }
    settings.max_bandwidth = options
        .max_bandwidth
        .map(crate::bandwidth::Rate::from_bytes_per_second);
    let policy = Policy::load(&install)?;
    if let Some(locked) = &policy.channel
        && *locked != settings.channel
    {
        return Err(Error::Invalid(format!(
            "the policy ({}) locks installs to channel {locked:?}, not {:?}",
            policy
                .sources
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            settings.channel
        )));
    }
    let install_id = InstallId::load_or_create(&install.install_id_path())?;
    let stall = options
        .timeout
        .unwrap_or(Duration::from_secs(settings.stall_secs));
    // A fresh install has no signed mirror list yet: its URL and `--mirror`s. Asked for
    // explicitly (`--max-bandwidth`), this download keeps to the limit too.
    let bandwidth = crate::bandwidth::Bandwidth::new();
    bandwidth.set_rate(settings.max_bandwidth);
    let throttled = |inner: Mirrors| {
        crate::bandwidth::Throttled::new(
            Box::new(inner),
            std::sync::Arc::clone(&bandwidth),
            options.cancel.clone(),
        )
    };
    let transport = throttled(Mirrors::for_install(
        &settings,
        &[],
        &install.state_dir(),
        trust,
        stall,
        &options.cancel,
    )?);
    let retry = RetryPolicy {
        cancel: options.cancel.clone(),
        ..RetryPolicy::default()
    };
    let refreshed =
        refresh(&install, &settings, &transport, &retry).map_err(|err| match err {
            // Not one signature from the keys the given root trusts: the root is another
            // repository's (the commonest mistake with a new repository).
            Error::Threshold { valid: 0, .. } => Error::RootMismatch(format!(
                "{}; the trusted root {} does not match the keys of the repository at {}: use that repository's metadata/1.root.json, as its publisher distributes it",
                crate::error::chain(&err),
                options.trusted_root.display(),
                options.url
            )),
            other => other,
        })?;
    // The metadata just verified may name the publisher's mirrors: the content may come
    // from them too.
    let signed = refreshed
        .trusted
        .targets()
        .map(crate::mirrors::signed::signed_mirrors)
        .unwrap_or_default();
    let transport = if signed.is_empty() {
        transport
    } else {
        throttled(Mirrors::for_install(
            &settings,
            &signed,
            &install.state_dir(),
            trust,
            stall,
            &options.cancel,
        )?)
    };
    let found = Chooser {
        install: &install,
        settings: &settings,
        policy: &policy,
        install_id: &install_id,
        declined: &|_| false,
    }
    .choose(&refreshed.releases, None)?;
    let (trusted, refresh_bytes) = (refreshed.trusted, refreshed.bytes);
    let release = found.chosen.ok_or_else(|| {
        let held: Vec<String> = found
            .held_back
            .iter()
            .map(|h| format!("{} ({})", h.version, h.reason.as_str()))
            .collect();
        let held = if held.is_empty() {
            String::new()
        } else {
            format!("; held back: {}", held.join(", "))
        };
        Error::Invalid(format!(
            "{} has no release of app {:?} for channel {:?} and platform {:?} (or \"any\") that this install may take{held}",
            options.url, options.app, options.channel, options.platform
        ))
    })?;
    let metered = Metered::new(&transport);
    let records = Records::new(&install);
    let fresh = fetch_fresh(
        &ManifestSource {
            trusted: &trusted,
            repo_url: &settings.url,
            transport: &metered,
            retry: &retry,
            bases: &[],
            records: &records,
        },
        &release,
        &transport,
    )?;
    let pack_data_start = pack_data_start(&release, &fresh.manifest);
    let local = local_files(&records, &fresh.manifest.version)?;
    let mut staged = stage_version(
        &records,
        local,
        &settings,
        &transport,
        &retry,
        options.events.as_ref().map(Events::sink),
        fresh.manifest,
        pack_data_start,
        fresh.opened_pack,
        &release.custom.hooks,
        &|_| {},
    )?;
    staged.manifest_bytes = metered.bytes() + fresh.manifest_bytes_in_pack;
    staged.metadata_bytes = refresh_bytes + staged.manifest_bytes;
    let manifest = &staged.manifest;
    match &manifest.launcher {
        Some(launcher) => switch::replace_launcher(
            &install,
            &launcher.join_to(&install.version_dir(&manifest.version)),
        )?,
        None => {
            if !options.launcher.is_file() {
                return Err(Error::Invalid(format!(
                    "launcher {} not found: build it (cargo build --release -p appstart-launcher) or pass --launcher",
                    options.launcher.display()
                )));
            }
            switch::replace_launcher(&install, &options.launcher)?;
        }
    }
    settings.save(&install.install_settings_path())?;
    // A fresh install switches too: from nothing to its first version.
    let hooks = &release.custom.hooks;
    if let Some(hook) = &hooks.pre_switch {
        super::hooks::run_checked(
            &install,
            &manifest.version,
            appstart_layout::hooks::HookKind::PreSwitch,
            hook,
            &|_| {},
        )?;
    }
    super::hooks::prepare_first_run(&install, &manifest.version, hooks)?;
    // The config is written last: until it exists the folder is not an install.
    let config = LauncherConfig::new(manifest.version.clone(), manifest.executable.clone());
    config.save(&install.config_path())?;
    switch::record_switch(&install, &manifest.version, "install")?;
    switch::prune(&install, settings.keep)?;
    shortcut::create(&install, &options.app, &options.shortcuts)?;
    let version = manifest.version.clone();
    if let Err(err) = history::append(
        &install.history_path(),
        "install",
        &[("version", version.as_str()), ("url", &settings.url)],
    ) {
        log::warn!("{err}");
    }
    Ok(UpdateReport {
        from: version.clone(),
        to: Some(version.clone()),
        bytes_downloaded: staged.metadata_bytes + staged.content_bytes,
        metadata_bytes: staged.metadata_bytes,
        content_bytes: staged.content_bytes,
        files_reused: staged.report.files_reused,
        files_downloaded: staged.report.files_downloaded,
        plan: staged.plan(),
        steps: vec![version.clone()],
        ..UpdateReport::nothing(version, 0)
    })
}
