//! How a route matches a dialed number: an exact `number`, a `pattern`
//! (number ranges) or a `prefix`; the most specific match wins.
//!
//! Pattern syntax (Asterisk-like, case-insensitive letters): digits, `*`,
//! `#`, `+` match themselves; `x` any digit; `z` 1-9; `n` 2-9; `[1-5]` or
//! `[137]` a set; a final `.` one or more characters of anything. Dashes
//! and spaces are only for reading: `400-800-1xxx` is `4008001xxx`.
//!
//! Specificity: an exact number beats any pattern, a pattern beats any
//! prefix; among patterns, more literal characters win, then longer ones;
//! among prefixes, the longer wins; ties go to the route listed first.

/// One position of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unit {
    Lit(char),
    Set(Vec<char>),
    /// `.`: one or more of anything (last only).
    Rest,
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    units: Vec<Unit>,
}

impl Pattern {
    /// Compiles `text`, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let mut units = Vec::new();
        let mut chars = text.chars().filter(|c| *c != '-' && *c != ' ').peekable();
        while let Some(c) = chars.next() {
            let unit = match c.to_ascii_lowercase() {
                '0'..='9' | '*' | '#' | '+' => Unit::Lit(c),
                'x' => Unit::Set(('0'..='9').collect()),
                'z' => Unit::Set(('1'..='9').collect()),
                'n' => Unit::Set(('2'..='9').collect()),
                '.' if chars.peek().is_none() => Unit::Rest,
                '.' => return Err("'.' (one or more of anything) may only come last".into()),
                '[' => {
                    let mut set = Vec::new();
                    let mut prev: Option<char> = None;
                    loop {
                        match chars.next() {
                            Some(']') => break,
                            Some(d @ '0'..='9') => {
                                set.push(d);
                                prev = Some(d);
                            }
                            Some('~') => {
                                // A range inside brackets is written 1~5 (a
                                // dash would be read as a separator).
                                let (Some(lo), Some(hi)) = (prev, chars.next()) else {
                                    return Err("a range needs two digits, e.g. [1~5]".into());
                                };
                                if !hi.is_ascii_digit() || hi < lo {
                                    return Err(format!("bad range {lo}~{hi}"));
                                }
                                set.extend((lo..=hi).skip(1));
                            }
                            Some(o) => {
                                return Err(format!("{o:?} in a [...] set; digits and ~ only"))
                            }
                            None => return Err("unclosed '['".into()),
                        }
                    }
                    if set.is_empty() {
                        return Err("empty [] set".into());
                    }
                    set.sort_unstable();
                    set.dedup();
                    Unit::Set(set)
                }
                o => {
                    return Err(format!(
                        "{o:?} is not allowed in a pattern (digits, * # +, x z n, [..], final .)"
                    ))
                }
            };
            units.push(unit);
        }
        if units.is_empty() {
            return Err("empty pattern".into());
        }
        Ok(Pattern { units })
    }

    /// Whether `dialed` matches the whole pattern.
    pub fn matches(&self, dialed: &str) -> bool {
        let mut it = dialed.chars();
        for u in &self.units {
            match u {
                Unit::Rest => return it.next().is_some(),
                Unit::Lit(l) if it.next() == Some(*l) => {}
                Unit::Set(s) if it.next().is_some_and(|c| s.contains(&c)) => {}
                _ => return false,
            }
        }
        it.next().is_none()
    }

    /// Literal characters and positions, for specificity.
    fn weight(&self) -> (usize, usize) {
        let lits = self
            .units
            .iter()
            .filter(|u| matches!(u, Unit::Lit(_)))
            .count();
        (lits, self.units.len())
    }
}

/// How specific a match is: larger wins.
pub(crate) type Score = (u8, usize, usize);

/// The score of `dialed` against a route's number/pattern/prefix, if it matches.
pub(crate) fn score(
    number: Option<&str>,
    pattern: Option<&Pattern>,
    prefix: Option<&str>,
    dialed: &str,
) -> Option<Score> {
    if let Some(n) = number {
        return (n == dialed).then_some((3, n.len(), 0));
    }
    if let Some(p) = pattern {
        let (lits, len) = p.weight();
        return p.matches(dialed).then_some((2, lits, len));
    }
    let p = prefix?;
    dialed.starts_with(p).then_some((1, p.len(), 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_ranges() {
        let p = Pattern::parse("400-800-1xxx").unwrap();
        assert!(p.matches("4008001000") && p.matches("4008001999"));
        assert!(!p.matches("4008002000") && !p.matches("400800100") && !p.matches("40080010000"));
        let n = Pattern::parse("NXXNXXXXXX").unwrap();
        assert!(n.matches("2125551234") && !n.matches("1125551234"));
        let set = Pattern::parse("95[1~3]X").unwrap();
        assert!(set.matches("9520") && !set.matches("9540"));
        let odd = Pattern::parse("9[137]").unwrap();
        assert!(odd.matches("93") && !odd.matches("92"));
        let rest = Pattern::parse("00.").unwrap();
        assert!(rest.matches("0049301234") && !rest.matches("00"));
        assert!(Pattern::parse("1.2").is_err());
        assert!(Pattern::parse("12a").is_err());
        assert!(Pattern::parse("[12").is_err());
        assert!(Pattern::parse("").is_err());
    }

    #[test]
    fn the_most_specific_wins() {
        let p = Pattern::parse("400800xxxx").unwrap();
        let q = Pattern::parse("4008001xxx").unwrap();
        let exact = score(Some("4008001234"), None, None, "4008001234");
        let broad = score(None, Some(&p), None, "4008001234");
        let narrow = score(None, Some(&q), None, "4008001234");
        let prefix = score(None, None, Some("4008001"), "4008001234");
        assert!(exact > narrow && narrow > broad && broad > prefix);
        assert_eq!(score(Some("1"), None, None, "12"), None);
    }
}
