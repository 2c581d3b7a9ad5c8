//! Number normalization (E.164, ITU-T E.164 / RFC 3966 global numbers):
//! `[numbering]` says how numbers are written in the switch's country, so
//! numbers can be brought to one canonical form (`+4930123456`) when they
//! come in from a carrier and written as each carrier wants when they go
//! out (`[trunks.outbound] number_format`).

use serde::Deserialize;

/// `[numbering]`: the switch's country's dialing conventions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Numbering {
    /// Country calling code without `+` (`"49"`, `"1"`); default empty:
    /// national numbers cannot be normalized and are left as they are.
    pub country_code: String,
    /// Trunk prefix of national numbers; default `"0"`.
    pub national_prefix: String,
    /// International call prefix; default `"00"`.
    pub international_prefix: String,
}

impl Default for Numbering {
    fn default() -> Self {
        Numbering {
            country_code: String::new(),
            national_prefix: "0".into(),
            international_prefix: "00".into(),
        }
    }
}

/// How a trunk wants numbers written (`[trunks.outbound] number_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberFormat {
    /// As dialed / as received (the default).
    #[default]
    AsDialed,
    /// `+4930123456`.
    E164,
    /// `4930123456`: E.164 digits without the `+`.
    International,
    /// `030123456` for the switch's country, `0044…` (international
    /// prefix) for others.
    National,
}

impl Numbering {
    /// `number` in E.164 (`+` and digits) when its form says which it is:
    /// `+…`, the international prefix, or the national prefix (with a
    /// `country_code`). Anything else (an extension, a short code, a
    /// number with letters) comes back unchanged.
    pub fn to_e164(&self, number: &str) -> String {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        if number.starts_with('+') || !digits(number) {
            return number.to_owned();
        }
        let intl = &self.international_prefix;
        if !intl.is_empty() && number.len() > intl.len() + 2 && number.starts_with(intl.as_str()) {
            return format!("+{}", &number[intl.len()..]);
        }
        let nat = &self.national_prefix;
        if !self.country_code.is_empty()
            && !nat.is_empty()
            && number.len() > nat.len() + 2
            && number.starts_with(nat.as_str())
        {
            return format!("+{}{}", self.country_code, &number[nat.len()..]);
        }
        number.to_owned()
    }

    /// `number` written in `format` (via E.164; a number that cannot be
    /// normalized is left as it is).
    pub fn format(&self, number: &str, format: NumberFormat) -> String {
        if format == NumberFormat::AsDialed {
            return number.to_owned();
        }
        let e164 = self.to_e164(number);
        let Some(digits) = e164.strip_prefix('+') else {
            return number.to_owned();
        };
        match format {
            NumberFormat::AsDialed => number.to_owned(),
            NumberFormat::E164 => e164.clone(),
            NumberFormat::International => digits.to_owned(),
            NumberFormat::National => match digits.strip_prefix(self.country_code.as_str()) {
                Some(national) if !self.country_code.is_empty() => {
                    format!("{}{national}", self.national_prefix)
                }
                _ => format!("{}{digits}", self.international_prefix),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn de() -> Numbering {
        Numbering {
            country_code: "49".into(),
            ..Default::default()
        }
    }

    #[test]
    fn numbers_normalize_to_e164() {
        let n = de();
        for (input, want) in [
            ("+4930123456", "+4930123456"),
            ("004930123456", "+4930123456"),
            ("0044207946", "+44207946"),
            ("030123456", "+4930123456"),
            ("1001", "1001"),
            ("110", "110"),
            ("00", "00"),
            ("0", "0"),
            ("alice", "alice"),
            ("+49x", "+49x"),
        ] {
            assert_eq!(n.to_e164(input), want, "{input}");
        }
        // Without a country code national numbers stay as they are.
        assert_eq!(Numbering::default().to_e164("030123456"), "030123456");
        assert_eq!(Numbering::default().to_e164("004930123456"), "+4930123456");
    }

    #[test]
    fn numbers_are_written_per_trunk() {
        let n = de();
        let f = |num, fmt| n.format(num, fmt);
        assert_eq!(f("030123456", NumberFormat::E164), "+4930123456");
        assert_eq!(f("030123456", NumberFormat::International), "4930123456");
        assert_eq!(f("+4930123456", NumberFormat::National), "030123456");
        assert_eq!(f("+44207946", NumberFormat::National), "0044207946");
        assert_eq!(f("0044207946", NumberFormat::E164), "+44207946");
        assert_eq!(f("030123456", NumberFormat::AsDialed), "030123456");
        // What cannot be normalized goes out as dialed.
        assert_eq!(f("1001", NumberFormat::E164), "1001");
        assert_eq!(f("110", NumberFormat::National), "110");
    }
}
