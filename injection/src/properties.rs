//! Java `.properties` files, read the way `java.util.Properties.load` reads them, values trimmed
//! as Spark's `Utils.getPropertiesFromFile` trims them: spark-submit's `--properties-file` (the
//! client) and the 2017 fork's `spark-init.properties` (the init container).
//!
//! The format: `#` and `!` start comment lines; a key ends at the first unescaped `=`, `:` or
//! white space, and one `=` or `:` with white space around it separates it from the value; a line
//! ending in an odd number of backslashes continues on the next line, whose leading white space
//! is dropped; `\t`, `\n`, `\r`, `\f`, `\uXXXX` are escapes, and any other escaped character is
//! itself. The last occurrence of a key wins.

use std::collections::BTreeMap;

/// Parses the text of a properties file.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(first) = lines.next() {
        let first = first.trim_start_matches([' ', '\t', '\u{c}']);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        // Join continuation lines.
        let mut logical = String::new();
        let mut line = first.to_owned();
        loop {
            let trailing = line.chars().rev().take_while(|c| *c == '\\').count();
            if trailing % 2 == 1 {
                line.pop();
                logical.push_str(&line);
                match lines.next() {
                    Some(next) => line = next.trim_start_matches([' ', '\t', '\u{c}']).to_owned(),
                    None => break,
                }
            } else {
                logical.push_str(&line);
                break;
            }
        }
        let (key, value) = split_key_value(&logical);
        out.insert(unescape(key), unescape(value).trim().to_owned());
    }
    out
}

fn split_key_value(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    let mut key_end = line.len();
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' | b':' | b' ' | b'\t' | b'\x0c' => {
                key_end = i;
                break;
            }
            _ => i += 1,
        }
    }
    let key = &line[..key_end.min(line.len())];
    let mut rest = line.get(key_end..).unwrap_or("");
    rest = rest.trim_start_matches([' ', '\t', '\u{c}']);
    if let Some(r) = rest.strip_prefix(['=', ':']) {
        rest = r.trim_start_matches([' ', '\t', '\u{c}']);
    }
    (key, rest)
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push_str(&hex),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_properties_forms() {
        let p = parse(
            "# comment\n\
             ! also a comment\n\
             spark.jars = /a.jar,\\\n    /b.jar\n\
             spark.files:/data/x.csv\n\
             spark.archives /env.tgz#env\n\
             key\\ with\\ spaces=v\n\
             spark.app.name=caf\\u00e9  \n\
             spark.driver.extraJavaOptions=-Da=b=c\n\
             spark.files=/data/y.csv\n\
             empty\n",
        );
        assert_eq!(p["spark.jars"], "/a.jar,/b.jar");
        assert_eq!(p["spark.files"], "/data/y.csv", "the last one wins");
        assert_eq!(p["spark.archives"], "/env.tgz#env");
        assert_eq!(p["key with spaces"], "v");
        assert_eq!(p["spark.app.name"], "café");
        assert_eq!(p["spark.driver.extraJavaOptions"], "-Da=b=c");
        assert_eq!(p["empty"], "");
        assert_eq!(p.len(), 7);
    }
}
