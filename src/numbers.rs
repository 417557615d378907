//! Telephone numbers as one form: E.164 (`+34910000000`). A carrier writes the same line as
//! `+34910000000`, `34910000000`, `0034910000000` or `910000000`; a caller's number comes
//! as any of those too. `[numbers]` says how this line's country writes them, and every
//! place that compares or dials a number (`[lines]`, the caller's identity, records,
//! callbacks, the dial policy) reads it through [`Numbering::e164`]. Pure.

use serde::Deserialize;

/// `[numbers]`: how numbers without a `+` are read.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Numbering {
    /// The country code of numbers written nationally (`"34"`, `"1"`, `"44"`); empty: a
    /// number without `+` or the international prefix is not read as a phone number.
    pub country: String,
    /// What precedes a national number when dialled within the country: `"0"` in the UK,
    /// France or Germany, `"1"` in North America, none in Spain or Italy.
    pub national_prefix: String,
    /// What precedes a country code when dialled from this country (`"00"`; `"011"` in
    /// North America).
    pub international_prefix: String,
    /// The length of a national number where it is fixed (9 in Spain): it tells `34910000000`
    /// (the country code written without `+`) from a national number. Without it a number
    /// starting with the country code and longer than 8 digits after it is read as one.
    pub national_digits: Option<usize>,
}

impl Default for Numbering {
    fn default() -> Self {
        Numbering {
            country: String::new(),
            national_prefix: String::new(),
            international_prefix: "00".into(),
            national_digits: None,
        }
    }
}

/// E.164 allows 15 digits with the country code; fewer than 7 is a short code or an
/// extension, not a number in the public network.
const MAX_DIGITS: usize = 15;
const MIN_DIGITS: usize = 7;

impl Numbering {
    /// Checks what serde cannot: digits where digits belong.
    pub fn check(&self) -> Result<(), String> {
        let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        if !digits(&self.country) || self.country.len() > 3 || self.country.starts_with('0') {
            return Err(format!(
                "[numbers] country = \"{}\": a country calling code, 1 to 3 digits without + (\"34\", \"1\", \"44\")",
                self.country
            ));
        }
        for (key, v) in [
            ("national_prefix", &self.national_prefix),
            ("international_prefix", &self.international_prefix),
        ] {
            if !digits(v) || v.len() > 4 {
                return Err(format!("[numbers] {key} = \"{v}\": up to 4 digits"));
            }
        }
        if let Some(n) = self.national_digits
            && !(4..=14).contains(&n)
        {
            return Err(format!("[numbers] national_digits = {n}: between 4 and 14"));
        }
        Ok(())
    }

    /// The E.164 form (`+` and digits) of a number as a user part, a `tel:` URI or a SIP
    /// URI's user carries it (`+34 910-00-00-00`, `0034910000000`, `sip:910000000@host`);
    /// `None` when it is no public telephone number (letters, a short code, too long, or
    /// written nationally with no `country` configured).
    pub fn e164(&self, text: &str) -> Option<String> {
        let user = user_part(text);
        let mut plus = false;
        let mut digits = String::new();
        for (i, c) in user.chars().enumerate() {
            match c {
                '+' if i == 0 => plus = true,
                '0'..='9' => digits.push(c),
                '-' | '.' | '(' | ')' | ' ' => {}
                _ => return None,
            }
            if digits.len() > 2 * MAX_DIGITS {
                return None;
            }
        }
        let international = if plus {
            Some(digits.as_str())
        } else if !self.international_prefix.is_empty()
            && digits.len() > self.international_prefix.len()
            && digits.starts_with(&self.international_prefix)
        {
            Some(&digits[self.international_prefix.len()..])
        } else {
            None
        };
        let full = match international {
            Some(d) => d.to_string(),
            None => {
                if self.country.is_empty() {
                    return None;
                }
                let national = if !self.national_prefix.is_empty() {
                    match digits.strip_prefix(self.national_prefix.as_str()) {
                        Some(rest) => rest,
                        // Nationally written numbers carry the prefix: one without it that
                        // starts with the country code is the country code without `+`.
                        None if digits.starts_with(&self.country) => {
                            return finish(digits);
                        }
                        None => digits.as_str(),
                    }
                } else if digits.starts_with(&self.country)
                    && match self.national_digits {
                        Some(n) => digits.len() == self.country.len() + n,
                        None => digits.len() > self.country.len() + 8,
                    }
                {
                    return finish(digits);
                } else {
                    digits.as_str()
                };
                format!("{}{national}", self.country)
            }
        };
        finish(full)
    }

