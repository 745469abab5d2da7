//! The custody timeline chart: an inline SVG with one row per (system,
//! party), one bar per custody interval from the event that opened it to
//! the one that closed it (open intervals run to "now"), the asset's events
//! marked on the time axis, and a legend.

use custody_domain::{rfc3339, Interval, Timestamp};
use maud::{html, Markup};

use super::layout::clip;

/// `Mark` is an event drawn on the time axis.
pub struct Mark {
    /// Its log index.
    pub index: u64,
    /// Its event time.
    pub time: Timestamp,
    /// Its kind, such as `COPY`.
    pub kind: &'static str,
}

// The chart's geometry, in viewBox units, and its colours.
const W: f64 = 1200.0;
const LABEL_W: f64 = 250.0;
const RIGHT: f64 = 36.0;
const LEGEND_H: f64 = 34.0;
const ROW_H: f64 = 36.0;
const BAR_H: f64 = 14.0;
const EVENTS_H: f64 = 96.0;
const AXIS_H: f64 = 44.0;
const INSIDE: &str = "#2f6db5";
const OUTSIDE: &str = "#c0392b";
const MINUTE: i64 = 60_000_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// `Scale` maps times onto the plot's x range.
struct Scale {
    t0: Timestamp,
    t1: Timestamp,
}

impl Scale {
    fn x(&self, t: Timestamp) -> f64 {
        // In i128, so no logged time can overflow the arithmetic.
        let span = (i128::from(self.t1) - i128::from(self.t0)).max(1) as f64;
        let dt = (i128::from(t.clamp(self.t0, self.t1)) - i128::from(self.t0)) as f64;
        LABEL_W + dt / span * (W - LABEL_W - RIGHT)
    }
}

/// `ticks` picks a round step giving at most eight ticks over `[t0, t1]`,
/// and the ticks, aligned to that step in UTC.
fn ticks(t0: Timestamp, t1: Timestamp) -> (i64, Vec<Timestamp>) {
    const STEPS: [i64; 16] = [
        MINUTE,
        5 * MINUTE,
        15 * MINUTE,
        30 * MINUTE,
        HOUR,
        2 * HOUR,
        3 * HOUR,
        6 * HOUR,
        12 * HOUR,
        DAY,
        2 * DAY,
        7 * DAY,
        14 * DAY,
        30 * DAY,
        90 * DAY,
        365 * DAY,
    ];
    let span = t1.saturating_sub(t0).max(1);
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span / s < 8)
        .unwrap_or(span / 8 + 1);
    let first = t0.saturating_add((step - t0.rem_euclid(step)) % step);
    let ticks = (0..12)
        .map_while(|i: i64| first.checked_add(i.checked_mul(step)?))
        .take_while(|t| *t <= t1)
        .collect();
    (step, ticks)
}

/// `tick_label` writes a tick's time as briefly as the step allows.
fn tick_label(t: Timestamp, step: i64, span: i64) -> String {
    let s = rfc3339(t);
    let part = |a: usize, b: usize| s.get(a..b).unwrap_or("").to_owned();
    if step >= DAY {
        part(0, 10)
    } else if span > DAY {
        format!("{} {}", part(5, 10), part(11, 16))
    } else {
        part(11, 16)
    }
}

/// `f` writes a coordinate to one decimal.
fn f(x: f64) -> String {
    format!("{x:.1}")
}

