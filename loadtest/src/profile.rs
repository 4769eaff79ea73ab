//! The target rate over time, and each request's intended send time.
//!
//! A profile is one or more segments joined by `+`:
//!
//! | segment | meaning |
//! |---|---|
//! | `constant:500@30s` | 500 requests/s for 30 s |
//! | `steps:100,200,400@10s` | 100/s, then 200/s, then 400/s, 10 s each |
//! | `ramp:100..1000@60s` | from 100/s rising linearly to 1000/s over 60 s |
//!
//! for example `ramp:0..800@20s+constant:800@60s`. Durations take `ms`, `s` or `m`. A bare
//! number (`500`) is `constant:500@` the `--duration` given.
//!
//! Sends are spaced evenly (not Poisson): request `k` is intended at the instant the profile's
//! cumulative count reaches `k`. Latency is measured from that instant.

use std::time::Duration;

/// A linear piece of the profile: the rate goes from `from` to `to` over `length`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    from: f64,
    to: f64,
    length: Duration,
}

/// A rate profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    spec: String,
    segments: Vec<Segment>,
}

/// Parses `500ms`, `30s`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        return Err(format!("{text:?}: a duration needs a unit (ms, s or m)"));
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: not a duration"))?;
    let secs = v * scale;
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err(format!(
            "{text:?}: a duration must be above 0 and at most 24 h"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: not a rate (requests per second)"))?;
    if !(v.is_finite() && (0.0..=1_000_000.0).contains(&v)) {
        return Err(format!(
            "{text:?}: a rate must be between 0 and 1000000 per second"
        ));
    }
    Ok(v)
}

impl Profile {
    /// Parses a profile; `default_length` is the length of a bare rate.
    pub fn parse(spec: &str, default_length: Duration) -> Result<Profile, String> {
        let mut segments = Vec::new();
        for part in spec.split('+') {
            let part = part.trim();
            let Some((kind, rest)) = part.split_once(':') else {
                let rate = parse_rate(part)?;
                segments.push(Segment {
                    from: rate,
                    to: rate,
                    length: default_length,
                });
                continue;
            };
            let (rates, length) = rest
                .rsplit_once('@')
                .ok_or_else(|| format!("{part:?}: missing @DURATION"))?;
            let length = parse_duration(length)?;
            match kind {
                "constant" => {
                    let r = parse_rate(rates)?;
                    segments.push(Segment {
                        from: r,
                        to: r,
                        length,
                    });
                }
                "steps" => {
                    for r in rates.split(',') {
                        let r = parse_rate(r)?;
                        segments.push(Segment {
                            from: r,
                            to: r,
                            length,
                        });
                    }
                }
                "ramp" => {
                    let (a, b) = rates
                        .split_once("..")
                        .ok_or_else(|| format!("{part:?}: a ramp is FROM..TO"))?;
                    segments.push(Segment {
                        from: parse_rate(a)?,
                        to: parse_rate(b)?,
                        length,
                    });
                }
                other => {
                    return Err(format!(
                        "{other:?}: unknown segment (constant, steps or ramp)"
                    ))
                }
            }
        }
        if segments.is_empty() {
            return Err("empty profile".into());
        }
        if segments.iter().all(|s| s.from == 0.0 && s.to == 0.0) {
            return Err(format!("{spec:?}: the rate is zero throughout"));
        }
        Ok(Profile {
            spec: spec.to_owned(),
            segments,
        })
    }

    /// A constant rate for `length`.
    pub fn constant(rate: f64, length: Duration) -> Profile {
        Profile {
            spec: format!("constant:{rate}@{}s", length.as_secs_f64()),
            segments: vec![Segment {
                from: rate,
                to: rate,
                length,
            }],
        }
    }

    /// The profile as written.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// The whole length.
    pub fn length(&self) -> Duration {
        self.segments.iter().map(|s| s.length).sum()
    }

    /// The rate at `t` after the start (0 past the end).
    pub fn rate_at(&self, t: Duration) -> f64 {
        let mut start = Duration::ZERO;
        for s in &self.segments {
            if t < start + s.length {
                let x = (t - start).as_secs_f64() / s.length.as_secs_f64();
                return s.from + (s.to - s.from) * x;
            }
            start += s.length;
        }
        0.0
    }

    /// The mean rate over the profile.
    pub fn mean_rate(&self) -> f64 {
        let total = self.length().as_secs_f64();
        if total == 0.0 {
            return 0.0;
        }
        self.expected_count() / total
    }

    /// How many requests the profile sends.
    pub fn expected_count(&self) -> f64 {
        self.segments
            .iter()
            .map(|s| (s.from + s.to) / 2.0 * s.length.as_secs_f64())
            .sum()
    }

    /// The intended send times, in order, from the start.
    pub fn send_times(&self) -> SendTimes<'_> {
        SendTimes {
            profile: self,
            segment: 0,
            segment_start: 0.0,
            before: 0.0,
            k: 0,
        }
    }
}

