//! Weighted canaries: during a canary phase whose route carries a weight, each request goes to
//! the canary's backends or to the stable version's, the canary's side taking the weight's
//! share of the requests whatever the number of backends on each side; within a side the
//! backends take turns as usual.
//!
//! The draw is a counter, not a random number: request N of a route goes to the canary when
//! the fractional part of N times the golden ratio is below the weight (a Weyl sequence). The
//! share is then exact to a few requests over any stretch of requests, where a coin would stray
//! by a few percent over a few thousand, and the canary's requests are spread out rather than
//! every tenth, so a client that sends requests in a fixed pattern does not always send the
//! same one to the canary.
//!
//! A request can choose its side: `X-Coding-Job-Canary: always` (or the cookie
//! `coding-job-canary=always`) sends it to the canary, `never` to the stable version; any other
//! value is ignored, and the header goes on to the backend, as NGINX's canary-by-header does.

use std::sync::atomic::{AtomicU64, Ordering};

use cj_api::routes::{CANARY_COOKIE, CANARY_HEADER};
use hyper::header::{self, HeaderMap};

/// Basis points in a whole: a weight of 10000 sends every request to the canary.
pub(crate) const WHOLE_BP: u32 = 10_000;

/// 2^64 divided by the golden ratio: the step of the Weyl sequence.
const GOLDEN_STEP: u64 = 0x9E37_79B9_7F4A_7C15;

/// The side of a weighted route a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Canary,
    Stable,
}

impl Side {
    pub(crate) fn other(self) -> Side {
        match self {
            Side::Canary => Side::Stable,
            Side::Stable => Side::Canary,
        }
    }
}

/// A route's backends by side, when it has a weight and backends on both sides.
#[derive(Debug)]
pub(crate) struct Split {
    /// The canary's share of the requests, in basis points (at most [`WHOLE_BP`]).
    pub(crate) weight_bp: u32,
    /// Indexes into the route's backends.
    pub(crate) canary: Vec<usize>,
    pub(crate) stable: Vec<usize>,
}

impl Split {
    /// The split of backends whose `canary` marks are `marks`, under `weight_bp`; `None` when
    /// there is no weight or a side is empty (then every request goes to the backends there are).
    pub(crate) fn new(weight_bp: Option<u32>, marks: impl Iterator<Item = bool>) -> Option<Split> {
        let weight_bp = weight_bp?.min(WHOLE_BP);
        let (mut canary, mut stable) = (Vec::new(), Vec::new());
        for (index, is_canary) in marks.enumerate() {
            match is_canary {
                true => canary.push(index),
                false => stable.push(index),
            }
        }
        (!canary.is_empty() && !stable.is_empty()).then_some(Split {
            weight_bp,
            canary,
            stable,
        })
    }

    pub(crate) fn members(&self, side: Side) -> &[usize] {
        match side {
            Side::Canary => &self.canary,
            Side::Stable => &self.stable,
        }
    }
}

/// Draw number `draws` (taken from a counter) under `weight_bp`: the canary for the weight's
/// share of consecutive draws.
pub(crate) fn draw(draws: &AtomicU64, weight_bp: u32) -> Side {
    let draw = draws.fetch_add(1, Ordering::Relaxed);
    // The fraction of a whole, in 32 bits, scaled to basis points.
    let fraction = draw.wrapping_mul(GOLDEN_STEP) >> 32;
    let point = (fraction * u64::from(WHOLE_BP)) >> 32;
    if point < u64::from(weight_bp) {
        Side::Canary
    } else {
        Side::Stable
    }
}

/// The side the request asks for with the header, else the cookie; `None` when it asks for
/// neither in words this router knows.
pub(crate) fn asked(headers: &HeaderMap) -> Option<Side> {
    let from_header = headers
        .get_all(CANARY_HEADER)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(side_named);
    from_header.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == CANARY_COOKIE)
            .find_map(|(_, value)| side_named(value))
    })
}

fn side_named(value: &str) -> Option<Side> {
    let value = value.trim().trim_matches('"');
    if value.eq_ignore_ascii_case("always") {
        Some(Side::Canary)
    } else if value.eq_ignore_ascii_case("never") {
        Some(Side::Stable)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::{HeaderName, HeaderValue};

    use super::*;

    fn share(weight_bp: u32, requests: u64) -> u64 {
        let draws = AtomicU64::new(0);
        (0..requests)
            .filter(|_| draw(&draws, weight_bp) == Side::Canary)
            .count() as u64
    }

    #[test]
    fn the_canary_gets_its_share_of_any_stretch_of_requests() {
        assert_eq!(share(0, 1000), 0);
        assert_eq!(share(WHOLE_BP, 1000), 1000);
        for (weight_bp, requests) in [(1000, 2000), (1000, 100), (500, 2000), (3333, 999)] {
            let expected = requests * u64::from(weight_bp) / u64::from(WHOLE_BP);
            let got = share(weight_bp, requests);
            assert!(
                got.abs_diff(expected) <= 2,
                "{weight_bp} bp of {requests}: {got}"
            );
        }
        // Not every tenth request: a client's fixed pattern does not pick the canary's requests.
        let draws = AtomicU64::new(0);
        let positions: Vec<u64> = (0..100u64)
            .filter(|_| draw(&draws, 1000) == Side::Canary)
            .collect();
        let gaps: std::collections::BTreeSet<u64> =
            positions.windows(2).map(|pair| pair[1] - pair[0]).collect();
        assert!(gaps.len() > 1, "{positions:?}");
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn the_header_then_the_cookie_choose_a_side() {
        let check = |pairs: &[(&str, &str)], expected: Option<Side>| {
            assert_eq!(asked(&headers(pairs)), expected, "{pairs:?}");
        };
        check(&[], None);
        check(&[("x-coding-job-canary", "always")], Some(Side::Canary));
        check(&[("X-Coding-Job-Canary", "Never")], Some(Side::Stable));
        check(&[("x-coding-job-canary", "sometimes")], None);
        check(
            &[("cookie", "a=1; coding-job-canary=always")],
            Some(Side::Canary),
        );
        check(
            &[("cookie", "coding-job-canary=\"never\"")],
            Some(Side::Stable),
        );
        check(&[("cookie", "not-coding-job-canary=always")], None);
        check(
            &[
                ("x-coding-job-canary", "never"),
                ("cookie", "coding-job-canary=always"),
            ],
            Some(Side::Stable),
        );
        // An unknown header value leaves the choice to the cookie.
        check(
            &[
                ("x-coding-job-canary", "maybe"),
                ("cookie", "coding-job-canary=always"),
            ],
            Some(Side::Canary),
        );
    }

    #[test]
    fn a_split_needs_a_weight_and_both_sides() {
        let marks = [true, false, false];
        let split = Split::new(Some(1000), marks.into_iter()).unwrap();
        assert_eq!(
            (split.canary.as_slice(), split.stable.as_slice()),
            (&[0][..], &[1, 2][..])
        );
        assert!(Split::new(None, marks.into_iter()).is_none());
        assert!(Split::new(Some(1000), [false, false].into_iter()).is_none());
        assert!(Split::new(Some(1000), [true].into_iter()).is_none());
        assert_eq!(
            Split::new(Some(20_000), marks.into_iter())
                .unwrap()
                .weight_bp,
            WHOLE_BP
        );
    }
}
