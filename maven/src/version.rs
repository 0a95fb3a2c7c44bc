//! Version ordering, two ways:
//! - [`MavenVersion`]: Maven Resolver's generic version scheme (`GenericVersion`), which Maven
//!   uses to compare versions, pick the newest in a range and mediate conflicts;
//! - [`ivy_compare`]: Apache Ivy's `LatestRevisionStrategy` comparison with its default special
//!   meanings (`dev` < other words < `rc` < `final`), which the `latest-revision` conflict
//!   manager of `spark-submit --packages` uses.
//!
//! Both are checked against the real implementations (Debian's `maven-resolver-util` and the Ivy
//! jar of the `pyspark` wheel) by `tests/versions.rs`.

use std::cmp::Ordering;
use std::fmt;

/// One item of a Maven version; the kinds are ordered as Maven orders them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Min,
    /// A qualifier with its rank: alpha -5, beta -4, milestone -3, rc/cr -2, snapshot -1,
    /// ga/final/release/"" 0, sp 1.
    Qualifier(i32),
    /// Any other word, lowercase.
    Word(String),
    /// A number without leading zeros, compared by length then digits (arbitrary size).
    Number(String),
    Max,
}

impl Item {
    fn kind(&self) -> i32 {
        match self {
            Item::Min => 0,
            Item::Qualifier(_) => 2,
            Item::Word(_) => 3,
            Item::Number(n) if n.len() < 10 => 4,
            Item::Number(_) => 5,
            Item::Max => 8,
        }
    }

    fn is_number(&self) -> bool {
        matches!(self, Item::Min | Item::Number(_) | Item::Max)
    }

    /// Compared with the padding item (`0` or `ga`) when `other` is `None`.
    fn compare(&self, other: Option<&Item>) -> Ordering {
        let Some(other) = other else {
            return match self {
                Item::Min => Ordering::Less,
                Item::Max | Item::Word(_) => Ordering::Greater,
                Item::Number(n) if n.len() >= 10 => Ordering::Greater,
                Item::Number(n) => {
                    if n.is_empty() || n == "0" {
                        Ordering::Equal
                    } else {
                        Ordering::Greater
                    }
                }
                Item::Qualifier(q) => q.cmp(&0),
            };
        };
        match self.kind().cmp(&other.kind()) {
            Ordering::Equal => {}
            different => return different,
        }
        match (self, other) {
            (Item::Number(a), Item::Number(b)) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
            (Item::Word(a), Item::Word(b)) => a.cmp(b),
            (Item::Qualifier(a), Item::Qualifier(b)) => a.cmp(b),
            _ => Ordering::Equal,
        }
    }
}

fn qualifier(word: &str) -> Option<i32> {
    Some(match word.to_ascii_lowercase().as_str() {
        "alpha" => -5,
        "beta" => -4,
        "milestone" => -3,
        "cr" | "rc" => -2,
        "snapshot" => -1,
        "ga" | "final" | "release" | "" => 0,
        "sp" => 1,
        _ => return None,
    })
}

/// A version under Maven's generic scheme.
#[derive(Debug, Clone)]
pub struct MavenVersion {
    text: String,
    items: Vec<Item>,
}

