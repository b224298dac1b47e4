//! A small, anchored pattern matcher for string parameters (`String { pattern }`).
//!
//! It understands the subset of regular-expression syntax a form field needs, the same subset
//! an HTML `pattern` attribute is written in: literals, `\` escapes, `.`, classes such as
//! `[a-z0-9-]` (with `^` negation), and the quantifiers `?`, `*`, `+`, `{n}`, `{m,n}`. The whole
//! value must match; a leading `^` and trailing `$` are accepted and ignored. Anything else is
//! rejected when the blueprint loads, so a manifest cannot ask for a check that is not enforced.

/// One element of a compiled pattern: what it matches and how often.
#[derive(Debug, Clone)]
struct Item {
    set: Set,
    min: usize,
    max: usize,
}

#[derive(Debug, Clone)]
enum Set {
    Any,
    Char(char),
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Set {
    fn matches(&self, c: char) -> bool {
        match self {
            Set::Any => true,
            Set::Char(x) => *x == c,
            Set::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    items: Vec<Item>,
}

impl Pattern {
    /// Compiles `src`, or says which construct is not supported.
    pub fn compile(src: &str) -> Result<Pattern, String> {
        let body = src.strip_prefix('^').unwrap_or(src);
        let body = body.strip_suffix('$').unwrap_or(body);
        let mut chars = body.chars().peekable();
        let mut items = Vec::new();
        while let Some(c) = chars.next() {
            let set = match c {
                '.' => Set::Any,
                '\\' => Set::Char(chars.next().ok_or("pattern ends with a lone '\\'")?),
                '[' => {
                    let negated = chars.next_if_eq(&'^').is_some();
                    let mut ranges = Vec::new();
                    loop {
                        let lo = match chars.next() {
                            None => return Err("unclosed '[' in pattern".into()),
                            Some(']') if !ranges.is_empty() => break,
                            Some('\\') => chars.next().ok_or("unclosed '[' in pattern")?,
                            Some(x) => x,
                        };
                        let hi = if chars.peek() == Some(&'-') {
                            chars.next();
                            match chars.next() {
                                Some(']') => {
                                    ranges.push((lo, lo));
                                    ranges.push(('-', '-'));
                                    break;
                                }
                                Some(h) => h,
                                None => return Err("unclosed '[' in pattern".into()),
                            }
                        } else {
                            lo
                        };
                        ranges.push((lo, hi));
                    }
                    Set::Class { negated, ranges }
                }
                '(' | ')' | '|' | '?' | '*' | '+' | '{' | '}' | '^' | '$' => {
                    return Err(format!(
                        "'{c}' is not supported here in a parameter pattern"
                    ));
                }
                other => Set::Char(other),
            };
            let (min, max) = match chars.peek() {
                Some('?') => (0, 1),
                Some('*') => (0, usize::MAX),
                Some('+') => (1, usize::MAX),
                Some('{') => {
                    chars.next();
                    let spec: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    let bound = |s: &str| {
                        s.trim()
                            .parse::<usize>()
                            .map_err(|_| format!("bad repetition '{{{spec}}}' in pattern"))
                    };
                    let (lo, hi) = match spec.split_once(',') {
                        Some((lo, hi)) => (bound(lo)?, bound(hi)?),
                        None => (bound(&spec)?, bound(&spec)?),
                    };
                    if lo > hi {
                        return Err(format!("bad repetition '{{{spec}}}' in pattern"));
                    }
                    items.push(Item {
                        set,
                        min: lo,
                        max: hi,
                    });
                    continue;
                }
                _ => (1, 1),
            };
            if (min, max) != (1, 1) {
                chars.next();
            }
            items.push(Item { set, min, max });
        }
        Ok(Pattern { items })
    }

    /// Whether the whole of `s` matches.
    pub fn is_match(&self, s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        matches_from(&self.items, &chars)
    }
}

fn matches_from(items: &[Item], input: &[char]) -> bool {
    let Some((item, rest)) = items.split_first() else {
        return input.is_empty();
    };
    let mut n = 0;
    while n < item.max && n < input.len() && item.set.matches(input[n]) {
        n += 1;
    }
    (item.min..=n)
        .rev()
        .any(|k| matches_from(rest, &input[k..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        match Pattern::compile(s) {
            Ok(p) => p,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn environment_name_pattern() {
        let pat = p("^[a-z][a-z0-9-]{1,30}$");
        assert!(pat.is_match("payments-dev"));
        assert!(!pat.is_match("a"));
        assert!(!pat.is_match("Payments"));
        assert!(!pat.is_match("9lives"));
        assert!(!pat.is_match(&"a".repeat(32)));
    }

    #[test]
    fn quantifiers_escapes_and_negation() {
        assert!(p(r"v\.[0-9]+").is_match("v.12"));
        assert!(!p(r"v\.[0-9]+").is_match("vx12"));
        assert!(p("ab?c*").is_match("a"));
        assert!(p("[^ ]+").is_match("x-y"));
        assert!(!p("[^ ]+").is_match("x y"));
        assert!(p("[a-]{2}").is_match("a-"));
    }

    #[test]
    fn unsupported_syntax_is_rejected() {
        assert!(Pattern::compile("(a|b)").is_err());
        assert!(Pattern::compile("[a-z").is_err());
        assert!(Pattern::compile("a{3,1}").is_err());
    }
}
