//! Version requirements as POMs write them: a plain version (`1.2`, a soft requirement) or one
//! or more ranges (`[1.0,2.0)`, `(,1.0]`, `[1.5]`, `[1.0,1.2],[1.5,)`).
//!
//! Containment takes the comparison as a parameter: Maven compares with its generic scheme,
//! Ivy (spark-submit) with its own (see [`crate::version`]).

use std::cmp::Ordering;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub version: String,
    pub inclusive: bool,
}

/// One range; `None` bounds are open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub lower: Option<Bound>,
    pub upper: Option<Bound>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A plain version: preferred, not enforced.
    Soft(String),
    /// The union of ranges.
    Ranges(Vec<Range>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a version or a version range: {why}")]
pub struct RangeError {
    pub input: String,
    pub why: &'static str,
}

impl Range {
    pub fn contains(&self, version: &str, cmp: impl Fn(&str, &str) -> Ordering) -> bool {
        let above = self
            .lower
            .as_ref()
            .is_none_or(|b| match cmp(version, &b.version) {
                Ordering::Greater => true,
                Ordering::Equal => b.inclusive,
                Ordering::Less => false,
            });
        let below = self
            .upper
            .as_ref()
            .is_none_or(|b| match cmp(version, &b.version) {
                Ordering::Less => true,
                Ordering::Equal => b.inclusive,
                Ordering::Greater => false,
            });
        above && below
    }
}

impl Requirement {
    pub fn parse(input: &str) -> Result<Self, RangeError> {
        let text = input.trim();
        let error = |why| RangeError {
            input: input.to_owned(),
            why,
        };
        if text.is_empty() {
            return Err(error("it is empty"));
        }
        if !text.starts_with(['[', '(']) {
            if text.contains(['[', ']', '(', ')', ',']) {
                return Err(error("a range starts with '[' or '('"));
            }
            return Ok(Self::Soft(text.to_owned()));
        }
        let mut ranges = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let open = rest.chars().next().unwrap_or('[');
            if open != '[' && open != '(' {
                return Err(error("ranges are separated by ','"));
            }
            let close = rest
                .find([']', ')'])
                .ok_or_else(|| error("a range is not closed"))?;
            let inner = &rest[1..close];
            let close_char = rest[close..].chars().next().unwrap_or(']');
            let (lower_inclusive, upper_inclusive) = (open == '[', close_char == ']');
            let range = match inner.split_once(',') {
                None => {
                    let v = inner.trim();
                    if v.is_empty() || !lower_inclusive || !upper_inclusive {
                        return Err(error("a single-version range is written [version]"));
                    }
                    let bound = Bound {
                        version: v.to_owned(),
                        inclusive: true,
                    };
                    Range {
                        lower: Some(bound.clone()),
                        upper: Some(bound),
                    }
                }
                Some((lo, hi)) => {
                    if hi.contains(',') {
                        return Err(error("a range has two bounds"));
                    }
                    let bound = |v: &str, inclusive: bool| {
                        let v = v.trim();
                        (!v.is_empty()).then(|| Bound {
                            version: v.to_owned(),
                            inclusive,
                        })
                    };
                    Range {
                        lower: bound(lo, lower_inclusive),
                        upper: bound(hi, upper_inclusive),
                    }
                }
            };
            ranges.push(range);
            rest = rest[close + 1..].trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r.trim_start();
                if rest.is_empty() {
                    return Err(error("a ',' with no range after it"));
                }
            } else if !rest.is_empty() {
                return Err(error("ranges are separated by ','"));
            }
        }
        Ok(Self::Ranges(ranges))
    }

    /// Whether `version` satisfies the requirement (a soft one accepts any version).
    pub fn accepts(&self, version: &str, cmp: impl Fn(&str, &str) -> Ordering + Copy) -> bool {
        match self {
            Self::Soft(_) => true,
            Self::Ranges(ranges) => ranges.iter().any(|r| r.contains(version, cmp)),
        }
    }

    /// The newest of `available` that satisfies the requirement; of equal versions (`1.0` and
    /// `1.0.0` in Maven's order), the first listed, as Maven Resolver keeps it.
    pub fn newest<'a>(
        &self,
        available: impl IntoIterator<Item = &'a str>,
        cmp: impl Fn(&str, &str) -> Ordering + Copy,
    ) -> Option<&'a str> {
        available
            .into_iter()
            .filter(|v| self.accepts(v, cmp))
            .fold(None, |best, v| match best {
                Some(b) if cmp(v, b) != Ordering::Greater => Some(b),
                _ => Some(v),
            })
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Soft(v) => f.write_str(v),
            Self::Ranges(ranges) => {
                for (i, r) in ranges.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    let lo = r.lower.as_ref();
                    let hi = r.upper.as_ref();
                    if let (Some(l), Some(h)) = (lo, hi)
                        && l == h
                    {
                        write!(f, "[{}]", l.version)?;
                        continue;
                    }
                    write!(
                        f,
                        "{}{},{}{}",
                        if lo.is_some_and(|b| b.inclusive) {
                            '['
                        } else {
                            '('
                        },
                        lo.map(|b| b.version.as_str()).unwrap_or(""),
                        hi.map(|b| b.version.as_str()).unwrap_or(""),
                        if hi.is_some_and(|b| b.inclusive) {
                            ']'
                        } else {
                            ')'
                        },
                    )?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::{MavenVersion, ivy_compare};

    fn maven(a: &str, b: &str) -> Ordering {
        MavenVersion::parse(a).cmp(&MavenVersion::parse(b))
    }

    #[test]
    fn forms() {
        assert_eq!(
            Requirement::parse("1.2"),
            Ok(Requirement::Soft("1.2".into()))
        );
        for text in ["[1.0,2.0)", "(,1.0]", "[1.5]", "[1.0,1.2],[1.5,)", "(1.0,)"] {
            let r = Requirement::parse(text).expect(text);
            assert_eq!(r.to_string(), text);
        }
        for bad in [
            "", "[1.0", "[1.0,2.0", "(1.0)", "[1,2,3]", "[1.0],", "[1.0]x", "1.0,2.0",
        ] {
            assert!(Requirement::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn containment_and_newest() {
        let r = Requirement::parse("[1.0,2.0)").expect("range");
        assert!(r.accepts("1.0", maven));
        assert!(r.accepts("1.9.9", maven));
        assert!(!r.accepts("2.0", maven));
        assert!(
            r.accepts("2.0-SNAPSHOT", maven),
            "Maven orders 2.0-SNAPSHOT before 2.0"
        );
        let available = ["0.9", "1.0", "1.5", "2.0", "1.10", "3.0"];
        assert_eq!(r.newest(available, maven), Some("1.10"));
        let union = Requirement::parse("[1.0,1.2],[2.5,)").expect("union");
        assert_eq!(union.newest(available, maven), Some("3.0"));
        assert_eq!(union.newest(["1.5", "2.0"], maven), None);
        let exact = Requirement::parse("[1.5]").expect("exact");
        assert_eq!(exact.newest(available, ivy_compare), Some("1.5"));
    }
}
