//! A request's budget as it travels in a header: read on the way in, written on the way
//! out.
//!
//! Three formats are in use between services, and a budget may arrive in any of them:
//!
//! | header | format | from |
//! |---|---|---|
//! | `grpc-timeout` | 1 to 8 ASCII digits, then a unit: `H` `M` `S` `m` `u` `n` | gRPC over HTTP/2 |
//! | `connect-timeout-ms` | 1 to 10 ASCII digits, milliseconds | the Connect protocol |
//! | `x-envoy-expected-rq-timeout-ms` | 1 to 10 ASCII digits, milliseconds | Envoy |
//!
//! A value is valid only if it is exactly that: no sign, no space, no other character, and
//! not zero (a budget is positive). Anything else is malformed, and a malformed header is
//! treated as absent by the layers, never as "no limit" and never as a panic.

use std::fmt;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

/// The most digits `grpc-timeout` allows.
const GRPC_DIGITS: usize = 8;
/// The most digits the millisecond headers allow (`connect-timeout-ms`' limit).
const MILLIS_DIGITS: usize = 10;
/// The largest value of eight digits.
const GRPC_MAX: u64 = 99_999_999;
/// The largest value of ten digits.
const MILLIS_MAX: u64 = 9_999_999_999;

/// The known headers' names, made once, at compile time: `HeaderName::from_static`
/// checks every byte when it runs, and [`BudgetHeader::known`] is asked per request.
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
const CONNECT_TIMEOUT_MS: HeaderName = HeaderName::from_static("connect-timeout-ms");
const ENVOY_EXPECTED_RQ_TIMEOUT_MS: HeaderName =
    HeaderName::from_static("x-envoy-expected-rq-timeout-ms");

/// A header a budget travels in, and its format.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hangfree::http::BudgetHeader;
/// use http::HeaderValue;
///
/// let grpc = BudgetHeader::grpc();
/// assert_eq!(grpc.name().as_str(), "grpc-timeout");
/// assert_eq!(grpc.parse(&HeaderValue::from_static("250m")).unwrap(), Duration::from_millis(250));
/// // Written with the finest unit that fits in eight digits, rounded down.
/// assert_eq!(grpc.encode(Duration::from_millis(1999)).unwrap(), "1999000u");
///
/// let connect = BudgetHeader::connect();
/// assert!(connect.parse(&HeaderValue::from_static("+5")).is_err());
/// assert_eq!(connect.encode(Duration::from_micros(2500)).unwrap(), "2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct BudgetHeader {
    name: HeaderName,
    format: Format,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    /// `grpc-timeout`: eight digits and a unit.
    Grpc,
    /// Whole milliseconds, up to ten digits.
    Millis,
}

impl BudgetHeader {
    /// `grpc-timeout`, in the gRPC over HTTP/2 format: at most 8 digits, then a unit.
    pub fn grpc() -> Self {
        BudgetHeader {
            name: GRPC_TIMEOUT,
            format: Format::Grpc,
        }
    }

    /// `connect-timeout-ms`, the Connect protocol's: whole milliseconds, at most 10 digits.
    pub fn connect() -> Self {
        BudgetHeader::millis(CONNECT_TIMEOUT_MS)
    }

    /// `x-envoy-expected-rq-timeout-ms`, which Envoy sets: whole milliseconds, read with
    /// the same rules as `connect-timeout-ms`.
    pub fn envoy() -> Self {
        BudgetHeader::millis(ENVOY_EXPECTED_RQ_TIMEOUT_MS)
    }

    /// A header of your own naming, in whole milliseconds (at most 10 digits).
    ///
    /// # Examples
    ///
    /// ```
    /// use hangfree::http::BudgetHeader;
    /// let header = BudgetHeader::millis(http::HeaderName::from_static("x-request-budget-ms"));
    /// assert_eq!(header.name().as_str(), "x-request-budget-ms");
    /// ```
    pub fn millis(name: HeaderName) -> Self {
        BudgetHeader {
            name,
            format: Format::Millis,
        }
    }

