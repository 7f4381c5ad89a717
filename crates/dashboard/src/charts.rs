//! Round charts: test accuracy (top) and test loss with the trainers' mean
//! reported train loss (bottom), one point per closed round, as SVG drawn
//! with plotters. A text job's chart shows validation perplexity on top and
//! validation loss below.
//!
//! Every data point is an SVG `<circle>` tagged for the page and its tests:
//! `data-testid="accuracy-point"` (text: `"perplexity-point"`),
//! `"test-loss-point"` or `"train-loss-point"`, with `data-round` and
//! `data-value`. The root
//! `<svg>` carries `data-testid="round-charts"` and `data-closed-rounds`.
//! Open rounds and missing or non-finite values draw no point. Text is left
//! to whatever renders the SVG (plotters' SVG backend writes `<text>`
//! elements and needs no font files).

use std::io;
use std::path::Path;

use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use funetun_core::api::RoundInfo;
use funetun_core::protocol::RoundStatus;
use plotters::coord::Shift;
use plotters::prelude::*;

/// Width of the chart in SVG pixels.
pub const WIDTH: u32 = 720;
/// Height of the chart in SVG pixels (two panels).
pub const HEIGHT: u32 = 480;
/// The `Content-Type` of [`round_charts_svg`]'s output.
pub const CONTENT_TYPE_SVG: &str = "image/svg+xml";

// Series colours. Each is used only by its series' points, which is how the
// points are found again in the SVG to tag them.
const ACCURACY: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const TEST_LOSS: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const TRAIN_LOSS: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
const POINT_RADIUS: u32 = 4;

/// One series' points: (round, value).
type Points = Vec<(u64, f64)>;

/// The three series of the closed rounds, sorted by round.
struct Series {
    closed: usize,
    /// A text job: the top series is perplexity, not accuracy.
    text: bool,
    /// Accuracy, or a text job's validation perplexity.
    accuracy: Points,
    test_loss: Points,
    train_loss: Points,
}

impl Series {
    fn of(rounds: &[RoundInfo]) -> Self {
        let mut closed: Vec<&RoundInfo> = rounds
            .iter()
            .filter(|r| r.status == RoundStatus::Closed)
            .collect();
        closed.sort_by_key(|r| r.round);
        closed.dedup_by_key(|r| r.round);
        let pick = |f: fn(&RoundInfo) -> Option<f64>| -> Points {
            closed
                .iter()
                .filter_map(|r| f(r).filter(|v| v.is_finite()).map(|v| (r.round, v)))
                .collect()
        };
        let text = closed.iter().any(|r| r.test_perplexity.is_some());
        Self {
            closed: closed.len(),
            text,
            accuracy: if text {
                pick(|r| r.test_perplexity)
            } else {
                pick(|r| r.test_accuracy)
            },
            test_loss: pick(|r| r.test_loss),
            train_loss: pick(|r| r.train_loss),
        }
    }

    /// The x range: every plotted round with half a round of margin.
    fn x_range(&self) -> std::ops::Range<f64> {
        let xs = || {
            self.accuracy
                .iter()
                .chain(&self.test_loss)
                .chain(&self.train_loss)
                .map(|p| p.0 as f64)
        };
        let lo = xs().fold(f64::INFINITY, f64::min);
        let hi = xs().fold(f64::NEG_INFINITY, f64::max);
        if lo.is_finite() && hi.is_finite() {
            (lo - 0.5)..(hi + 0.5)
        } else {
            -0.5..0.5
        }
    }

    /// The accuracy panel's y range: up to 100 %, from a whole ten percent
    /// at least two points below the lowest accuracy, so a curve that climbs
    /// from 92 % to 96 % bends visibly instead of lying flat on top; the
    /// whole axis while there is no point.
    fn accuracy_range(&self) -> std::ops::Range<f64> {
        if self.text {
            // Perplexity: from 1 (certainty) to a little above the worst.
            let hi = self.accuracy.iter().map(|p| p.1).fold(2.0, f64::max);
            return 1.0..hi * 1.1;
        }
        match self.accuracy.iter().map(|p| p.1).reduce(f64::min) {
            Some(lo) => (((lo - 0.02) * 10.0).floor() / 10.0).clamp(0.0, 0.9)..1.0,
            None => 0.0..1.0,
        }
    }

    /// The loss panel's y range: zero to a little above the largest loss.
    fn loss_range(&self) -> std::ops::Range<f64> {
        let hi = self
            .test_loss
            .iter()
            .chain(&self.train_loss)
            .map(|p| p.1)
            .fold(0.0, f64::max);
        if hi > 0.0 { 0.0..hi * 1.1 } else { 0.0..1.0 }
    }
}

/// Tick labels on the loss axis, about.
const LOSS_TICKS: usize = 6;

