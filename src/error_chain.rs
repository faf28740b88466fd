//! Finding one of the crate's errors anywhere in an error chain.
//!
//! [`Error::source`] walks a chain one level at a time, but an [`io::Error`]
//! made with `io::Error::new(kind, payload)` answers `source()` with the
//! *payload's* source: the payload itself is skipped. A `Stalled` or an
//! `Interrupted` turned into an `io::Error` (an `IoWatchdog` always does
//! that) is therefore invisible to a plain walk of `source()`, and so to
//! anyhow's `chain()` and `downcast_ref`. [`find`] looks at every level and,
//! at an `io::Error`, inside its payload too (which may itself be an
//! `io::Error` with a payload).

use std::error::Error;
use std::io;

/// The most levels and payloads looked at. A real chain has a handful; a
/// chain whose `source()` loops back on itself (an error sharing an `Arc`
/// with its own cause) would otherwise be walked for ever.
const MAX_STEPS: usize = 1024;

/// The first `T` in `error`'s chain: `error` itself, then each `source()`,
/// looking inside the payload of every `io::Error` on the way.
pub(crate) fn find<'a, T: Error + 'static>(error: &'a (dyn Error + 'static)) -> Option<&'a T> {
    let mut steps = 0;
    let mut level = Some(error);
    while let Some(current) = level {
        let mut inner = current;
        loop {
            if let Some(found) = inner.downcast_ref::<T>() {
                return Some(found);
            }
            steps += 1;
            if steps >= MAX_STEPS {
                return None;
            }
            match inner
                .downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
            {
                Some(payload) => inner = payload,
                None => break,
            }
        }
        // For an `io::Error` this is its payload's source: the levels below
        // the payload searched above.
        level = current.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    #[derive(Debug, PartialEq)]
    struct Wanted(u32);

    impl fmt::Display for Wanted {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "wanted {}", self.0)
        }
    }

    impl Error for Wanted {}

    /// An error with a cause, as `thiserror`'s `#[source]` makes one.
    #[derive(Debug)]
    struct Context(Box<dyn Error + Send + Sync>);

    impl fmt::Display for Context {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("while doing something")
        }
    }

    impl Error for Context {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.0)
        }
    }

    fn in_io(error: impl Into<Box<dyn Error + Send + Sync>>) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, error)
    }

    #[test]
    fn the_error_itself_is_found() {
        assert_eq!(find::<Wanted>(&Wanted(1)), Some(&Wanted(1)));
    }

    #[test]
    fn a_payload_of_an_io_error_is_found_where_source_skips_it() {
        let err = in_io(Wanted(2));
        assert!(
            err.source().is_none(),
            "io::Error::source skips its payload"
        );
        assert_eq!(find::<Wanted>(&err), Some(&Wanted(2)));
    }

    #[test]
    fn a_payload_is_found_at_any_level_and_under_nested_io_errors() {
        let err = Context(Box::new(in_io(in_io(Wanted(3)))));
        assert_eq!(find::<Wanted>(&err), Some(&Wanted(3)));
    }

    #[test]
    fn the_levels_below_a_payload_are_searched() {
        let err = in_io(Context(Box::new(Wanted(4))));
        assert_eq!(find::<Wanted>(&err), Some(&Wanted(4)));
    }

    #[test]
    fn a_chain_without_it_finds_nothing() {
        let err = Context(Box::new(in_io("a plain message")));
        assert_eq!(find::<Wanted>(&err), None);
        assert_eq!(
            find::<Wanted>(&io::Error::from(io::ErrorKind::TimedOut)),
            None
        );
    }

    /// An error whose source is itself: the walk stops.
    #[derive(Debug)]
    struct Loop;

    impl fmt::Display for Loop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("loop")
        }
    }

    impl Error for Loop {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&Loop)
        }
    }

    #[test]
    fn a_chain_that_loops_is_not_walked_for_ever() {
        assert_eq!(find::<Wanted>(&Loop), None);
    }
}
