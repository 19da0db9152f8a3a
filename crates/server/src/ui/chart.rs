//! Small line charts as inline SVG, drawn on the server: a host's cpu, memory and disk over
//! the last hour need no script and no chart library.

use std::fmt::Write;

use super::view::escape;

const WIDTH: f64 = 240.0;
const HEIGHT: f64 = 48.0;

/// A chart of `percents` (0 to 100, oldest first), named `label` for screen readers.
pub fn sparkline(label: &str, percents: &[f64]) -> String {
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         role=\"img\" aria-label=\"{}\" preserveAspectRatio=\"none\">\
         <rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{HEIGHT}\" class=\"frame\"/>",
        escape(label)
    );
    if percents.len() >= 2 {
        let step = WIDTH / (percents.len() - 1) as f64;
        let mut points = String::new();
        for (index, percent) in percents.iter().enumerate() {
            let y = HEIGHT - percent.clamp(0.0, 100.0) / 100.0 * HEIGHT;
            let _ = write!(points, "{:.1},{:.1} ", index as f64 * step, y);
        }
        let _ = write!(
            svg,
            "<polyline points=\"{}\" class=\"line\"/>",
            points.trim_end()
        );
    } else if let Some(percent) = percents.first() {
        let y = HEIGHT - percent.clamp(0.0, 100.0) / 100.0 * HEIGHT;
        let _ = write!(
            svg,
            "<line x1=\"0\" y1=\"{y:.1}\" x2=\"{WIDTH}\" y2=\"{y:.1}\" class=\"line\"/>"
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_span_the_width_and_clamp_to_the_height() {
        let svg = sparkline("cpu <x>", &[0.0, 50.0, 150.0]);
        assert!(
            svg.contains("points=\"0.0,48.0 120.0,24.0 240.0,0.0\""),
            "{svg}"
        );
        assert!(svg.contains("aria-label=\"cpu &lt;x&gt;\""), "{svg}");
        assert!(!sparkline("empty", &[]).contains("polyline"));
    }
}