    /// The budget headers whose format is known without being told: `grpc-timeout`,
    /// `connect-timeout-ms`, `x-envoy-expected-rq-timeout-ms`. What `DeadlineLayer`
    /// reads by default, and what `PropagateLayer` holds to the budget it sends.
    pub(crate) fn known() -> [BudgetHeader; 3] {
        [
            BudgetHeader::grpc(),
            BudgetHeader::connect(),
            BudgetHeader::envoy(),
        ]
    }

    /// `budget` written in this format ([`encode`](Self::encode)), or, when nothing
    /// would be left once rounded down, the least the format can say (`1n`, `1`): for a
    /// header that must not be left promising more, since a zero budget is not a value.
    pub(crate) fn encode_or_least(&self, budget: Duration) -> HeaderValue {
        self.encode(budget).unwrap_or_else(|| {
            HeaderValue::from_static(match self.format {
                Format::Grpc => "1n",
                Format::Millis => "1",
            })
        })
    }

    /// The header's name.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// Reads a budget from `value`, or says why it is malformed.
    ///
    /// # Errors
    ///
    /// [`MalformedBudget`] when the value is empty, has more digits than the format
    /// allows, has an unknown unit, has any character that is not an ASCII digit (a `+`
    /// included) where digits belong, or is zero.
    pub fn parse(&self, value: &HeaderValue) -> Result<Duration, MalformedBudget> {
        let bytes = value.as_bytes();
        let malformed = |why| MalformedBudget::new(&self.name, value, why);
        match self.format {
            Format::Grpc => {
                let Some((&unit, digits)) = bytes.split_last() else {
                    return Err(malformed(Why::Empty));
                };
                let count = digits_value(digits, GRPC_DIGITS).map_err(malformed)?;
                // At most 99,999,999 hours: far inside `Duration`, no overflow.
                match unit {
                    b'H' => Ok(Duration::from_secs(count * 3600)),
                    b'M' => Ok(Duration::from_secs(count * 60)),
                    b'S' => Ok(Duration::from_secs(count)),
                    b'm' => Ok(Duration::from_millis(count)),
                    b'u' => Ok(Duration::from_micros(count)),
                    b'n' => Ok(Duration::from_nanos(count)),
                    other if other.is_ascii_digit() => Err(malformed(Why::NoUnit)),
                    _ => Err(malformed(Why::UnknownUnit)),
                }
            }
            Format::Millis => {
                let count = digits_value(bytes, MILLIS_DIGITS).map_err(malformed)?;
                Ok(Duration::from_millis(count))
            }
        }
    }

    /// Writes `budget` in this header's format, rounded down, never up: a service that
    /// receives it never believes it has more time than it has.
    ///
    /// `grpc-timeout` uses the finest unit whose count fits in eight digits (nanoseconds
    /// up to 99,999,999 ns, then microseconds, and so on up to hours); a budget beyond
    /// 99,999,999 hours is written as that. The millisecond formats write whole
    /// milliseconds, at most ten digits.
    ///
    /// Returns `None` when nothing would be left once rounded down (below 1 ns for gRPC,
    /// below 1 ms for the millisecond formats): a zero budget is not a valid value.
    pub fn encode(&self, budget: Duration) -> Option<HeaderValue> {
        // Written by hand into a buffer on the stack: `format!` is most of what a
        // propagated request costs otherwise.
        let mut text = Digits::default();
        match self.format {
            Format::Grpc => {
                let nanos = budget.as_nanos();
                // The finest unit whose count fits in 8 digits, rounded down.
                let units: [(u64, u8); 6] = [
                    (1, b'n'),
                    (1_000, b'u'),
                    (1_000_000, b'm'),
                    (1_000_000_000, b'S'),
                    (60_000_000_000, b'M'),
                    (3_600_000_000_000, b'H'),
                ];
                let fits = |per: u64| nanos < u128::from(GRPC_MAX + 1) * u128::from(per);
                let (count, unit) = match units.iter().find(|&&(per, _)| fits(per)) {
                    // Below 10^8 of the unit: the quotient fits in a `u64`.
                    Some(&(per, unit)) => ((nanos / u128::from(per)) as u64, unit),
                    None => (GRPC_MAX, b'H'),
                };
                if count == 0 {
                    return None;
                }
                text.number(count);
                text.push(unit);
            }
            Format::Millis => {
                let millis = budget.as_millis().min(u128::from(MILLIS_MAX)) as u64;
                if millis == 0 {
                    return None;
                }
                text.number(millis);
            }
        }
        // Digits and a unit letter: always a valid header value.
        HeaderValue::from_bytes(text.as_bytes()).ok()
    }
}