/// Decimals that tell `ticks` evenly spaced labels over `span` apart: one
/// more than the order of magnitude of their spacing needs (losses of 0.02
/// get 0.004, 0.008 …, not 0.00, 0.01, 0.01).
fn decimals(span: f64, ticks: usize) -> usize {
    let step = span / ticks.max(1) as f64;
    if !(step.is_finite() && step > 0.0) {
        return 2;
    }
    ((-step.log10()).ceil().max(0.0) as usize).min(8)
}

/// The charts of the closed rounds among `rounds` as an SVG document.
///
/// Never fails: should drawing go wrong, the answer is a small SVG that says
/// so.
pub fn round_charts_svg(rounds: &[RoundInfo]) -> String {
    let series = Series::of(rounds);
    let mut svg = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, &series).and_then(|()| root.present())
    };
    match drawn {
        Ok(()) => tag(svg, &series),
        Err(e) => error_svg(&e.to_string()),
    }
}

/// Writes [`round_charts_svg`] of `rounds` to `path` (an `.svg` file, or a
/// path without extension), through a temporary file renamed into place so
/// a reader never sees half a chart.
pub fn write_round_charts(path: &Path, rounds: &[RoundInfo]) -> io::Result<()> {
    match path.extension().and_then(|e| e.to_str()) {
        None => {}
        Some(ext) if ext.eq_ignore_ascii_case("svg") => {}
        Some(ext) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "round charts are written as SVG; `{}` ends in `.{ext}`, name it `.svg`",
                    path.display()
                ),
            ));
        }
    }
    let svg = round_charts_svg(rounds);
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    funetun_core::blobs::write_atomic(&tmp, path, svg.as_bytes()).map_err(io::Error::other)
}

/// An HTTP answer carrying [`round_charts_svg`] of `rounds`: SVG content type
/// and `Cache-Control: no-cache`, since the chart changes with every round.
/// This is what the orchestrator serves at [`crate::CHARTS_PATH`].
pub fn round_charts_response(rounds: &[RoundInfo]) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_SVG)),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        round_charts_svg(rounds),
    )
        .into_response()
}

type DrawResult = Result<(), DrawingAreaErrorKind<io::Error>>;

