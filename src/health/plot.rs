//! One PNG per model and metric: the machines of the model along x (by
//! name, so a machine sits at the same place in every plot of its model),
//! their figures as dots, the median as a line inside a band of
//! ± threshold, outliers in red (slow) or orange (fast) with their
//! deviation written beside them.
//!
//! Drawn by `plotters` into an RGB buffer with DejaVu Sans built into the
//! binary (share/fonts/), so nothing depends on the fonts of the machine,
//! then encoded by `png`.

use super::{fmt_deviation, fmt_percent, fmt_value, Comparison, Group, Metric, PlotFile};
use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, FontTransform};
use std::path::Path;
use std::sync::OnceLock;

static FONT: &[u8] = include_bytes!("../../share/fonts/DejaVuSans.ttf");

/// Plotters looks fonts up by family name; ours is registered once as
/// `sans-serif`, the family every text below asks for.
fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the built-in font DejaVuSans.ttf cannot be loaded"))
    }
}

/// Height of the plot area above the machine names.
const PLOT_HEIGHT: u32 = 460;
/// Horizontal room per machine when every machine is named.
const SLOT: u32 = 26;
const MIN_WIDTH: u32 = 800;
/// Wider plots are hard to look at; past this only outliers are named.
const MAX_WIDTH: u32 = 4000;
/// Room left and right of the machines: y labels, axis title, margins.
const SIDES: u32 = 150;
const LABEL_SIZE: u32 = 13;

const NORMAL: RGBColor = RGBColor(0x1f, 0x5f, 0xa8);
const SLOW: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const FAST: RGBColor = RGBColor(0xf0, 0x8c, 0x00);
const MEDIAN: RGBColor = RGBColor(0x20, 0x20, 0x20);
const BAND: RGBColor = RGBColor(0xdd, 0xe6, 0xf0);

/// The size of the plot of `m`: wide enough to name every machine (up to
/// `MAX_WIDTH`), tall enough for the longest name written downwards.
pub fn plot_size(m: &Metric) -> (u32, u32, bool) {
    let n = m.samples.len() as u32;
    let wanted = SIDES + SLOT * n;
    let name_all = wanted <= MAX_WIDTH;
    let width = wanted.clamp(MIN_WIDTH, MAX_WIDTH);
    let longest = m
        .samples
        .iter()
        .filter(|s| name_all || m.outliers.iter().any(|o| o.machine == s.machine))
        .map(|s| s.machine.chars().count() as u32)
        .max()
        .unwrap_or(0);
    // About 0.6 em per character of DejaVu Sans, capped so that a very long
    // name cannot make a huge image (it is cut at the bottom edge).
    let names = (longest * LABEL_SIZE * 6 / 10 + 20).min(360);
    (width, PLOT_HEIGHT + names + 40, name_all)
}

/// `HP ProLiant DL360p Gen8 (654081-B21)` → `HP-ProLiant-DL360p-Gen8-654081-B21`.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches(|c| c == '-' || c == '.').to_string();
    if out.is_empty() {
        "x".into()
    } else {
        out
    }
}

/// Writes one PNG per model and metric into `outdir` (created if needed)
/// as `<model>--<metric>.png`; existing files of those names are replaced,
/// other files are left alone.
pub fn write_plots(report: &Comparison, outdir: &Path) -> Result<Vec<PlotFile>> {
    register_font()?;
    std::fs::create_dir_all(outdir)
        .with_context(|| format!("{}: cannot create the plot directory", outdir.display()))?;
    let mut written = Vec::new();
    let mut used = std::collections::HashSet::new();
    for g in &report.groups {
        for m in &g.metrics {
            let base = format!("{}--{}", slug(&g.model), slug(&m.metric));
            // Two models whose names differ only in punctuation.
            let mut name = format!("{base}.png");
            let mut k = 2;
            while !used.insert(name.clone()) {
                name = format!("{base}-{k}.png");
                k += 1;
            }
            let path = outdir.join(&name);
            let (width, height) = write_plot(g, m, report.threshold, &path)?;
            written.push(PlotFile {
                path: path.display().to_string(),
                model: g.model.clone(),
                metric: m.metric.clone(),
                width,
                height,
            });
        }
    }
    Ok(written)
}

/// Draws and writes one plot; returns its size.
pub fn write_plot(g: &Group, m: &Metric, threshold: f64, path: &Path) -> Result<(u32, u32)> {
    register_font()?;
    let (width, height, name_all) = plot_size(m);
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        draw(&root, g, m, threshold, name_all)
            .map_err(|e| anyhow!("{}: cannot draw the plot: {e}", path.display()))?;
        root.present()
            .map_err(|e| anyhow!("{}: cannot draw the plot: {e}", path.display()))?;
    }
    let tmp = path.with_extension("png.tmp");
    encode_png(&tmp, width, height, &rgb)
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok((width, height))
}

