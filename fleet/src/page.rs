//! The fleet page (`GET /fleet`): one server-rendered HTML document with inline SVG charts,
//! no script and no external asset, so it works offline, behind any proxy, and in a headless
//! browser test. Every value from the database is HTML-escaped ([`escape`]), even though
//! receipts are checked on the way in: the page must not trust the database.
//!
//! Cells carry stable `id`s and `data-count` attributes (`installs`, `version-V`,
//! `release-APP-V-EVENT`, `wave-APP-V`) for tests and scrapers.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::summary::{FleetSummary, ReleaseFunnel};

/// Colours for versions on the timeline, in turn.
const PALETTE: &[&str] = &[
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f",
];

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page for `summary`.
pub fn render(summary: &FleetSummary) -> String {
    let mut html = String::new();
    let scope = summary.app.as_deref().unwrap_or("every app");
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Fleet: {scope}</title><style>\
         body{{font-family:sans-serif;margin:2em;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}\
         th{{background:#f4f4f4}} td.name{{text-align:left}} .small{{color:#666;font-size:90%}}\
         </style></head><body>\n<h1>Fleet: {scope}</h1>\n\
         <p><span id=\"installs\" data-count=\"{installs}\">{installs}</span> installs reported\
         <span id=\"dropped\" data-count=\"{dropped}\" class=\"small\"> \
         ({dropped} receipts dropped by full outboxes)</span></p>\n",
        scope = escape(scope),
        installs = summary.installs,
        dropped = summary.dropped,
    );
    current_versions(&mut html, summary);
    timeline(&mut html, summary);
    releases(&mut html, summary);
    html.push_str("</body></html>\n");
    html
}

fn current_versions(html: &mut String, summary: &FleetSummary) {
    html.push_str(
        "<h2>Installs by current version</h2>\n<table id=\"by-version\">\
                   <tr><th>Version</th><th>Installs</th></tr>\n",
    );
    for (version, count) in &summary.by_version {
        let v = escape(version);
        let _ = writeln!(
            html,
            "<tr><td class=\"name\">{v}</td>\
             <td id=\"version-{v}\" data-count=\"{count}\">{count}</td></tr>"
        );
    }
    if summary.unknown_version > 0 {
        let _ = writeln!(
            html,
            "<tr><td class=\"name\">unknown</td><td id=\"version-unknown\" \
             data-count=\"{n}\">{n}</td></tr>",
            n = summary.unknown_version
        );
    }
    html.push_str("</table>\n");
}

/// Stacked bars: installs by current version at the end of each hour.
fn timeline(html: &mut String, summary: &FleetSummary) {
    html.push_str("<h2>Installs by current version over time (per hour, UTC)</h2>\n");
    if summary.timeline.is_empty() {
        html.push_str("<p>No receipts yet.</p>\n");
        return;
    }
    let versions: BTreeSet<&String> = summary
        .timeline
        .iter()
        .flat_map(|point| point.by_version.keys())
        .collect();
    let colour = |version: &String| {
        let index = versions.iter().position(|v| *v == version).unwrap_or(0);
        PALETTE[index % PALETTE.len()]
    };
    let most = summary
        .timeline
        .iter()
        .map(|point| point.by_version.values().sum::<u64>())
        .max()
        .unwrap_or(1)
        .max(1);
    // One slot per hour of the window, so a young fleet does not get one huge bar.
    let slots = crate::summary::TIMELINE_HOURS as f64;
    let (width, height, bar) = (960.0, 200.0, 960.0 / slots);
    let _ = writeln!(
        html,
        "<svg id=\"timeline\" width=\"{width}\" height=\"{}\" role=\"img\" \
         aria-label=\"installs by version per hour\">",
        height + 20.0
    );
    for (index, point) in summary.timeline.iter().enumerate() {
        let mut y = height;
        for (version, count) in &point.by_version {
            let h = *count as f64 * height / most as f64;
            y -= h;
            let _ = writeln!(
                html,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\">\
                 <title>{} {}: {count}</title></rect>",
                index as f64 * bar,
                (bar - 1.0).max(1.0),
                colour(version),
                escape(&point.hour),
                escape(version),
            );
        }
    }
    if let (Some(first), Some(last)) = (summary.timeline.first(), summary.timeline.last()) {
        let _ = writeln!(
            html,
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text>\
             <text x=\"{width}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\">{}</text>",
            height + 15.0,
            escape(&first.hour),
            height + 15.0,
            escape(&last.hour)
        );
    }
    html.push_str("</svg>\n<p class=\"small\">");
    for version in &versions {
        let _ = write!(
            html,
            "<span style=\"color:{}\">&#9632;</span> {} &nbsp; ",
            colour(version),
            escape(version)
        );
    }
    html.push_str("</p>\n");
}

fn releases(html: &mut String, summary: &FleetSummary) {
    html.push_str(
        "<h2>Releases: found &rarr; downloaded &rarr; switched, fell back, failed</h2>\n\
         <table id=\"releases\"><tr><th>App</th><th>Version</th><th>Found</th>\
         <th>Downloaded</th><th>Switched</th><th>Fell back</th><th>Rolled back</th>\
         <th>Failed</th><th>Failed by error</th><th>Wave (switched / found)</th>\
         <th>Funnel</th></tr>\n",
    );
    for release in &summary.releases {
        let key = format!("{}-{}", escape(&release.app), escape(&release.version));
        let _ = write!(
            html,
            "<tr id=\"release-{key}\"><td class=\"name\">{}</td><td class=\"name\">{}</td>",
            escape(&release.app),
            escape(&release.version)
        );
        for (event, count) in [
            ("found", release.found),
            ("downloaded", release.downloaded),
            ("switched", release.switched),
            ("fell_back", release.fell_back),
            ("rolled_back", release.rolled_back),
            ("failed", release.failed),
        ] {
            let _ = write!(
                html,
                "<td id=\"release-{key}-{event}\" data-count=\"{count}\">{count}</td>"
            );
        }
        let errors: Vec<String> = release
            .failed_by_error
            .iter()
            .map(|(code, n)| {
                format!(
                    "<span data-error=\"{c}\" data-count=\"{n}\">{c}: {n}</span>",
                    c = escape(code)
                )
            })
            .collect();
        let _ = writeln!(
            html,
            "<td class=\"name\">{}</td><td id=\"wave-{key}\" data-percent=\"{w}\">{}{w}%</td>\
             <td>{}</td></tr>",
            errors.join("<br>"),
            bar(release.wave, 100.0, "#59a14f"),
            funnel(release),
            w = release.wave,
        );
    }
    html.push_str("</table>\n");
}

/// A small horizontal bar of `value` out of `most`.
fn bar(value: f64, most: f64, colour: &str) -> String {
    let width = if most > 0.0 {
        (value / most * 100.0).clamp(0.0, 100.0)
    } else {
        0.0
    };
    format!(
        "<svg width=\"100\" height=\"10\"><rect width=\"100\" height=\"10\" fill=\"#eee\"/>\
         <rect width=\"{width:.1}\" height=\"10\" fill=\"{colour}\"/></svg> "
    )
}

/// The funnel as bars scaled to the installs that found the release.
fn funnel(release: &ReleaseFunnel) -> String {
    let most = [release.found, release.downloaded, release.switched]
        .into_iter()
        .max()
        .unwrap_or(0) as f64;
    let mut svg = String::from("<svg width=\"160\" height=\"50\">");
    for (row, (count, colour)) in [
        (release.found, "#4e79a7"),
        (release.downloaded, "#76b7b2"),
        (release.switched, "#59a14f"),
        (release.fell_back, "#e15759"),
        (release.failed, "#b07aa1"),
    ]
    .into_iter()
    .enumerate()
    {
        let width = if most > 0.0 {
            count as f64 * 160.0 / most
        } else {
            0.0
        };
        let _ = write!(
            svg,
            "<rect y=\"{}\" width=\"{:.1}\" height=\"9\" fill=\"{colour}\"/>",
            row * 10,
            width.min(160.0)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_it_prints() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let mut summary = FleetSummary {
            app: Some("<script>".into()),
            ..FleetSummary::default()
        };
        summary.by_version.insert("<b>".into(), 1);
        let html = render(&summary);
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
    }
}
