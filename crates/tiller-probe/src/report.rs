//! Pass rate and speed per run over time: a terminal table, an SVG chart (plotters, SVG backend
//! only) and an HTML page that holds both.

use std::fmt::Write;

use plotters::prelude::*;
use serde::Serialize;
use tiller_ledger::StoredTrial;
use tiller_stats::{median, wilson};
use tiller_types::time::utc_timestamp;

use crate::{Grade, ProbeError};

/// Reads one panel's value off a run.
type Metric = fn(&RunPoint) -> Option<f64>;

/// One run in numbers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunPoint {
    pub run_id: String,
    /// When its first trial was written, `YYYY-MM-DDTHH:MM:SSZ`.
    pub started: String,
    pub label: Option<String>,
    pub model: String,
    pub trials: u64,
    pub passed: u64,
    pub pass_rate: f64,
    /// Wilson 95% interval.
    pub pass_rate_ci: (f64, f64),
    pub median_ttft_ms: Option<f64>,
    pub median_decode_tps: Option<f64>,
}

/// Each run of `trials` (in id order), in the order the runs started.
pub fn runs(trials: &[StoredTrial]) -> Vec<RunPoint> {
    let mut order: Vec<&str> = Vec::new();
    for t in trials {
        if !order.contains(&t.trial.run_id.as_str()) {
            order.push(&t.trial.run_id);
        }
    }
    order
        .into_iter()
        .map(|id| {
            let run: Vec<&StoredTrial> = trials.iter().filter(|t| t.trial.run_id == id).collect();
            let first = &run[0].trial;
            let passed = run.iter().filter(|t| t.trial.outcome == Grade::Pass.as_str()).count();
            let (trials, passed) = (run.len() as u64, passed as u64);
            let med = |values: Vec<f64>| (!values.is_empty()).then(|| median(&values));
            RunPoint {
                run_id: id.to_owned(),
                started: utc_timestamp((run[0].time_ms / 1000).max(0) as u64),
                label: first.config_label.clone(),
                model: first.model_requested.clone(),
                trials,
                passed,
                pass_rate: passed as f64 / trials as f64,
                pass_rate_ci: wilson(passed, trials, 0.95),
                median_ttft_ms: med(run
                    .iter()
                    .filter_map(|t| t.trial.ttft_ms)
                    .map(|v| v as f64)
                    .collect()),
                median_decode_tps: med(run.iter().filter_map(|t| t.trial.decode_tps).collect()),
            }
        })
        .collect()
}

/// The runs as a table for the terminal.
pub fn table(points: &[RunPoint]) -> String {
    let mut out = format!(
        "{:<26} {:<20} {:<12} {:>6} {:>6}  {:<13} {:>9} {:>9}\n",
        "run", "started", "label", "trials", "pass", "95% CI", "ttft ms", "tok/s"
    );
    let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
    for p in points {
        let _ = writeln!(
            out,
            "{:<26} {:<20} {:<12} {:>6} {:>5.0}%  {:>4.0}%–{:>3.0}%   {:>9} {:>9}",
            p.run_id,
            p.started,
            p.label.as_deref().unwrap_or("-"),
            p.trials,
            p.pass_rate * 100.0,
            p.pass_rate_ci.0 * 100.0,
            p.pass_rate_ci.1 * 100.0,
            opt(p.median_ttft_ms),
            opt(p.median_decode_tps),
        );
    }
    out
}

/// Three panels, one point per run: pass rate with its interval, median time to first token,
/// median decode speed.
pub fn svg(points: &[RunPoint]) -> Result<String, ProbeError> {
    let err = |e: DrawingAreaErrorKind<std::io::Error>| ProbeError::Chart(e.to_string());
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (960, 780)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let panels = root.split_evenly((3, 1));
        let n = points.len().max(1);
        let xs = -0.5f64..(n as f64 - 0.5);
        let name = |x: &f64| {
            let i = x.round();
            let label = points.get(i as usize).filter(|_| (x - i).abs() < 1e-9 && i >= 0.0);
            label.map_or(String::new(), |p| {
                p.label.clone().unwrap_or_else(|| p.started[5..16].into())
            })
        };
        let series: [(&str, Metric); 3] = [
            ("pass rate (95% Wilson interval)", |p| Some(p.pass_rate)),
            ("median time to first token, ms", |p| p.median_ttft_ms),
            ("median decode speed, tokens/s", |p| p.median_decode_tps),
        ];
        for (i, (panel, (caption, value))) in panels.iter().zip(series).enumerate() {
            let values: Vec<(f64, f64)> = (points.iter().enumerate())
                .filter_map(|(x, p)| value(p).map(|v| (x as f64, v)))
                .collect();
            let top =
                if i == 0 { 1.0 } else { values.iter().map(|v| v.1).fold(1.0, f64::max) * 1.15 };
            let mut chart = ChartBuilder::on(panel)
                .caption(caption, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(28)
                .y_label_area_size(56)
                .build_cartesian_2d(xs.clone(), 0f64..top)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_labels(n.min(12))
                .x_label_formatter(&name)
                .draw()
                .map_err(err)?;
            chart.draw_series(LineSeries::new(values.iter().copied(), &BLUE)).map_err(err)?;
            chart
                .draw_series(values.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))
                .map_err(err)?;
            if i == 0 {
                let bars = points.iter().enumerate().map(|(x, p)| {
                    let x = x as f64;
                    PathElement::new(vec![(x, p.pass_rate_ci.0), (x, p.pass_rate_ci.1)], BLUE)
                });
                chart.draw_series(bars).map_err(err)?;
            }
        }
        root.present().map_err(err)?;
    }
    Ok(buf)
}

/// A page with `title`, the chart and the table.
pub fn html(title: &str, points: &[RunPoint], svg: &str) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let mut rows = String::new();
    let opt = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.0}"));
    for p in points {
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td>\
             <td>{:.1}–{:.1}%</td><td>{}</td><td>{}</td></tr>",
            esc(&p.run_id),
            esc(&p.started),
            esc(p.label.as_deref().unwrap_or("")),
            esc(&p.model),
            p.trials,
            p.pass_rate * 100.0,
            p.pass_rate_ci.0 * 100.0,
            p.pass_rate_ci.1 * 100.0,
            opt(p.median_ttft_ms),
            opt(p.median_decode_tps),
        );
    }
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>\
         body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:right}}</style></head>\n\
         <body><h1>{t}</h1>\n{svg}\n<table><tr><th>run</th><th>started (UTC)</th><th>label</th>\
         <th>model</th><th>trials</th><th>pass</th><th>95% CI</th><th>TTFT ms</th>\
         <th>tokens/s</th></tr>\n{rows}</table>\n<p>Compare two windows with \
         <code>tiller probe compare</code>; docs/probe.md explains the tests.</p></body></html>\n",
        t = esc(title)
    )
}