impl MavenVersion {
    pub fn parse(text: &str) -> Self {
        let source: Vec<char> = if text.is_empty() {
            vec!['0']
        } else {
            text.chars().collect()
        };
        let mut items = Vec::new();
        let mut index = 0;
        let n = source.len();
        while index < n {
            // One token: digits or letters, ended by a separator or a change of kind.
            let mut state = -2; // -2 nothing yet, -1 letters, 0 zeros so far, 1 a number
            let mut start = index;
            let mut end = n;
            let mut terminated_by_number = false;
            while index < n {
                let c = source[index];
                if c == '.' || c == '-' || c == '_' {
                    end = index;
                    index += 1;
                    break;
                }
                if let Some(digit) = c.to_digit(10) {
                    if state == -1 {
                        end = index;
                        terminated_by_number = true;
                        break;
                    }
                    if state == 0 {
                        start += 1; // leading zero
                    }
                    state = if state > 0 || digit > 0 { 1 } else { 0 };
                } else {
                    if state >= 0 {
                        end = index;
                        break;
                    }
                    state = -1;
                }
                index += 1;
            }
            let (token, number): (String, bool) = if end > start {
                (source[start..end].iter().collect(), state >= 0)
            } else {
                ("0".to_owned(), true)
            };
            let item = if number {
                Item::Number(if token == "0" { String::new() } else { token })
            } else if index >= n && token.eq_ignore_ascii_case("min") {
                Item::Min
            } else if index >= n && token.eq_ignore_ascii_case("max") {
                Item::Max
            } else if terminated_by_number && token.len() == 1 {
                match token.to_ascii_lowercase().as_str() {
                    "a" => Item::Qualifier(-5),
                    "b" => Item::Qualifier(-4),
                    "m" => Item::Qualifier(-3),
                    _ => qualifier(&token)
                        .map(Item::Qualifier)
                        .unwrap_or_else(|| Item::Word(token.to_lowercase())),
                }
            } else {
                qualifier(&token)
                    .map(Item::Qualifier)
                    .unwrap_or_else(|| Item::Word(token.to_lowercase()))
            };
            items.push(item);
        }
        trim_padding(&mut items);
        Self {
            text: text.to_owned(),
            items,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Drops padding items (`0`, `ga`, ...) at the end of each run of numbers or of words, as
/// `GenericVersion.trimPadding` does.
fn trim_padding(items: &mut Vec<Item>) {
    let mut number: Option<bool> = None;
    let mut end = items.len().saturating_sub(1);
    let mut i = items.len().saturating_sub(1);
    while i > 0 {
        let is_number = items[i].is_number();
        if number != Some(is_number) {
            end = i;
            number = Some(is_number);
        }
        if end == i
            && (i == items.len() - 1 || items[i - 1].is_number() == is_number)
            && items[i].compare(None) == Ordering::Equal
        {
            items.remove(i);
            end = end.saturating_sub(1);
        }
        i -= 1;
    }
}

fn compare_padding(items: &[Item], index: usize, number: Option<bool>) -> Ordering {
    for item in &items[index..] {
        if number.is_some_and(|n| n != item.is_number()) {
            break;
        }
        let rel = item.compare(None);
        if rel != Ordering::Equal {
            return rel;
        }
    }
    Ordering::Equal
}

impl Ord for MavenVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let (these, those) = (&self.items, &other.items);
        let mut number = true;
        let mut index = 0;
        loop {
            match (these.get(index), those.get(index)) {
                (None, None) => return Ordering::Equal,
                (None, Some(_)) => return compare_padding(those, index, None).reverse(),
                (Some(_), None) => return compare_padding(these, index, None),
                (Some(a), Some(b)) => {
                    if a.is_number() != b.is_number() {
                        return if number == a.is_number() {
                            compare_padding(these, index, Some(number))
                        } else {
                            compare_padding(those, index, Some(number)).reverse()
                        };
                    }
                    let rel = a.compare(Some(b));
                    if rel != Ordering::Equal {
                        return rel;
                    }
                    number = a.is_number();
                }
            }
            index += 1;
        }
    }
}

impl PartialOrd for MavenVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for MavenVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for MavenVersion {}

impl fmt::Display for MavenVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Ivy's `LatestRevisionStrategy` order of two revisions, with its default special meanings.
pub fn ivy_compare(a: &str, b: &str) -> Ordering {
    let a = ivy_split(a);
    let b = ivy_split(b);
    for (x, y) in a.iter().zip(&b) {
        if x == y {
            continue;
        }
        let (xn, yn) = (is_ivy_number(x), is_ivy_number(y));
        match (xn, yn) {
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            (true, true) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                return x.len().cmp(&y.len()).then_with(|| x.cmp(y));
            }
            (false, false) => {}
        }
        let special = |s: &str| match s.to_lowercase().as_str() {
            "dev" => Some(-1),
            "rc" => Some(1),
            "final" => Some(2),
            _ => None,
        };
        return match (special(x), special(y)) {
            (Some(sx), sy) => sx.cmp(&sy.unwrap_or(0)),
            (None, Some(sy)) => 0.cmp(&sy),
            (None, None) => x.cmp(y),
        };
    }
    match a.len().cmp(&b.len()) {
        Ordering::Greater => {
            if is_ivy_number(&a[b.len()]) {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        Ordering::Less => {
            if is_ivy_number(&b[a.len()]) {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        Ordering::Equal => Ordering::Equal,
    }
}

/// Ivy's split: a separator between letters and digits, then split on `.`, `_`, `-`, `+`.
fn ivy_split(revision: &str) -> Vec<String> {
    let chars: Vec<char> = revision.chars().collect();
    let mut spaced = String::with_capacity(revision.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 {
            let p = chars[i - 1];
            let letter_digit = p.is_ascii_alphabetic() && c.is_ascii_digit();
            let digit_letter = p.is_ascii_digit() && c.is_ascii_alphabetic();
            if letter_digit || digit_letter {
                spaced.push('.');
            }
        }
        spaced.push(c);
    }
    // Java's String.split drops trailing empty strings.
    let mut parts: Vec<String> = spaced
        .split(['.', '_', '-', '+'])
        .map(str::to_owned)
        .collect();
    while parts.last().is_some_and(String::is_empty) {
        parts.pop();
    }
    parts
}

fn is_ivy_number(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> MavenVersion {
        MavenVersion::parse(s)
    }

    #[test]
    fn maven_edge_cases() {
        assert_eq!(m("1.0"), m("1.0.0"));
        assert_eq!(m("1.1-final"), m("1.1"));
        assert!(m("1.0-sp1") > m("1.0"));
        assert!(m("1.0-rc1") < m("1.0-SNAPSHOT"));
        assert!(m("1.0-SNAPSHOT") < m("1.0"));
        assert!(m("1.0-alpha1") < m("1.0-beta1"));
        assert!(m("1.0a1") == m("1.0-alpha-1"));
        assert!(m("1.10") > m("1.9"));
        assert!(m("2.0-foo") > m("2.0"));
    }

    #[test]
    fn ivy_edge_cases() {
        assert_eq!(ivy_compare("1.0", "1.0"), Ordering::Equal);
        assert_eq!(ivy_compare("1.0.1", "1.0"), Ordering::Greater);
        assert_eq!(ivy_compare("1.0-dev", "1.0"), Ordering::Less);
        assert_eq!(ivy_compare("1.0-rc1", "1.0-final"), Ordering::Less);
        assert_eq!(ivy_compare("1.0", "1.0-final"), Ordering::Greater);
        assert_eq!(ivy_compare("1.10", "1.9"), Ordering::Greater);
    }
}