/// A budget's text: at most 10 digits and a unit letter.
#[derive(Default)]
struct Digits {
    bytes: [u8; 11],
    len: usize,
}

impl Digits {
    /// Appends `n` in decimal (`n` has at most 10 digits).
    fn number(&mut self, mut n: u64) {
        let start = self.len;
        loop {
            self.push(b'0' + (n % 10) as u8);
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.bytes[start..self.len].reverse();
    }

    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The value of 1 to `max` ASCII digits, positive.
fn digits_value(digits: &[u8], max: usize) -> Result<u64, Why> {
    if digits.is_empty() {
        return Err(Why::Empty);
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(Why::NotDigits);
    }
    if digits.len() > max {
        return Err(Why::TooManyDigits(max));
    }
    let value = digits
        .iter()
        .fold(0u64, |value, &digit| value * 10 + u64::from(digit - b'0'));
    if value == 0 {
        return Err(Why::Zero);
    }
    Ok(value)
}

impl fmt::Debug for BudgetHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BudgetHeader")
            .field("name", &self.name)
            .field("format", &self.format)
            .finish()
    }
}

/// A budget header whose value is not valid in its format; see [`BudgetHeader::parse`].
///
/// Its `Display` names the header, the value and what is wrong with it:
/// `malformed grpc-timeout header "5x": unknown unit`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {header} header {value:?}: {why}")]
pub struct MalformedBudget {
    header: HeaderName,
    /// The value as text (lossy), shortened if long.
    value: String,
    why: Why,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Empty,
    NoUnit,
    UnknownUnit,
    NotDigits,
    TooManyDigits(usize),
    Zero,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Empty => f.write_str("empty"),
            Why::NoUnit => f.write_str("no unit"),
            Why::UnknownUnit => f.write_str("unknown unit"),
            Why::NotDigits => f.write_str("not a whole number of ASCII digits"),
            Why::TooManyDigits(max) => write!(f, "more than {max} digits"),
            Why::Zero => f.write_str("zero is not a budget"),
        }
    }
}

/// How much of a malformed value an error keeps.
const KEEP_CHARS: usize = 32;

impl MalformedBudget {
    fn new(header: &HeaderName, value: &HeaderValue, why: Why) -> Self {
        let text = String::from_utf8_lossy(value.as_bytes());
        let value = match text.char_indices().nth(KEEP_CHARS) {
            Some((cut, _)) => format!("{}...", &text[..cut]),
            None => text.into_owned(),
        };
        MalformedBudget {
            header: header.clone(),
            value,
            why,
        }
    }