/// The intended send times of a [`Profile`]: request `k` at the instant the cumulative count
/// reaches `k`.
#[derive(Debug)]
pub struct SendTimes<'p> {
    profile: &'p Profile,
    segment: usize,
    /// Start of the current segment, seconds.
    segment_start: f64,
    /// Cumulative count at the start of the current segment.
    before: f64,
    k: u64,
}

impl Iterator for SendTimes<'_> {
    type Item = Duration;

    #[allow(clippy::as_conversions)] // request counts far below 2^53
    fn next(&mut self) -> Option<Duration> {
        loop {
            let s = self.profile.segments.get(self.segment)?;
            let len = s.length.as_secs_f64();
            let in_segment = (s.from + s.to) / 2.0 * len;
            let n = self.k as f64 - self.before;
            if n < in_segment {
                // Solve from*t + (to-from)/(2*len)*t^2 = n for t in [0, len].
                let a = (s.to - s.from) / (2.0 * len);
                let t = if a.abs() < 1e-12 {
                    n / s.from
                } else {
                    (-s.from + (s.from * s.from + 4.0 * a * n).max(0.0).sqrt()) / (2.0 * a)
                };
                self.k += 1;
                return Some(Duration::from_secs_f64(
                    self.segment_start + t.clamp(0.0, len),
                ));
            }
            self.segment += 1;
            self.segment_start += len;
            self.before += in_segment;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_constant_rate_spaces_sends_evenly() {
        let p = Profile::parse("constant:100@2s", S).unwrap();
        let t: Vec<Duration> = p.send_times().collect();
        assert_eq!(t.len(), 200);
        assert_eq!(t[0], Duration::ZERO);
        assert!((t[1].as_secs_f64() - 0.01).abs() < 1e-9);
        assert!((t[199].as_secs_f64() - 1.99).abs() < 1e-9);
    }

    #[test]
    fn steps_change_the_spacing_at_each_step() {
        let p = Profile::parse("steps:10,20@1s", S).unwrap();
        let t: Vec<f64> = p.send_times().map(|d| d.as_secs_f64()).collect();
        assert_eq!(t.len(), 30);
        assert!((t[1] - t[0] - 0.1).abs() < 1e-9);
        assert!((t[11] - t[10] - 0.05).abs() < 1e-9);
        assert!((p.mean_rate() - 15.0).abs() < 1e-9);
    }

    #[test]
    fn a_ramp_sends_its_area_and_speeds_up() {
        let p = Profile::parse("ramp:0..100@10s", S).unwrap();
        let t: Vec<f64> = p.send_times().map(|d| d.as_secs_f64()).collect();
        assert_eq!(t.len(), 500);
        // Half the area of a linear ramp lies after 1/sqrt(2) of its length.
        assert!((t[250] - 10.0 / 2f64.sqrt()).abs() < 0.01, "{}", t[250]);
        assert!(t.windows(2).all(|w| w[1] >= w[0]));
        assert!(t[1] - t[0] > t[499] - t[498]);
        assert!((p.rate_at(Duration::from_secs(5)) - 50.0).abs() < 1e-9);
    }

    #[test]
    fn segments_join_and_a_bare_rate_takes_the_default_length() {
        let p = Profile::parse("ramp:0..10@2s+20", Duration::from_secs(3)).unwrap();
        assert_eq!(p.length(), Duration::from_secs(5));
        assert_eq!(p.send_times().count(), 70);
        assert_eq!(p.rate_at(Duration::from_secs(9)), 0.0);
    }

    #[test]
    fn bad_profiles_are_refused_with_the_reason() {
        for (spec, why) in [
            ("constant:100", "missing @DURATION"),
            ("constant:x@1s", "not a rate"),
            ("constant:10@1", "needs a unit"),
            ("wave:10@1s", "unknown segment"),
            ("ramp:10@1s", "FROM..TO"),
            ("constant:0@1s", "zero throughout"),
            ("constant:-5@1s", "between 0"),
            ("constant:5@0s", "above 0"),
        ] {
            let e = Profile::parse(spec, S).unwrap_err();
            assert!(e.contains(why), "{spec}: {e}");
        }
    }
}
