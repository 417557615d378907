//! Numbers as a Spanish caller hears them, as prompt names under `prompts/es/digits/`: not
//! English numbers with other words — 21 is one word ("veintiuno"), 31 three ("treinta y
//! uno"), 100 is "cien" but 101 "ciento uno", the hundreds have their own forms
//! ("quinientos"), 1,000 is "mil" (never "uno mil"), and before a noun or "mil" one is "un"
//! ("veintiún minutos", "treinta y un mil"). Pure.

/// The prompt names a Spanish number may use, each with the word it says.
pub const WORDS: [(&str, &str); 50] = [
    ("0", "cero"),
    ("1", "uno"),
    ("2", "dos"),
    ("3", "tres"),
    ("4", "cuatro"),
    ("5", "cinco"),
    ("6", "seis"),
    ("7", "siete"),
    ("8", "ocho"),
    ("9", "nueve"),
    ("10", "diez"),
    ("11", "once"),
    ("12", "doce"),
    ("13", "trece"),
    ("14", "catorce"),
    ("15", "quince"),
    ("16", "dieciséis"),
    ("17", "diecisiete"),
    ("18", "dieciocho"),
    ("19", "diecinueve"),
    ("20", "veinte"),
    ("21", "veintiuno"),
    ("22", "veintidós"),
    ("23", "veintitrés"),
    ("24", "veinticuatro"),
    ("25", "veinticinco"),
    ("26", "veintiséis"),
    ("27", "veintisiete"),
    ("28", "veintiocho"),
    ("29", "veintinueve"),
    ("30", "treinta"),
    ("40", "cuarenta"),
    ("50", "cincuenta"),
    ("60", "sesenta"),
    ("70", "setenta"),
    ("80", "ochenta"),
    ("90", "noventa"),
    ("y", "y"),
    ("100", "cien"),
    ("ciento", "ciento"),
    ("200", "doscientos"),
    ("300", "trescientos"),
    ("400", "cuatrocientos"),
    ("500", "quinientos"),
    ("600", "seiscientos"),
    ("700", "setecientos"),
    ("800", "ochocientos"),
    ("900", "novecientos"),
    ("mil", "mil"),
    ("un", "un"),
];

/// "veintiún": 21 before a noun or "mil".
pub const VEINTIUN: (&str, &str) = ("21un", "veintiún");

/// Numbers up to this are spoken; more is said as this many.
const MAX_SPOKEN: u64 = 999_999;

fn name(word: &str) -> String {
    format!("es/digits/{word}")
}

/// `n` as prompts; `before_noun`: said before a masculine noun ("un minuto", "veintiún
/// minutos"), where a final one is "un".
pub fn number(n: u64, before_noun: bool) -> Vec<String> {
    let n = n.min(MAX_SPOKEN);
    if n == 0 {
        return vec![name("0")];
    }
    let mut out = Vec::new();
    let (thousands, rest) = (n / 1000, n % 1000);
    if thousands == 1 {
        out.push(name("mil"));
    } else if thousands > 1 {
        out.extend(below_thousand(thousands, true));
        out.push(name("mil"));
    }
    if rest > 0 {
        out.extend(below_thousand(rest, before_noun));
    }
    out
}

/// 1–999; `apocope`: a final one is "un" ("veintiún", "treinta y un").
fn below_thousand(n: u64, apocope: bool) -> Vec<String> {
    let mut out = Vec::new();
    let (hundreds, rest) = (n / 100, n % 100);
    match (hundreds, rest) {
        (0, _) => {}
        (1, 0) => out.push(name("100")),
        (1, _) => out.push(name("ciento")),
        (h, _) => out.push(name(&format!("{}", h * 100))),
    }
    match rest {
        0 => {}
        1 if apocope => out.push(name("un")),
        21 if apocope => out.push(name(VEINTIUN.0)),
        1..=29 => out.push(name(&rest.to_string())),
        _ => {
            out.push(name(&format!("{}", rest / 10 * 10)));
            match rest % 10 {
                0 => {}
                1 if apocope => {
                    out.push(name("y"));
                    out.push(name("un"));
                }
                u => {
                    out.push(name("y"));
                    out.push(name(&u.to_string()));
                }
            }
        }
    }
    out
}

/// Every prompt `number` may use.
pub fn prompt_names() -> Vec<String> {
    WORDS
        .iter()
        .chain(std::iter::once(&VEINTIUN))
        .map(|(w, _)| name(w))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(n: u64, before_noun: bool) -> String {
        number(n, before_noun)
            .iter()
            .map(|p| {
                let key = p.trim_start_matches("es/digits/");
                WORDS
                    .iter()
                    .chain(std::iter::once(&VEINTIUN))
                    .find(|(w, _)| *w == key)
                    .map(|(_, s)| *s)
                    .unwrap_or_else(|| panic!("no word for {p}"))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn numbers_are_said_as_spanish_says_them() {
        for (n, words) in [
            (0, "cero"),
            (1, "uno"),
            (15, "quince"),
            (16, "dieciséis"),
            (21, "veintiuno"),
            (22, "veintidós"),
            (30, "treinta"),
            (31, "treinta y uno"),
            (99, "noventa y nueve"),
            (100, "cien"),
            (101, "ciento uno"),
            (115, "ciento quince"),
            (121, "ciento veintiuno"),
            (200, "doscientos"),
            (555, "quinientos cincuenta y cinco"),
            (700, "setecientos"),
            (999, "novecientos noventa y nueve"),
            (1000, "mil"),
            (1001, "mil uno"),
            (1100, "mil cien"),
            (2000, "dos mil"),
            (21_000, "veintiún mil"),
            (31_000, "treinta y un mil"),
            (100_000, "cien mil"),
            (101_000, "ciento un mil"),
            (500_500, "quinientos mil quinientos"),
            (
                999_999,
                "novecientos noventa y nueve mil novecientos noventa y nueve",
            ),
            (
                5_000_000,
                "novecientos noventa y nueve mil novecientos noventa y nueve",
            ),
        ] {
            assert_eq!(said(n, false), words, "{n}");
        }
        // Before a noun: "un minuto", "veintiún minutos", "treinta y un minutos".
        assert_eq!(said(1, true), "un");
        assert_eq!(said(21, true), "veintiún");
        assert_eq!(said(31, true), "treinta y un");
        assert_eq!(said(2, true), "dos");
        assert_eq!(said(1001, true), "mil un");
    }

    #[test]
    fn every_number_up_to_the_limit_uses_only_known_prompts() {
        let known = prompt_names();
        for n in (0..=MAX_SPOKEN).step_by(7).chain([1, 21, 31, 101_000]) {
            for before in [false, true] {
                for p in number(n, before) {
                    assert!(known.contains(&p), "{n}: {p}");
                }
            }
        }
    }
}