    /// The header whose value is malformed.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(header: &BudgetHeader, value: &'static str) -> Result<Duration, MalformedBudget> {
        header.parse(&HeaderValue::from_static(value))
    }

    fn why(header: &BudgetHeader, value: &'static str) -> String {
        parse(header, value).unwrap_err().to_string()
    }

    #[test]
    fn grpc_timeout_reads_every_unit() {
        let grpc = BudgetHeader::grpc();
        assert_eq!(parse(&grpc, "2H").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse(&grpc, "3M").unwrap(), Duration::from_secs(180));
        assert_eq!(parse(&grpc, "4S").unwrap(), Duration::from_secs(4));
        assert_eq!(parse(&grpc, "250m").unwrap(), Duration::from_millis(250));
        assert_eq!(parse(&grpc, "7u").unwrap(), Duration::from_micros(7));
        assert_eq!(parse(&grpc, "9n").unwrap(), Duration::from_nanos(9));
        assert_eq!(parse(&grpc, "00000001S").unwrap(), Duration::from_secs(1));
    }

    #[test]
    fn grpc_timeout_allows_eight_digits_and_no_more() {
        let grpc = BudgetHeader::grpc();
        assert_eq!(
            parse(&grpc, "99999999H").unwrap(),
            Duration::from_secs(99_999_999 * 3600)
        );
        assert_eq!(
            why(&grpc, "123456789m"),
            r#"malformed grpc-timeout header "123456789m": more than 8 digits"#
        );
    }

    #[test]
    fn grpc_timeout_rejects_every_malformed_shape() {
        let grpc = BudgetHeader::grpc();
        assert_eq!(why(&grpc, ""), r#"malformed grpc-timeout header "": empty"#);
        assert_eq!(
            why(&grpc, "S"),
            r#"malformed grpc-timeout header "S": empty"#
        );
        assert_eq!(
            why(&grpc, "5x"),
            r#"malformed grpc-timeout header "5x": unknown unit"#
        );
        assert_eq!(
            why(&grpc, "5s"),
            r#"malformed grpc-timeout header "5s": unknown unit"#
        );
        assert_eq!(
            why(&grpc, "500"),
            r#"malformed grpc-timeout header "500": no unit"#
        );
        assert_eq!(
            why(&grpc, "+5S"),
            r#"malformed grpc-timeout header "+5S": not a whole number of ASCII digits"#
        );
        assert_eq!(
            why(&grpc, "-5S"),
            r#"malformed grpc-timeout header "-5S": not a whole number of ASCII digits"#
        );
        assert_eq!(
            why(&grpc, " 5S"),
            r#"malformed grpc-timeout header " 5S": not a whole number of ASCII digits"#
        );
        assert_eq!(
            why(&grpc, "1.5S"),
            r#"malformed grpc-timeout header "1.5S": not a whole number of ASCII digits"#
        );
        assert_eq!(
            why(&grpc, "0m"),
            r#"malformed grpc-timeout header "0m": zero is not a budget"#
        );
        assert_eq!(
            why(&grpc, "00000000H"),
            r#"malformed grpc-timeout header "00000000H": zero is not a budget"#
        );
    }

    #[test]
    fn millisecond_headers_allow_ten_digits_and_reject_the_rest() {
        for header in [BudgetHeader::connect(), BudgetHeader::envoy()] {
            let name = header.name().as_str().to_owned();
            assert_eq!(parse(&header, "1500").unwrap(), Duration::from_millis(1500));
            assert_eq!(
                parse(&header, "9999999999").unwrap(),
                Duration::from_millis(9_999_999_999)
            );
            assert_eq!(
                why(&header, "12345678901"),
                format!(r#"malformed {name} header "12345678901": more than 10 digits"#)
            );
            assert_eq!(
                why(&header, ""),
                format!(r#"malformed {name} header "": empty"#)
            );
            assert_eq!(
                why(&header, "0"),
                format!(r#"malformed {name} header "0": zero is not a budget"#)
            );
            for bad in ["+5", "-5", "5ms", "5 ", "0x10", "1e3"] {
                assert_eq!(
                    why(&header, bad),
                    format!(
                        r#"malformed {name} header "{bad}": not a whole number of ASCII digits"#
                    )
                );
            }
        }
    }

    #[test]
    fn a_long_malformed_value_is_shortened_in_the_error() {
        let value = HeaderValue::from_str(&"9".repeat(200)).unwrap();
        let err = BudgetHeader::connect().parse(&value).unwrap_err();
        assert_eq!(err.header().as_str(), "connect-timeout-ms");
        assert_eq!(
            err.to_string(),
            format!(
                r#"malformed connect-timeout-ms header "{}...": more than 10 digits"#,
                "9".repeat(32)
            )
        );
    }

    #[test]
    fn a_value_that_is_not_text_is_malformed_not_a_panic() {
        let value = HeaderValue::from_bytes(b"5\xffS").unwrap();
        let err = BudgetHeader::grpc().parse(&value).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("not a whole number of ASCII digits"),
            "{err}"
        );
    }

    fn encode(header: &BudgetHeader, budget: Duration) -> Option<String> {
        header
            .encode(budget)
            .map(|value| value.to_str().unwrap().to_owned())
    }

    #[test]
    fn grpc_timeout_is_written_with_the_finest_unit_that_fits_rounded_down() {
        let grpc = BudgetHeader::grpc();
        let cases = [
            (Duration::from_nanos(1), "1n"),
            (Duration::from_nanos(99_999_999), "99999999n"),
            (Duration::from_nanos(100_000_000), "100000u"),
            (Duration::from_nanos(100_000_999), "100000u"),
            (Duration::from_millis(1999), "1999000u"),
            (Duration::from_secs(2), "2000000u"),
            (Duration::from_micros(99_999_999), "99999999u"),
            (Duration::from_micros(100_000_001), "100000m"),
            (Duration::from_secs(99_999), "99999000m"),
            (Duration::from_secs(100_000), "100000S"),
            (Duration::from_secs(99_999_999), "99999999S"),
            (Duration::from_secs(100_000_000), "1666666M"),
            (Duration::from_secs(99_999_999 * 60 + 59), "99999999M"),
            (Duration::from_secs(100_000_000 * 60), "1666666H"),
            (Duration::MAX, "99999999H"),
        ];
        for (budget, written) in cases {
            assert_eq!(
                encode(&grpc, budget).as_deref(),
                Some(written),
                "{budget:?}"
            );
            // What is written never exceeds what was left.
            let read = grpc.parse(&grpc.encode(budget).unwrap()).unwrap();
            assert!(read <= budget, "{budget:?} written as {written}");
        }
        assert_eq!(encode(&grpc, Duration::ZERO), None);
    }

    #[test]
    fn millisecond_headers_are_written_in_whole_milliseconds_rounded_down() {
        let connect = BudgetHeader::connect();
        assert_eq!(
            encode(&connect, Duration::from_micros(1999)).as_deref(),
            Some("1")
        );
        assert_eq!(
            encode(&connect, Duration::from_secs(2)).as_deref(),
            Some("2000")
        );
        assert_eq!(
            encode(&connect, Duration::MAX).as_deref(),
            Some("9999999999")
        );
        assert_eq!(encode(&connect, Duration::from_micros(999)), None);
        assert_eq!(encode(&connect, Duration::ZERO), None);
    }

    #[test]
    fn every_written_budget_reads_back_as_at_most_itself_and_less_than_one_unit_short_unless_capped()
     {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for header in [BudgetHeader::grpc(), BudgetHeader::connect()] {
            for _ in 0..20_000 {
                // xorshift: budgets spread over every unit, from nanoseconds to years.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let budget = Duration::from_nanos(x >> (x % 50));
                let Some(value) = header.encode(budget) else {
                    continue;
                };
                let read = header.parse(&value).expect("what is written parses");
                assert!(read <= budget, "{budget:?} written as {value:?}");
                let text = value.to_str().unwrap();
                let unit = match text.as_bytes()[text.len() - 1] {
                    b'n' => Duration::from_nanos(1),
                    b'u' => Duration::from_micros(1),
                    b'm' => Duration::from_millis(1),
                    b'S' => Duration::from_secs(1),
                    b'M' => Duration::from_secs(60),
                    b'H' => Duration::from_secs(3600),
                    _ => Duration::from_millis(1),
                };
                let capped = text == "99999999H" || text == "9999999999";
                assert!(
                    capped || budget - read < unit,
                    "{budget:?} written as {value:?}"
                );
            }
        }
    }
}
