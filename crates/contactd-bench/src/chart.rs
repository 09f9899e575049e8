//! The run's figures as pictures: per scenario, calls/s and p99 against concurrency for each
//! store, with the database's own limits (pgbench) drawn across, as standalone SVG files that
//! BENCHMARKS.md shows beside its tables. Written by hand: a chart is a few lines and labels,
//! not worth a plotting library in the build.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::db::StoreKind;
use crate::load::Scenario;
use crate::pgbench::{PgbenchReport, Workload};
use crate::service::ServiceReport;

/// One store's measured points of a scenario: (concurrency, calls/s, p99 ms).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub store: StoreKind,
    pub points: Vec<(usize, f64, f64)>,
}

/// A limit drawn across the throughput panel: its label and its rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub label: String,
    pub per_second: f64,
}

/// The pgbench workloads a scenario is compared with: writes with the update scripts, reads
/// with `-S`.
fn limits_of(scenario: Scenario) -> &'static [Workload] {
    match scenario {
        Scenario::Get | Scenario::List | Scenario::ListMember => &[Workload::SelectOnly],
        _ => &[Workload::UpdateNaive, Workload::UpdateSingle],
    }
}

/// The best rate pgbench reached on each workload the scenario is compared with.
pub fn limits(scenario: Scenario, pgbench: &[PgbenchReport]) -> Vec<Limit> {
    limits_of(scenario)
        .iter()
        .filter_map(|&workload| {
            let best = pgbench
                .iter()
                .filter(|r| r.workload == workload)
                .max_by(|a, b| a.tps.total_cmp(&b.tps))?;
            Some(Limit {
                label: format!("pgbench {} ({} clients)", workload.name(), best.clients),
                per_second: best.tps,
            })
        })
        .collect()
}

/// Each store's points of `scenario`, in order of concurrency; stores without runs of it left
/// out.
pub fn series(scenario: Scenario, reports: &[(StoreKind, ServiceReport)]) -> Vec<Series> {
    reports
        .iter()
        .filter_map(|(store, report)| {
            let mut points: Vec<(usize, f64, f64)> = report
                .runs
                .iter()
                .filter(|r| r.scenario == scenario)
                .map(|r| {
                    let p99 = r.latencies.percentile(99.0).as_secs_f64() * 1e3;
                    (r.concurrency, r.calls_per_second(), p99)
                })
                .collect();
            points.sort_by_key(|p| p.0);
            (!points.is_empty()).then_some(Series {
                store: *store,
                points,
            })
        })
        .collect()
}

/// Writes `<dir>/<scenario>.svg` for every closed-loop scenario that ran; the files written.
pub fn write_all(
    dir: &Path,
    reports: &[(StoreKind, ServiceReport)],
    pgbench: &[PgbenchReport],
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for scenario in Scenario::CLOSED_LOOP {
        let series = series(scenario, reports);
        if series.is_empty() {
            continue;
        }
        let path = dir.join(format!("{}.svg", scenario.name()));
        let svg = svg(scenario.name(), &series, &limits(scenario, pgbench));
        std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 360.0;
const PANEL_WIDTH: f64 = 340.0;
const PANEL_HEIGHT: f64 = 240.0;
const TOP: f64 = 50.0;
const PANELS_LEFT: [f64; 2] = [70.0, 520.0];

fn colour(store: StoreKind) -> &'static str {
    match store {
        StoreKind::Postgres => "#1f6fb4",
        StoreKind::Sqlite => "#e07b00",
    }
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `value`: the top of an axis.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * magnitude)
        .find(|top| *top >= value)
        .unwrap_or(10.0 * magnitude)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart of one scenario: throughput on the left (with the limits), p99 on the right; the
/// concurrency levels evenly spaced, as the benchmark doubles them.
pub fn svg(title: &str, series: &[Series], limits: &[Limit]) -> String {
    let mut levels: Vec<usize> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    levels.sort_unstable();
    levels.dedup();
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" font-size=\"16\" text-anchor=\"middle\">{}</text>\n",
        WIDTH / 2.0,
        escape(&format!("{title}: calls/s and p99 against calls in flight"))
    );
    let rates = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let top_rate = nice_ceiling(
        rates
            .chain(limits.iter().map(|l| l.per_second))
            .fold(0.0, f64::max),
    );
    let top_p99 = nice_ceiling(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.2))
            .fold(0.0, f64::max),
    );
    let panels = [("calls/s", top_rate, 1usize), ("p99 ms", top_p99, 2usize)];
    for (left, (label, top, field)) in PANELS_LEFT.into_iter().zip(panels) {
        axes(&mut out, left, label, top, &levels);
        let x = |c: usize| {
            let index = levels.iter().position(|l| *l == c).unwrap_or(0);
            left + PANEL_WIDTH * (index as f64 + 0.5) / levels.len().max(1) as f64
        };
        let y = |v: f64| TOP + PANEL_HEIGHT * (1.0 - v / top);
        if field == 1 {
            for limit in limits {
                let at = y(limit.per_second);
                let _ = write!(
                    out,
                    "<line x1=\"{left}\" y1=\"{at:.1}\" x2=\"{}\" y2=\"{at:.1}\" stroke=\"#888\" \
                     stroke-dasharray=\"5,4\"/>\n\
                     <text x=\"{}\" y=\"{:.1}\" fill=\"#555\" font-size=\"10\">{} {:.0}/s</text>\n",
                    left + PANEL_WIDTH,
                    left + 4.0,
                    at - 3.0,
                    escape(&limit.label),
                    limit.per_second
                );
            }
        }
        for s in series {
            let value = |p: &(usize, f64, f64)| if field == 1 { p.1 } else { p.2 };
            let points: Vec<String> = s
                .points
                .iter()
                .map(|p| format!("{:.1},{:.1}", x(p.0), y(value(p))))
                .collect();
            let _ = writeln!(
                out,
                "<polyline class=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
                s.store.name(),
                colour(s.store),
                points.join(" ")
            );
            for p in &s.points {
                let _ = writeln!(
                    out,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"><title>{} C={}: {:.1}</title></circle>",
                    x(p.0),
                    y(value(p)),
                    colour(s.store),
                    s.store.name(),
                    p.0,
                    value(p)
                );
            }
        }
    }
    for (i, s) in series.iter().enumerate() {
        let x = PANELS_LEFT[0] + 160.0 * i as f64;
        let y = HEIGHT - 14.0;
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"14\" height=\"4\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{y}\">{}</text>",
            y - 6.0,
            colour(s.store),
            x + 20.0,
            s.store.title()
        );
    }
    out.push_str("</svg>\n");
    out
}