fn encode_png(path: &Path, width: u32, height: u32, rgb: &[u8]) -> Result<()> {
    let file = std::fs::File::create(path)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header()?;
    w.write_image_data(rgb)?;
    w.finish()?;
    Ok(())
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn draw(
    root: &DrawingArea<BitMapBackend<'_>, Shift>,
    g: &Group,
    m: &Metric,
    threshold: f64,
    name_all: bool,
) -> DrawResult {
    root.fill(&WHITE)?;
    let n = m.samples.len();
    let (_, height) = root.dim_in_pixel();
    let names_area = height - PLOT_HEIGHT - 40;

    let top = m.max.max(m.median * (1.0 + threshold));
    let top = if top > 0.0 { top * 1.12 } else { 1.0 };

    let subtitle = match &m.not_judged {
        None => format!(
            "{n} machines, median {} {}, outliers beyond ±{}%: {}",
            fmt_value(m.median),
            m.unit,
            fmt_percent(threshold),
            m.outliers.len()
        ),
        Some(why) => format!(
            "{n} machine{}, median {} {}, not judged: {why}",
            if n == 1 { "" } else { "s" },
            fmt_value(m.median),
            m.unit
        ),
    };
    let (title_area, rest) = root.split_vertically(58);
    title_area.draw(&Text::new(
        format!("{}: {}", g.model, m.metric),
        (20, 8),
        ("sans-serif", 20).into_font().color(&BLACK),
    ))?;
    title_area.draw(&Text::new(
        subtitle,
        (20, 34),
        ("sans-serif", 15).into_font().color(&MEDIAN),
    ))?;

    let names: Vec<String> = m
        .samples
        .iter()
        .map(|s| {
            if name_all || m.outliers.iter().any(|o| o.machine == s.machine) {
                s.machine.clone()
            } else {
                String::new()
            }
        })
        .collect();
    let x_desc = if name_all {
        "machine (by name)".to_string()
    } else {
        format!("{n} machines by name; outliers named")
    };

    let mut chart = ChartBuilder::on(&rest)
        .margin_left(10)
        .margin_right(30)
        .margin_bottom(10)
        .x_label_area_size(names_area)
        .y_label_area_size(100)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_labels(8)
        .y_label_formatter(&|v| fmt_value(v.round()))
        .y_label_style(("sans-serif", 13))
        .y_desc(m.unit)
        .axis_desc_style(("sans-serif", 15))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;

    let left = -0.5;
    let right = n as f64 - 0.5;
    if m.judged {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [
                    (left, m.median * (1.0 - threshold)),
                    (right, m.median * (1.0 + threshold)),
                ],
                BAND.filled(),
            )))?
            .label(format!("median ± {}%", fmt_percent(threshold)))
            .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], BAND.filled()));
    }
    chart
        .draw_series(LineSeries::new(
            [(left, m.median), (right, m.median)],
            MEDIAN.stroke_width(2),
        ))?
        .label(format!("median {} {}", fmt_value(m.median), m.unit))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], MEDIAN.stroke_width(2)));

    let outlier_of = |machine: &str| m.outliers.iter().find(|o| o.machine == machine);
    chart
        .draw_series(
            m.samples
                .iter()
                .enumerate()
                .filter(|(_, s)| outlier_of(&s.machine).is_none())
                .map(|(i, s)| Circle::new((i as f64, s.value), 5, NORMAL.filled())),
        )?
        .label("machine")
        .legend(|(x, y)| Circle::new((x + 10, y), 5, NORMAL.filled()));
    for (color, slow, label) in [
        (SLOW, true, "outlier, slow"),
        (FAST, false, "outlier, fast"),
    ] {
        let points: Vec<(usize, f64, String)> = m
            .samples
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                outlier_of(&s.machine)
                    .filter(|o| o.is_slow() == slow)
                    .map(|o| (i, s.value, fmt_deviation(o.deviation)))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(points.into_iter().map(|(i, v, dev)| {
                EmptyElement::at((i as f64, v))
                    + Circle::new((0, 0), 6, color.filled())
                    + Text::new(dev, (9, -8), ("sans-serif", 13).into_font().color(&color))
            }))?
            .label(label)
            .legend(move |(x, y)| Circle::new((x + 10, y), 6, color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()?;

    // The machine names, written downwards under their dots. Drawn by hand
    // rather than as axis labels: plotters picks "round" label positions on
    // a numeric axis, and every machine must get its own.
    let font = ("sans-serif", LABEL_SIZE)
        .into_font()
        .transform(FontTransform::Rotate90)
        .color(&BLACK);
    // Pixel coordinates of the whole image (the plotting area's own).
    let bottom = chart.plotting_area().get_pixel_range().1.end;
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() {
            continue;
        }
        let (px, _) = chart.backend_coord(&(i as f64, 0.0));
        let color = match outlier_of(&m.samples[i].machine) {
            Some(o) if o.is_slow() => SLOW,
            Some(_) => FAST,
            None => BLACK,
        };
        root.draw(&Text::new(
            name.clone(),
            (px + LABEL_SIZE as i32 / 2, bottom + 8),
            font.clone().color(&color),
        ))?;
    }
    root.draw(&Text::new(
        x_desc,
        ((root.dim_in_pixel().0 / 2) as i32 - 80, height as i32 - 24),
        ("sans-serif", 15).into_font().color(&BLACK),
    ))?;
    Ok(())
}
