//! Durations written for operators: limits as the reader configured them
//! ("900s", "300ms"), elapsed times broken into units ("14m3s").

use std::fmt;
use std::time::Duration;

/// A configured limit: whole seconds as `900s`, fractions as `1.5s`, and
/// anything under a second in milliseconds (`300ms`) or microseconds.
pub(crate) struct Limit(pub(crate) Duration);

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            f.write_str("0s")
        } else if d >= Duration::from_secs(1) {
            let millis = d.subsec_millis();
            if millis == 0 {
                write!(f, "{}s", d.as_secs())
            } else {
                let frac = format!("{millis:03}");
                write!(f, "{}.{}s", d.as_secs(), frac.trim_end_matches('0'))
            }
        } else if d >= Duration::from_millis(1) {
            write!(f, "{}ms", d.as_millis())
        } else {
            write!(f, "{}µs", d.as_micros())
        }
    }
}

/// An elapsed time: `2h5m0s`, `14m3s`, `3.2s`, `450ms`.
pub(crate) struct Elapsed(pub(crate) Duration);

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let secs = d.as_secs();
        if secs >= 3600 {
            write!(f, "{}h{}m{}s", secs / 3600, secs % 3600 / 60, secs % 60)
        } else if secs >= 60 {
            write!(f, "{}m{}s", secs / 60, secs % 60)
        } else if secs >= 1 {
            let tenths = d.subsec_millis() / 100;
            if tenths == 0 {
                write!(f, "{secs}s")
            } else {
                write!(f, "{secs}.{tenths}s")
            }
        } else {
            Limit(d).fmt(f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_as_configured() {
        assert_eq!(Limit(Duration::from_secs(900)).to_string(), "900s");
        assert_eq!(Limit(Duration::from_millis(1500)).to_string(), "1.5s");
        assert_eq!(Limit(Duration::from_millis(1250)).to_string(), "1.25s");
        assert_eq!(Limit(Duration::from_millis(300)).to_string(), "300ms");
        assert_eq!(Limit(Duration::from_micros(20)).to_string(), "20µs");
        assert_eq!(Limit(Duration::ZERO).to_string(), "0s");
        assert_eq!(Elapsed(Duration::ZERO).to_string(), "0s");
    }

    #[test]
    fn elapsed_is_broken_into_units() {
        assert_eq!(Elapsed(Duration::from_secs(843)).to_string(), "14m3s");
        assert_eq!(Elapsed(Duration::from_secs(7500)).to_string(), "2h5m0s");
        assert_eq!(Elapsed(Duration::from_millis(3250)).to_string(), "3.2s");
        assert_eq!(Elapsed(Duration::from_secs(60)).to_string(), "1m0s");
        assert_eq!(Elapsed(Duration::from_millis(450)).to_string(), "450ms");
    }
}