/// `chart` draws `intervals` and the events `marks`; `outside` says whether
/// a system is unfit to receive data (outside the boundary, unaccredited,
/// unencrypted or removable media), and `now` is where open intervals end.
pub fn chart(
    intervals: &[Interval],
    marks: &[Mark],
    outside: &dyn Fn(&str) -> bool,
    now: Timestamp,
) -> Markup {
    // Rows: one per (system, party), in order of first custody.
    let mut rows: Vec<((&str, &str), Vec<&Interval>)> = Vec::new();
    for i in intervals {
        let key = (i.system.as_str(), i.party.as_str());
        match rows.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(i),
            None => rows.push((key, vec![i])),
        }
    }
    rows.sort_by_key(|(k, v)| (v.iter().map(|i| i.from).min(), *k));

    let any_open = intervals.iter().any(|i| i.to.is_none());
    let times = intervals
        .iter()
        .flat_map(|i| [i.from, i.to.unwrap_or(now)])
        .chain(marks.iter().map(|m| m.time));
    let (lo, hi) = times.fold((i64::MAX, i64::MIN), |(a, b), t| (a.min(t), b.max(t)));
    let (lo, hi) = if lo > hi { (now - HOUR, now) } else { (lo, hi) };
    let pad = (hi.saturating_sub(lo) / 50).max(1_000_000_000);
    let scale = Scale {
        t0: lo.saturating_sub(pad),
        t1: hi.saturating_add(pad),
    };
    let (step, tick_times) = ticks(scale.t0, scale.t1);

    let plot_top = LEGEND_H;
    let rows_h = rows.len() as f64 * ROW_H;
    let ev_y = plot_top + rows_h + 14.0;
    let axis_y = plot_top + rows_h + EVENTS_H;
    let h = axis_y + AXIS_H;
    // Label an event only when it is clear of the last labelled one.
    let mut marks: Vec<&Mark> = marks.iter().collect();
    marks.sort_by_key(|m| (m.time, m.index));
    let mut last_label = f64::MIN;
    let labelled: Vec<bool> = marks
        .iter()
        .map(|m| {
            let x = scale.x(m.time);
            // Labels slant at 45°: 22 units apart keeps 15 between them.
            let clear = x - last_label >= 22.0;
            if clear {
                last_label = x;
            }
            clear
        })
        .collect();

    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (f(W)) " " (f(h)) }
            role="img" aria-label="custody timeline" font-family="Liberation Sans, DejaVu Sans, Arial, sans-serif" {
            // Legend.
            g font-size="12" fill="#333" {
                rect x=(f(LABEL_W)) y="10" width="22" height="12" fill=(INSIDE) {}
                text x=(f(LABEL_W + 28.0)) y="20" { "inside the boundary" }
                rect x=(f(LABEL_W + 170.0)) y="10" width="22" height="12" fill=(OUTSIDE) {}
                text x=(f(LABEL_W + 198.0)) y="20" { "outside the boundary, unaccredited, unencrypted or removable" }
                rect x=(f(LABEL_W + 470.0)) y="10" width="22" height="12" fill="#777" {}
                polygon points={ (f(LABEL_W + 492.0)) ",7 " (f(LABEL_W + 501.0)) ",16 " (f(LABEL_W + 492.0)) ",25" } fill="#777" {}
                text x=(f(LABEL_W + 508.0)) y="20" { "open: still held, drawn to now" }
                polygon points={ (f(LABEL_W + 725.0)) ",10 " (f(LABEL_W + 731.0)) ",16 " (f(LABEL_W + 725.0)) ",22 " (f(LABEL_W + 719.0)) ",16" } fill="#222" {}
                text x=(f(LABEL_W + 737.0)) y="20" { "event (listed below)" }
            }
            // Row bands and labels.
            @for (n, ((system, party), _)) in rows.iter().enumerate() {
                @let y = plot_top + n as f64 * ROW_H;
                @if n % 2 == 0 {
                    rect x="0" y=(f(y)) width=(f(W)) height=(f(ROW_H)) fill="#f4f6f9" {}
                }
                text.row-label x=(f(LABEL_W - 12.0)) y=(f(y + 15.0)) text-anchor="end" font-size="12.5" font-weight="bold" fill="#1b2430" {
                    title { (system) } (clip(system, 30))
                }
                text x=(f(LABEL_W - 12.0)) y=(f(y + 29.0)) text-anchor="end" font-size="11" fill="#5d6878" {
                    title { (party) } "held by " (clip(party, 24))
                }
            }
            // Time grid.
            @for t in &tick_times {
                line x1=(f(scale.x(*t))) x2=(f(scale.x(*t))) y1=(f(plot_top)) y2=(f(axis_y))
                    stroke="#e1e5eb" stroke-width="1" {}
            }
            // Guides from each event down to the axis.
            @for m in &marks {
                line x1=(f(scale.x(m.time))) x2=(f(scale.x(m.time))) y1=(f(plot_top)) y2=(f(ev_y))
                    stroke="#9aa3ae" stroke-width="0.8" stroke-dasharray="2 3" {}
            }
            // Bars.
            @for (n, (_, ivs)) in rows.iter().enumerate() {
                @let y = plot_top + n as f64 * ROW_H + (ROW_H - BAR_H) / 2.0;
                @for i in ivs {
                    @let colour = if outside(&i.system) { OUTSIDE } else { INSIDE };
                    @let x0 = scale.x(i.from);
                    @let x1 = scale.x(i.to.unwrap_or(now)).max(x0 + 2.0);
                    g.bar data-system=(i.system) {
                        title {
                            (i.system) " held by " (i.party) "\nfrom " (rfc3339(i.from))
                            " (entry " (i.opened_by) ")\n"
                            @match (i.to, i.closed_by) {
                                (Some(t), Some(c)) => { "to " (rfc3339(t)) " (entry " (c) ")" }
                                _ => { "still open" }
                            }
                        }
                        rect x=(f(x0)) y=(f(y)) width=(f(x1 - x0)) height=(f(BAR_H)) fill=(colour) rx="2" {}
                        @if i.to.is_none() {
                            polygon points={ (f(x1)) "," (f(y - 3.0)) " " (f(x1 + 9.0)) "," (f(y + BAR_H / 2.0)) " " (f(x1)) "," (f(y + BAR_H + 3.0)) } fill=(colour) {}
                        } @else {
                            rect x=(f(x1 - 1.5)) y=(f(y - 2.0)) width="1.5" height=(f(BAR_H + 4.0)) fill="#1b2430" {}
                        }
                    }
                }
            }
            // "Now", where open intervals end.
            @if any_open {
                line x1=(f(scale.x(now))) x2=(f(scale.x(now))) y1=(f(plot_top - 4.0)) y2=(f(axis_y))
                    stroke="#1b2430" stroke-width="1" stroke-dasharray="5 3" {}
            }
            // Events.
            text x=(f(LABEL_W - 12.0)) y=(f(ev_y + 4.0)) text-anchor="end" font-size="12" font-weight="bold" fill="#1b2430" { "events" }
            @for (m, label) in marks.iter().zip(&labelled) {
                @let x = scale.x(m.time);
                polygon.event points={ (f(x)) "," (f(ev_y - 6.0)) " " (f(x + 6.0)) "," (f(ev_y)) " " (f(x)) "," (f(ev_y + 6.0)) " " (f(x - 6.0)) "," (f(ev_y)) } fill="#222" {
                    title { (m.kind) " · entry " (m.index) " · " (rfc3339(m.time)) }
                }
                @if *label {
                    text x=(f(x + 3.0)) y=(f(ev_y + 16.0)) font-size="10.5" fill="#333"
                        transform={ "rotate(45 " (f(x + 3.0)) " " (f(ev_y + 16.0)) ")" } {
                        (m.kind) " #" (m.index)
                    }
                }
            }
            // Axis.
            line x1=(f(LABEL_W)) x2=(f(W - RIGHT)) y1=(f(axis_y)) y2=(f(axis_y)) stroke="#1b2430" stroke-width="1" {}
            text x=(f(LABEL_W - 12.0)) y=(f(axis_y + 18.0)) text-anchor="end" font-size="12" fill="#5d6878" { "time (UTC)" }
            @for t in &tick_times {
                line x1=(f(scale.x(*t))) x2=(f(scale.x(*t))) y1=(f(axis_y)) y2=(f(axis_y + 5.0)) stroke="#1b2430" {}
                text x=(f(scale.x(*t))) y=(f(axis_y + 18.0)) text-anchor="middle" font-size="11.5" fill="#1b2430" {
                    (tick_label(*t, step, scale.t1.saturating_sub(scale.t0)))
                }
            }
            @if any_open {
                text x=(f(scale.x(now))) y=(f(axis_y + 34.0)) text-anchor="middle" font-size="11" font-weight="bold" fill="#1b2430" { "now" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_few() {
        let t0 = 1_700_000_123 * 1_000_000_000;
        let (step, ts) = ticks(t0, t0 + 4 * DAY);
        assert_eq!(step, DAY);
        assert!(ts.len() <= 8 && !ts.is_empty());
        assert!(ts.iter().all(|t| t % DAY == 0 && *t >= t0));
        let (step, _) = ticks(t0, t0 + 90 * MINUTE);
        assert_eq!(step, 15 * MINUTE);
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let (_, ts) = ticks(1, i64::MAX);
        assert!(!ts.is_empty() && ts.len() <= 12);
        let s = Scale {
            t0: i64::MIN,
            t1: i64::MAX,
        };
        assert!(s.x(0) > LABEL_W && s.x(0) < W - RIGHT);
    }

    #[test]
    fn the_scale_keeps_times_inside_the_plot() {
        let s = Scale { t0: 0, t1: 100 };
        assert_eq!(s.x(0), LABEL_W);
        assert_eq!(s.x(100), W - RIGHT);
        assert_eq!(s.x(1000), W - RIGHT);
    }

    #[test]
    fn one_row_per_system_and_party_with_open_intervals_to_now() {
        let i = |system: &str, from: i64, to: Option<i64>| Interval {
            asset: [1; 32],
            system: system.into(),
            party: "p".into(),
            from,
            to,
            opened_by: 1,
            closed_by: to.map(|_| 2),
            modality: None,
            subject_class: None,
        };
        let svg = chart(
            &[
                i("a", 0, Some(HOUR)),
                i("a", 2 * HOUR, None),
                i("b<", HOUR, None),
            ],
            &[Mark {
                index: 1,
                time: 0,
                kind: "CAPTURE",
            }],
            &|s| s == "a",
            3 * HOUR,
        )
        .into_string();
        assert_eq!(svg.matches("<g class=\"bar\"").count(), 3);
        assert_eq!(svg.matches("class=\"row-label\"").count(), 2, "two rows");
        assert!(svg.contains("b&lt;"), "labels are escaped");
        assert!(svg.contains(">now<"));
        assert!(svg.contains("CAPTURE #1"));
    }
}