fn draw(root: &DrawingArea<SVGBackend<'_>, Shift>, s: &Series) -> DrawResult {
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(HEIGHT / 2);
    let x = s.x_range();
    let round_label = |v: &f64| {
        if v.fract() == 0.0 && *v >= 0.0 {
            format!("{v:.0}")
        } else {
            String::new()
        }
    };
    let x_ticks = (x.end - x.start).round().clamp(1.0, 10.0) as usize + 1;

    let (top_caption, loss_name) = if s.text {
        ("validation perplexity", "validation loss")
    } else {
        ("test accuracy", "test loss")
    };
    let text = s.text;
    let mut acc = ChartBuilder::on(&top)
        .caption(top_caption, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(52)
        .build_cartesian_2d(x.clone(), s.accuracy_range())?;
    acc.configure_mesh()
        .x_labels(x_ticks)
        .x_label_formatter(&round_label)
        .y_labels(6)
        .y_label_formatter(&|v| {
            if text {
                format!("{v:.1}")
            } else {
                format!("{:.0}%", v * 100.0)
            }
        })
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    acc.draw_series(LineSeries::new(
        s.accuracy.iter().map(|&(r, v)| (r as f64, v)),
        ACCURACY.stroke_width(2),
    ))?;
    acc.draw_series(
        s.accuracy
            .iter()
            .map(|&(r, v)| Circle::new((r as f64, v), POINT_RADIUS, ACCURACY.filled())),
    )?;
    if s.closed == 0 {
        top.draw(&Text::new(
            "no closed rounds yet",
            ((WIDTH / 2 - 70) as i32, (HEIGHT / 4) as i32),
            ("sans-serif", 15).into_font().color(&BLACK.mix(0.6)),
        ))?;
    }

    let loss_y = s.loss_range();
    let loss_span = loss_y.end - loss_y.start;
    let mut loss = ChartBuilder::on(&bottom)
        .caption("loss", ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(52)
        .build_cartesian_2d(x, loss_y)?;
    loss.configure_mesh()
        .x_labels(x_ticks)
        .x_label_formatter(&round_label)
        .x_desc("round")
        .y_labels(LOSS_TICKS)
        .y_label_formatter(&|v| format!("{v:.*}", decimals(loss_span, LOSS_TICKS)))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (points, color, name) in [
        (&s.test_loss, TEST_LOSS, loss_name),
        (&s.train_loss, TRAIN_LOSS, "mean train loss (reported)"),
    ] {
        loss.draw_series(LineSeries::new(
            points.iter().map(|&(r, v)| (r as f64, v)),
            color.stroke_width(2),
        ))?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        loss.draw_series(
            points
                .iter()
                .map(|&(r, v)| Circle::new((r as f64, v), POINT_RADIUS, color.filled())),
        )?;
    }
    loss.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}

fn hex(c: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// The points of a series not yet matched to a `<circle>`.
type PointsLeft<'a> = std::slice::Iter<'a, (u64, f64)>;

/// Adds the data attributes to the root element and to every point.
fn tag(svg: String, s: &Series) -> String {
    let mut out =
        String::with_capacity(svg.len() + 64 * (s.accuracy.len() + 2 * s.test_loss.len()));
    // (the fill that marks a series' points, their test id, the points left)
    let mut pending: Vec<(String, &str, PointsLeft<'_>)> = vec![
        (
            format!("fill=\"{}\"", hex(ACCURACY)),
            if s.text {
                "perplexity-point"
            } else {
                "accuracy-point"
            },
            s.accuracy.iter(),
        ),
        (
            format!("fill=\"{}\"", hex(TEST_LOSS)),
            "test-loss-point",
            s.test_loss.iter(),
        ),
        (
            format!("fill=\"{}\"", hex(TRAIN_LOSS)),
            "train-loss-point",
            s.train_loss.iter(),
        ),
    ];
    let mut rest = svg.as_str();
    if let Some(at) = rest.find("<svg ") {
        out.push_str(&rest[..at + 5]);
        out.push_str(&format!(
            "data-testid=\"round-charts\" data-closed-rounds=\"{}\" ",
            s.closed
        ));
        rest = &rest[at + 5..];
    }
    while let Some(at) = rest.find("<circle ") {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let end = from.find("/>").map_or(from.len(), |e| e + 2);
        let (element, after) = from.split_at(end);
        out.push_str("<circle ");
        for (fill, testid, points) in pending.iter_mut() {
            if element.contains(fill.as_str()) {
                if let Some(&(round, value)) = points.next() {
                    out.push_str(&format!(
                        "data-testid=\"{testid}\" class=\"{testid}\" data-round=\"{round}\" data-value=\"{value}\" "
                    ));
                }
                break;
            }
        }
        out.push_str(&element["<circle ".len()..]);
        rest = after;
    }
    out.push_str(rest);
    out
}

fn error_svg(detail: &str) -> String {
    let escaped: String = detail
        .chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            c => c.to_string(),
        })
        .collect();
    format!(
        "<svg width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         xmlns=\"http://www.w3.org/2000/svg\" data-testid=\"round-charts\" data-error=\"true\">\
         <text x=\"16\" y=\"32\" font-family=\"sans-serif\" font-size=\"14\">\
         charts could not be drawn: {escaped}</text></svg>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::B256;

    fn round(t: u64, status: RoundStatus, acc: Option<f64>, loss: Option<f64>) -> RoundInfo {
        RoundInfo {
            round: t,
            status,
            base_hash: B256::ZERO,
            checkpoint_hash: None,
            leased: 4,
            submitted: 4,
            replayed: 1,
            accepted: 4,
            rejected: 0,
            test_loss: loss,
            test_accuracy: acc,
            test_perplexity: None,
            sample: None,
            train_loss: loss.map(|l| l * 0.9),
            opened_at: 0,
            closed_at: None,
            commit_tx: None,
            manifest_hash: None,
            led_by: None,
        }
    }

    fn count(svg: &str, testid: &str) -> usize {
        svg.matches(&format!("data-testid=\"{testid}\"")).count()
    }

    #[test]
    fn loss_labels_are_distinct_at_every_scale() {
        for hi in [0.022, 0.15, 1.6, 2.3, 40.0] {
            let d = decimals(hi, LOSS_TICKS);
            let labels: Vec<String> = (0..=5)
                .map(|i| format!("{:.*}", d, hi * i as f64 / 5.0))
                .collect();
            let mut unique = labels.clone();
            unique.dedup();
            assert_eq!(unique, labels, "span {hi}: {labels:?}");
        }
        assert_eq!(decimals(0.022, LOSS_TICKS), 3);
        assert_eq!(decimals(40.0, LOSS_TICKS), 0);
    }

    #[test]
    fn one_tagged_point_per_closed_round() {
        let rounds: Vec<_> = (0..5)
            .map(|t| {
                round(
                    t,
                    RoundStatus::Closed,
                    Some(0.5 + t as f64 / 20.0),
                    Some(1.0 / (t + 1) as f64),
                )
            })
            .chain([round(5, RoundStatus::Open, None, None)])
            .collect();
        let svg = round_charts_svg(&rounds);
        assert!(svg.starts_with("<svg "), "{}", &svg[..40]);
        assert!(svg.contains("data-testid=\"round-charts\" data-closed-rounds=\"5\""));
        assert_eq!(count(&svg, "accuracy-point"), 5);
        assert_eq!(count(&svg, "test-loss-point"), 5);
        assert_eq!(count(&svg, "train-loss-point"), 5);
        for t in 0..5 {
            assert!(
                svg.contains(&format!("class=\"accuracy-point\" data-round=\"{t}\"")),
                "round {t}"
            );
        }
        assert!(svg.contains("data-value=\"0.7\""));
        assert!(svg.contains(">test accuracy<") || svg.contains("test accuracy"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn the_accuracy_axis_starts_below_the_lowest_point() {
        let high: Vec<_> = [0.923, 0.94, 0.959]
            .iter()
            .enumerate()
            .map(|(t, &a)| round(t as u64, RoundStatus::Closed, Some(a), Some(0.2)))
            .collect();
        // Plotters writes each tick label as the only line of its <text>.
        let tick = |svg: &str, label: &str| svg.contains(&format!(">\n{label}\n</text>"));
        let svg = round_charts_svg(&high);
        assert!(tick(&svg, "90%") && tick(&svg, "100%"), "{svg}");
        assert!(!tick(&svg, "0%") && !tick(&svg, "80%"));
        // Low accuracies and no accuracies keep the whole axis.
        for rounds in [
            vec![round(0, RoundStatus::Closed, Some(0.11), Some(2.0))],
            vec![],
        ] {
            let svg = round_charts_svg(&rounds);
            assert!(tick(&svg, "0%") && tick(&svg, "100%"));
        }
    }

    #[test]
    fn zero_rounds_give_empty_axes_and_a_note() {
        let svg = round_charts_svg(&[]);
        assert!(svg.contains("data-closed-rounds=\"0\""));
        assert_eq!(count(&svg, "accuracy-point"), 0);
        assert!(svg.contains("no closed rounds yet"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn missing_and_non_finite_values_draw_no_point() {
        let rounds = vec![
            round(0, RoundStatus::Closed, Some(0.6), Some(0.9)),
            round(1, RoundStatus::Closed, None, None),
            round(2, RoundStatus::Closed, Some(f64::NAN), Some(f64::INFINITY)),
            round(3, RoundStatus::Closed, Some(0.8), Some(0.4)),
        ];
        let svg = round_charts_svg(&rounds);
        assert!(svg.contains("data-closed-rounds=\"4\""));
        assert_eq!(count(&svg, "accuracy-point"), 2);
        assert_eq!(count(&svg, "test-loss-point"), 2);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn a_single_round_and_unsorted_duplicates_are_fine() {
        let one = round_charts_svg(&[round(7, RoundStatus::Closed, Some(0.9), Some(0.2))]);
        assert_eq!(count(&one, "accuracy-point"), 1);
        let shuffled = vec![
            round(2, RoundStatus::Closed, Some(0.7), Some(0.5)),
            round(0, RoundStatus::Closed, Some(0.5), Some(0.9)),
            round(1, RoundStatus::Closed, Some(0.6), Some(0.7)),
            round(1, RoundStatus::Closed, Some(0.6), Some(0.7)),
        ];
        let svg = round_charts_svg(&shuffled);
        assert_eq!(count(&svg, "accuracy-point"), 3);
        let first = svg.find("data-round=\"0\"").unwrap();
        let last = svg.find("data-round=\"2\"").unwrap();
        assert!(first < last, "points are drawn in round order");
    }

    #[test]
    fn write_round_charts_writes_svg_and_refuses_other_extensions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rounds.svg");
        write_round_charts(
            &path,
            &[round(0, RoundStatus::Closed, Some(0.5), Some(1.0))],
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(count(&text, "accuracy-point"), 1);
        assert!(!dir.path().join("rounds.svg.tmp").exists());
        let png = dir.path().join("rounds.png");
        let err = write_round_charts(&png, &[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(!png.exists());
    }

    #[test]
    fn the_error_chart_escapes_its_text() {
        let svg = error_svg("<bad> & \"worse\"");
        assert!(svg.contains("&lt;bad&gt; &amp; &quot;worse&quot;"));
        assert!(svg.contains("data-error=\"true\""));
    }

    #[test]
    fn a_text_job_charts_perplexity_and_validation_loss() {
        let rounds: Vec<RoundInfo> = (0..3)
            .map(|t| RoundInfo {
                test_perplexity: Some(8.0 - t as f64),
                sample: Some("ROMEO:".into()),
                ..round(
                    t,
                    RoundStatus::Closed,
                    Some(0.4),
                    Some(2.0 - 0.1 * t as f64),
                )
            })
            .collect();
        let svg = round_charts_svg(&rounds);
        assert_eq!(count(&svg, "perplexity-point"), 3);
        assert_eq!(count(&svg, "accuracy-point"), 0);
        assert!(svg.contains("validation perplexity") && svg.contains("validation loss"));
        assert!(svg.contains("data-round=\"2\" data-value=\"6\""), "{svg}");
    }
}
