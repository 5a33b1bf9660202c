//! The command line's syntax for rollouts: a percentage (`12.5`, `12.5%`) and a schedule of
//! percentages at offsets from now (`1%@0h,10%@24h,100%@72h`), turned into the signed
//! [`Rollout`] (whose steps are absolute UTC times, so every client reads the same schedule
//! whenever it looks). Here rather than in the CLI so that it is tested with a fixed clock.

use std::time::SystemTime;

use updater_core::advanced::control::Rollout;

/// Parses a rollout percentage as the command line gives it: a number from 0 to 100,
/// decimals allowed, with or without `%` (`12.5`, `12.5%`).
pub fn parse_percent(text: &str) -> std::result::Result<f64, String> {
    let number = text.trim().strip_suffix('%').unwrap_or(text.trim());
    match number.parse::<f64>() {
        Ok(percent) if (0.0..=100.0).contains(&percent) => Ok(percent),
        _ => Err(format!("{text:?} is not a percentage from 0 to 100")),
    }
}

/// Parses a rollout schedule as the command line gives it, `1%@0h,10%@24h,100%@72h`: steps
/// `PERCENT%@OFFSET`, the offset from `now` in seconds, minutes, hours or days (`30s`, `15m`,
/// `24h`, `3d`; decimals allowed), in time order. Each step is stored at `now + OFFSET` as an
/// RFC 3339 UTC time, so every client reads the same schedule whenever it looks.
pub fn parse_rollout_schedule(text: &str, now: SystemTime) -> std::result::Result<Rollout, String> {
    let mut steps = Vec::new();
    for step in text.split(',').map(str::trim) {
        let (percent, offset) = step
            .split_once('@')
            .ok_or_else(|| format!("step {step:?} is not PERCENT%@OFFSET, like 10%@24h"))?;
        let percent = parse_percent(percent).map_err(|e| format!("step {step:?}: {e}"))?;
        let offset = parse_offset(offset).map_err(|e| format!("step {step:?}: {e}"))?;
        steps.push(updater_core::advanced::control::RolloutStep {
            percent,
            at: humantime::format_rfc3339_seconds(now + offset).to_string(),
        });
    }
    let rollout = Rollout::scheduled(steps);
    rollout.check()?;
    Ok(rollout)
}

/// `24h`, `30m`, `45s`, `3d`, `1.5d`: at most ten years.
fn parse_offset(text: &str) -> std::result::Result<std::time::Duration, String> {
    let text = text.trim();
    let unit_seconds = match text.chars().last() {
        Some('s') => 1.0,
        Some('m') => 60.0,
        Some('h') => 3600.0,
        Some('d') => 86_400.0,
        _ => {
            return Err(format!(
                "offset {text:?} needs a unit: s, m, h or d (like 24h)"
            ));
        }
    };
    let number = &text[..text.len() - 1];
    match number.parse::<f64>() {
        Ok(n) if (0.0..=3650.0 * 86_400.0).contains(&(n * unit_seconds)) => {
            Ok(std::time::Duration::from_secs_f64(n * unit_seconds))
        }
        _ => Err(format!(
            "offset {text:?} is not a number of s, m, h or d from now (up to ten years)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_is_stored_as_absolute_times_from_now() {
        let now = updater_core::advanced::control::parse_time("2026-12-01T00:00:00Z").unwrap();
        let rollout = parse_rollout_schedule("1%@0h,10%@24h, 100%@3d", now).unwrap();
        assert_eq!(rollout.percent, 0.0);
        let steps: Vec<(f64, &str)> = rollout
            .schedule
            .iter()
            .map(|s| (s.percent, s.at.as_str()))
            .collect();
        assert_eq!(
            steps,
            [
                (1.0, "2026-12-01T00:00:00Z"),
                (10.0, "2026-12-02T00:00:00Z"),
                (100.0, "2026-12-04T00:00:00Z")
            ]
        );
        let rollout = parse_rollout_schedule("12.5@90m", now).unwrap();
        assert_eq!(rollout.schedule[0].at, "2026-12-01T01:30:00Z");
        for bad in [
            "",
            "10%",
            "10%@",
            "10%@5",
            "101%@1h",
            "x@1h",
            "10%@-1h",
            "50%@2h,10%@1h",
        ] {
            assert!(parse_rollout_schedule(bad, now).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn percentages_are_0_to_100_with_decimals() {
        assert_eq!(parse_percent("12.5").unwrap(), 12.5);
        assert_eq!(parse_percent("100%").unwrap(), 100.0);
        for bad in ["-1", "100.01", "abc", "", "NaN"] {
            assert!(parse_percent(bad).is_err(), "{bad:?}");
        }
    }
}