/// A panel's frame, its value ticks (five) and its concurrency labels.
fn axes(out: &mut String, left: f64, label: &str, top: f64, levels: &[usize]) {
    let bottom = TOP + PANEL_HEIGHT;
    let _ = write!(
        out,
        "<rect x=\"{left}\" y=\"{TOP}\" width=\"{PANEL_WIDTH}\" height=\"{PANEL_HEIGHT}\" \
         fill=\"none\" stroke=\"#333\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{label}</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">calls in flight (C)</text>\n",
        left + PANEL_WIDTH / 2.0,
        TOP - 8.0,
        left + PANEL_WIDTH / 2.0,
        bottom + 32.0,
    );
    for tick in 0..=5 {
        let value = top * f64::from(tick) / 5.0;
        let y = bottom - PANEL_HEIGHT * f64::from(tick) / 5.0;
        let _ = writeln!(
            out,
            "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{left}\" y2=\"{y:.1}\" stroke=\"#333\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 4.0,
            left - 6.0,
            y + 4.0,
            if top >= 10.0 {
                format!("{value:.0}")
            } else {
                format!("{value:.1}")
            }
        );
    }
    for (i, level) in levels.iter().enumerate() {
        let x = left + PANEL_WIDTH * (i as f64 + 0.5) / levels.len().max(1) as f64;
        let _ = writeln!(
            out,
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{level}</text>",
            bottom + 16.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> Vec<Series> {
        vec![
            Series {
                store: StoreKind::Postgres,
                points: vec![(4, 2846.0, 3.03), (16, 6252.0, 5.95), (32, 8397.0, 8.27)],
            },
            Series {
                store: StoreKind::Sqlite,
                points: vec![(4, 4000.0, 2.0), (16, 5000.0, 6.5), (32, 5100.0, 12.0)],
            },
        ]
    }

    #[test]
    fn axes_end_at_the_next_round_number() {
        assert_eq!(nice_ceiling(8397.0), 10000.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(4.2), 5.0);
        assert_eq!(nice_ceiling(200.0), 200.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
    }

    #[test]
    fn each_store_is_a_line_in_each_panel_and_each_limit_is_drawn_across() {
        let limits = [Limit {
            label: "pgbench update, naive (5 round trips) (16 clients)".into(),
            per_second: 3236.0,
        }];
        let svg = svg("update", &series(), &limits);
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline class=\"postgres\"").count(), 2);
        assert_eq!(svg.matches("<polyline class=\"sqlite\"").count(), 2);
        assert_eq!(
            svg.matches("<circle").count(),
            12,
            "3 points × 2 stores × 2 panels"
        );
        assert_eq!(svg.matches("stroke-dasharray").count(), 1);
        assert!(svg.contains("pgbench update, naive (5 round trips) (16 clients) 3236/s"));
        // Up to 10,000 calls/s over 240 px from y=50: 8,397/s is at 50 + 240 × 0.1603.
        assert!(svg.contains("8397.0</title>"), "{svg}");
        assert!(svg.contains(",88.5"), "{svg}");
        for level in ["4", "16", "32"] {
            assert!(svg.contains(&format!("text-anchor=\"middle\">{level}</text>")));
        }
    }

    #[test]
    fn reads_are_compared_with_select_only_and_writes_with_the_update_scripts() {
        assert_eq!(limits_of(Scenario::Get), &[Workload::SelectOnly]);
        assert_eq!(
            limits_of(Scenario::Update),
            &[Workload::UpdateNaive, Workload::UpdateSingle]
        );
    }
}
