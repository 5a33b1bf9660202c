//! Showing the library's progress events on stderr: bars on a terminal, one JSON object per
//! line when asked (`--progress json`), nothing on a pipe or with `--quiet`.
//!
//! Why stderr: stdout carries the result (one JSON object with `--json`) that scripts parse;
//! progress must never mix into it. Why bars only on a terminal by default: a log file or a
//! CI job reading a pipe would get a stream of redraws; it gets the result alone, or JSON
//! lines if it asks for them.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use updater_core::{Event, Events, Phase, Progress};

/// How to show progress (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ProgressMode {
    /// Bars when stderr is a terminal and the result is not JSON (`--json`); else none.
    #[default]
    Auto,
    /// Bars (drawn only when stderr is a terminal).
    Bar,
    /// One JSON object per line on stderr, per progress event.
    Json,
    /// No progress.
    None,
}

/// The global output flags (the default: automatic progress, as an installer shows it).
#[derive(Debug, Clone, Default, Args)]
pub struct OutputArgs {
    /// Print no progress and no warnings: only the result (stdout) and errors (stderr).
    #[arg(long, global = true)]
    pub quiet: bool,
    /// Progress on stderr for install, update, verify and publish: `auto` (bars on a
    /// terminal, none on a pipe or with --json), `bar`, `json` (one object per line) or
    /// `none`.
    #[arg(long, global = true, value_enum, value_name = "HOW", default_value_t)]
    pub progress: ProgressMode,
}

impl OutputArgs {
    /// What progress to show for a command whose result is JSON when `json`.
    pub fn mode(&self, json: bool) -> ProgressMode {
        match (self.quiet, self.progress) {
            (true, _) => ProgressMode::None,
            (false, ProgressMode::Auto) if json || !std::io::stderr().is_terminal() => {
                ProgressMode::None
            }
            (false, ProgressMode::Auto) => ProgressMode::Bar,
            (false, mode) => mode,
        }
    }

    /// The receiver of a command's events (`None`: no progress to show).
    pub fn events(&self, json: bool) -> Option<Events> {
        match self.mode(json) {
            ProgressMode::Auto | ProgressMode::None => None,
            ProgressMode::Json => Some(Events::new(|event| {
                if let Event::Progress(progress) = event {
                    print_json_line(progress);
                }
            })),
            ProgressMode::Bar => {
                let bars = Bars::default();
                Some(Events::new(move |event| {
                    if let Event::Progress(progress) = event {
                        bars.show(progress);
                    }
                }))
            }
        }
    }
}

/// `{"event":"progress","phase":"download","bytes_done":..,"bytes_total":..,"files_done":..,
/// "files_total":..}` on stderr (fields in docs/cli.md).
fn print_json_line(progress: &Progress) {
    let line = serde_json::json!({
        "event": "progress",
        "phase": progress.phase,
        "bytes_done": progress.bytes_done,
        "bytes_total": progress.bytes_total,
        "files_done": progress.files_done,
        "files_total": progress.files_total,
    });
    // A closed stderr is no reason to fail the update.
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// One bar per phase, the finished ones left on screen above the current one.
#[derive(Default)]
struct Bars {
    current: Mutex<Option<(Phase, ProgressBar)>>,
}

impl Bars {
    fn show(&self, progress: &Progress) {
        let mut current = match self.current.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        // A new phase, or the same one again (an update through a chain of releases has one
        // download per release): a new bar below the finished one.
        if current
            .as_ref()
            .is_none_or(|(phase, bar)| *phase != progress.phase || bar.is_finished())
        {
            if let Some((_, bar)) = current.take() {
                bar.finish();
            }
            *current = Some((progress.phase, new_bar(progress)));
        }
        let Some((_, bar)) = current.as_ref() else {
            return;
        };
        bar.set_length(progress.bytes_total);
        bar.set_position(progress.bytes_done);
        // Last: it redraws at once, with the bytes above.
        bar.set_message(format!(
            "{}/{} files",
            progress.files_done, progress.files_total
        ));
        if progress.bytes_done == progress.bytes_total
            && progress.files_done == progress.files_total
        {
            bar.finish();
        }
    }
}

fn new_bar(progress: &Progress) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(progress.bytes_total),
        ProgressDrawTarget::stderr_with_hz(10),
    );
    // The template is a constant: it parses (checked by the unit test below).
    if let Ok(style) = bar_style() {
        bar.set_style(style);
    }
    bar.set_prefix(progress.phase.as_str());
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

fn bar_style() -> Result<ProgressStyle, indicatif::style::TemplateError> {
    Ok(ProgressStyle::with_template(
        // The bar takes the width the rest leaves, so a line never wraps on a narrow terminal.
        "{prefix:>16} [{wide_bar}] {percent:>3}% {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
    )?
    .progress_chars("=> "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_template_parses() {
        assert!(bar_style().is_ok());
    }

    #[test]
    fn quiet_and_json_results_turn_automatic_progress_off() {
        let args = |quiet, progress| OutputArgs { quiet, progress };
        assert_eq!(
            args(true, ProgressMode::Json).mode(false),
            ProgressMode::None
        );
        assert_eq!(
            args(false, ProgressMode::Auto).mode(true),
            ProgressMode::None
        );
        assert_eq!(
            args(false, ProgressMode::Json).mode(true),
            ProgressMode::Json
        );
        assert_eq!(args(false, ProgressMode::Bar).mode(true), ProgressMode::Bar);
    }
}
