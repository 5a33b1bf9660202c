//! `appupdate completions SHELL` and `appupdate man`: generated from the clap definition in
//! [`crate::cli`] (with the examples and exit codes of [`crate::help`]), so they always match
//! the commands and flags that exist.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut command = crate::help::command();
    // Generated into memory first: `generate` panics when it cannot write.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "appupdate", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .context("writing the completion script")?;
    Ok(())
}

/// Writes the top-level man page to stdout, or every page into `out`.
pub fn man(out: Option<&Path>) -> Result<()> {
    let command = crate::help::command();
    match out {
        None => {
            let mut stdout = std::io::stdout().lock();
            clap_mangen::Man::new(command)
                .render(&mut stdout)
                .context("writing the man page")?;
            stdout.flush().context("writing the man page")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("writing the man pages into {}", dir.display()))?;
            println!("wrote the man pages into {}", dir.display());
        }
    }
    Ok(())
}
