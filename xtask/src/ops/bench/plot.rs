//! The benchmark's picture: wall time against the number of service charts,
//! one line per scenario (baseline, floor, cold, warm, one leaf changed),
//! drawn as an SVG from the run just measured (`cargo xtask bench --plot
//! FILE`), so the figure in `docs/performance.md` is never older than its
//! table.
//!
//! Both axes are logarithmic: the scenarios span three orders of magnitude
//! (a warm run is a tenth of a second, the baseline minutes), and a constant
//! ratio between two lines (the speed-up) reads as a constant gap. Written
//! by hand: a few dozen SVG elements need no plotting crate.

use std::fmt::Write as _;

/// One line of the plot: a scenario and its (charts, seconds) points.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;
/// One colour per scenario, in the order the benchmark measures them;
/// distinguishable for the common colour-vision deficiencies.
const COLOURS: [&str; 6] = ["#d55e00", "#7f7f7f", "#0072b2", "#009e73", "#cc79a7", "#e69f00"];

/// The SVG text of the plot. `title` heads it (machine and date).
pub fn svg(series: &[Series], title: &str) -> String {
    let points: Vec<(f64, f64)> =
        series.iter().flat_map(|s| s.points.iter().copied()).filter(|&(x, y)| x > 0.0 && y > 0.0).collect();
    let (x_lo, x_hi) = decades(points.iter().map(|p| p.0));
    let (y_lo, y_hi) = decades(points.iter().map(|p| p.1));
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_at = |x: f64| LEFT + (x.log10() - x_lo) / (x_hi - x_lo) * plot_w;
    let y_at = |y: f64| TOP + plot_h - (y.log10() - y_lo) / (y_hi - y_lo) * plot_h;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
    let _ = writeln!(out, r#"<text x="{LEFT}" y="22" font-size="14">{}</text>"#, escape(title));
    // Grid and tick labels at every power of ten and its 2x and 5x.
    for decade in x_lo as i32..=x_hi as i32 {
        for step in [1.0, 2.0, 5.0] {
            let x = step * 10f64.powi(decade);
            if x.log10() > x_hi + 1e-9 {
                continue;
            }
            let px = x_at(x);
            let _ = writeln!(
                out,
                r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#e5e5e5"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                TOP + plot_h,
                TOP + plot_h + 16.0,
                number(x)
            );
        }
    }
    for decade in y_lo as i32..=y_hi as i32 {
        for step in [1.0, 2.0, 5.0] {
            let y = step * 10f64.powi(decade);
            if y.log10() > y_hi + 1e-9 {
                continue;
            }
            let py = y_at(y);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{} s</text>"##,
                LEFT + plot_w,
                LEFT - 6.0,
                py + 4.0,
                number(y)
            );
        }
    }
    let _ =
        writeln!(out, r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##);
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">service charts in the repository (log scale)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 12.0
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">wall time (log scale)</text>"#,
        TOP + plot_h / 2.0
    );
    for (i, line) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let shown: Vec<String> = line
            .points
            .iter()
            .filter(|&&(x, y)| x > 0.0 && y > 0.0)
            .map(|&(x, y)| format!("{:.1},{:.1}", x_at(x), y_at(y)))
            .collect();
        if shown.is_empty() {
            continue;
        }
        let _ =
            writeln!(out, r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#, shown.join(" "));
        for point in &shown {
            let (cx, cy) = point.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(out, r#"<circle cx="{cx}" cy="{cy}" r="3.5" fill="{colour}"/>"#);
        }
        let legend_y = TOP + 14.0 + i as f64 * 20.0;
        let legend_x = LEFT + plot_w + 14.0;
        let _ = writeln!(
            out,
            r#"<line x1="{legend_x}" y1="{legend_y}" x2="{:.1}" y2="{legend_y}" stroke="{colour}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            legend_x + 18.0,
            legend_x + 24.0,
            legend_y + 4.0,
            escape(&line.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// The whole decades around `values`, as log10 bounds (at least one decade).
fn decades(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let (lo, hi) = (lo.log10().floor(), hi.log10().ceil());
    if hi > lo {
        (lo, hi)
    } else {
        (lo, lo + 1.0)
    }
}

/// A tick label: `0.1`, `2`, `500`, without trailing zeros.
fn number(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_point_is_drawn_inside_the_plot_and_every_series_has_a_legend() {
        let series = vec![
            Series { name: "baseline".into(), points: vec![(10.0, 6.4), (50.0, 31.0), (200.0, 127.7)] },
            Series { name: "warm <cache>".into(), points: vec![(10.0, 0.1), (50.0, 0.12), (200.0, 0.13)] },
        ];
        let svg = svg(&series, "2 cores");
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 6);
        assert!(svg.contains("warm &lt;cache&gt;"), "{svg}");
        for circle in svg.lines().filter(|l| l.starts_with("<circle")) {
            let attr = |name: &str| -> f64 {
                let at = circle.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                circle[at..].split('"').next().unwrap().parse().unwrap()
            };
            assert!((LEFT..=WIDTH - RIGHT).contains(&attr("cx")), "{circle}");
            assert!((TOP..=HEIGHT - BOTTOM).contains(&attr("cy")), "{circle}");
        }
        // 0.1 s is the bottom of the y axis's first decade, 1000 s would be beyond.
        assert_eq!(decades([0.1, 127.7].into_iter()), (-1.0, 3.0));
        assert_eq!(number(0.1), "0.1");
        assert_eq!(number(200.0), "200");
    }
}