    /// `text`'s E.164 form when it has one, else `text` itself: how `[lines]` keys and the
    /// dialled user are compared.
    pub fn key(&self, text: &str) -> String {
        self.e164(text).unwrap_or_else(|| text.to_string())
    }
}

fn finish(digits: String) -> Option<String> {
    (MIN_DIGITS..=MAX_DIGITS)
        .contains(&digits.len())
        .then(|| format!("+{digits}"))
}

/// The user part of a `sip:`/`sips:`/`tel:` URI, without parameters; `text` when it is none.
fn user_part(text: &str) -> &str {
    let t = text.trim();
    let t = t
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(t);
    let lower = t.get(..5).unwrap_or("").to_ascii_lowercase();
    let rest = if lower.starts_with("tel:") {
        &t[4..]
    } else if lower.starts_with("sip:") {
        t[4..].rsplit_once('@').map_or(&t[4..], |(u, _)| u)
    } else if lower.starts_with("sips:") {
        t[5..].rsplit_once('@').map_or(&t[5..], |(u, _)| u)
    } else {
        t
    };
    rest.split(';').next().unwrap_or("")
}

/// Spain's numbering (country 34, nine-digit national numbers): the tests' example line.
#[cfg(test)]
pub(crate) fn spain() -> Numbering {
    Numbering {
        country: "34".into(),
        national_digits: Some(9),
        ..Numbering::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_in_every_format_a_spanish_carrier_writes_it() {
        let n = spain();
        for written in [
            "+34910000000",
            "34910000000",
            "0034910000000",
            "910000000",
            "+34 910 00 00 00",
            "tel:+34-910-000-000",
            "sip:0034910000000@carrier.example;user=phone",
            "<sip:910000000@10.0.0.1:5060>",
        ] {
            assert_eq!(
                n.e164(written).as_deref(),
                Some("+34910000000"),
                "{written}"
            );
        }
        // Without the fixed length, the country code's own digits decide by length.
        let loose = Numbering {
            national_digits: None,
            ..spain()
        };
        assert_eq!(loose.e164("34910000000").as_deref(), Some("+34910000000"));
        assert_eq!(loose.e164("910000000").as_deref(), Some("+34910000000"));
    }

    #[test]
    fn national_prefixes_of_other_countries() {
        let uk = Numbering {
            country: "44".into(),
            national_prefix: "0".into(),
            ..Numbering::default()
        };
        for w in [
            "02071234567",
            "+442071234567",
            "00442071234567",
            "442071234567",
        ] {
            assert_eq!(uk.e164(w).as_deref(), Some("+442071234567"), "{w}");
        }
        let nanp = Numbering {
            country: "1".into(),
            national_prefix: "1".into(),
            international_prefix: "011".into(),
            national_digits: Some(10),
        };
        for w in ["2125551234", "12125551234", "+1 (212) 555-1234"] {
            assert_eq!(nanp.e164(w).as_deref(), Some("+12125551234"), "{w}");
        }
        assert_eq!(
            nanp.e164("011442071234567").as_deref(),
            Some("+442071234567")
        );
    }

    #[test]
    fn what_is_not_a_public_number_stays_itself() {
        let n = spain();
        for not in [
            "support",
            "sip:alice@pbx",
            "112",
            "+123",
            "anonymous",
            "",
            "9100x0000",
        ] {
            assert_eq!(n.e164(not), None, "{not}");
            assert_eq!(n.key(not), not);
        }
        assert_eq!(n.e164("+1234567890123456"), None, "16 digits: too long");
        // No country configured: only what carries its own country code is read.
        let none = Numbering::default();
        assert_eq!(none.e164("910000000"), None);
        assert_eq!(none.e164("0034910000000").as_deref(), Some("+34910000000"));
        assert_eq!(none.key("+34910000000"), "+34910000000");
    }

    #[test]
    fn bad_settings_are_named() {
        for bad in [
            Numbering {
                country: "+34".into(),
                ..Numbering::default()
            },
            Numbering {
                country: "034".into(),
                ..Numbering::default()
            },
            Numbering {
                international_prefix: "x".into(),
                ..Numbering::default()
            },
            Numbering {
                national_digits: Some(40),
                ..Numbering::default()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        assert!(spain().check().is_ok());
    }
}
