//! What a caller waiting in a queue hears about their place — "You are number 3 in line.
//! Your expected wait is about 4 minutes." — built from the phrases in `prompts/queue/` and
//! the numbers in `prompts/digits/`, and the callback offer made to a caller who has waited.
//! In Spanish from `prompts/es/queue/` and `prompts/es/digits/` ("Es usted el número
//! veintiuno en la fila. Su tiempo de espera aproximado es de veintiún minutos."), the
//! numbers said as Spanish says them (`spanish`). Every name here is the English one;
//! `in_language` gives it in the caller's.

use std::time::Duration;

pub const YOU_ARE_NUMBER: &str = "queue/you_are_number";
pub const IN_LINE: &str = "queue/in_line";
pub const WAIT_ABOUT: &str = "queue/wait_about";
pub const MINUTE: &str = "queue/minute";
pub const MINUTES: &str = "queue/minutes";
pub const LESS_THAN_A_MINUTE: &str = "queue/less_than_a_minute";
/// "To keep your place in line and have us call you back, press 1."
pub const CALLBACK_OFFER: &str = "queue/callback_offer";
/// The confirmation once the caller pressed 1.
pub const CALLBACK_KEPT: &str = "queue/callback_kept";
/// What an agent hears while a callback dials the caller.
pub const RINGBACK: &str = "queue/ringback";
/// The key that accepts the callback offer.
pub const CALLBACK_KEY: char = '1';
/// "Your message is saved. We will call you back. Goodbye.": played only once the
/// voicemail is durable.
pub const MESSAGE_SAVED: &str = "followup/saved";
/// "Sorry, we could not keep your request. Please stay on the line for the next available
/// person.": a voicemail or callback that could not be saved (the disk is full).
pub const NOT_SAVED: &str = "followup/not_saved";
/// "Sorry, we could not keep your request. Please call again later. Goodbye.": the second
/// failure in one call.
pub const CALL_LATER: &str = "followup/call_later";
/// The follow-up prompts, each played when present.
pub const FOLLOW_UP: [&str; 3] = [MESSAGE_SAVED, NOT_SAVED, CALL_LATER];
/// What an agent hears after dialling the ready toggle code: now taking calls, or not.
pub const AGENT_AVAILABLE: &str = "agent/available";
pub const AGENT_NOT_READY: &str = "agent/not_ready";

/// Numbers up to this are spoken; longer lines are announced as this many.
const MAX_SPOKEN: u64 = 999_999;

/// The words of the announcements and the offer, around the numbers.
const PHRASES: [&str; 8] = [
    YOU_ARE_NUMBER,
    IN_LINE,
    WAIT_ABOUT,
    MINUTE,
    MINUTES,
    LESS_THAN_A_MINUTE,
    CALLBACK_OFFER,
    CALLBACK_KEPT,
];

/// A server prompt in the caller's language (`queue/in_line` → `es/queue/in_line`).
pub fn in_language(language: &str, name: &str) -> String {
    crate::flow::language::file_in(language, name)
}

/// Every prompt announcements use in `language`: a server loads them all, or announces
/// nothing.
pub fn prompt_names_in(language: &str) -> Vec<String> {
    if language == "es" {
        let mut names: Vec<String> = PHRASES.iter().map(|p| in_language("es", p)).collect();
        names.extend(super::spanish::prompt_names());
        names.push(RINGBACK.to_string());
        return names;
    }
    prompt_names()
}

/// Every prompt the server may play to a caller speaking `language` besides the flows' own:
/// the queue announcements and the follow-up confirmations (hold music has no words).
pub fn caller_prompts_in(language: &str) -> Vec<String> {
    let mut names = prompt_names_in(language);
    names.extend(FOLLOW_UP.map(|p| in_language(language, p)));
    names
}

/// The announcement in the caller's language (see `position`).
pub fn position_in(language: &str, ahead: usize, wait: Option<Duration>) -> Vec<String> {
    if language != "es" {
        return position(ahead, wait);
    }
    let es = |p: &str| in_language("es", p);
    let mut out = vec![es(YOU_ARE_NUMBER)];
    out.extend(super::spanish::number(ahead as u64 + 1, false));
    out.push(es(IN_LINE));
    if let Some(wait) = wait {
        out.push(es(WAIT_ABOUT));
        match spoken_minutes(wait) {
            0 => out.push(es(LESS_THAN_A_MINUTE)),
            1 => {
                out.extend(super::spanish::number(1, true));
                out.push(es(MINUTE));
            }
            m => {
                out.extend(super::spanish::number(m, true));
                out.push(es(MINUTES));
            }
        }
    }
    out
}

/// Every prompt announcements use: a server loads them all, or announces nothing.
pub fn prompt_names() -> Vec<String> {
    let mut names: Vec<String> = PHRASES
        .iter()
        .chain([&RINGBACK])
        .map(|s| s.to_string())
        .collect();
    names.extend((0..20).map(|n| format!("digits/{n}")));
    names.extend((2..10).map(|n| format!("digits/{}", n * 10)));
    names.push("digits/hundred".into());
    names.push("digits/thousand".into());
    names
}

/// Every prompt the server may play besides the flows' own: hold music, the queue
/// announcements, the agent's feature-code confirmations and the follow-up prompts.
pub fn server_prompts() -> Vec<String> {
    let mut names = vec!["hold".to_string()];
    names.extend(prompt_names());
    names.extend([AGENT_AVAILABLE, AGENT_NOT_READY].map(String::from));
    names.extend(FOLLOW_UP.map(String::from));
    names
}

/// A number as prompts: 125 → "1 hundred 20 5"; 3,004 → "3 thousand 4".
pub fn number(n: u64) -> Vec<String> {
    let n = n.min(MAX_SPOKEN);
    let mut out = Vec::new();
    if n >= 1000 {
        out.extend(below_thousand(n / 1000));
        out.push("digits/thousand".into());
        if !n.is_multiple_of(1000) {
            out.extend(below_thousand(n % 1000));
        }
        return out;
    }
    if n == 0 {
        return vec!["digits/0".into()];
    }
    below_thousand(n)
}

fn below_thousand(n: u64) -> Vec<String> {
    let mut out = Vec::new();
    if n >= 100 {
        out.push(format!("digits/{}", n / 100));
        out.push("digits/hundred".into());
    }
    let rest = n % 100;
    if rest >= 20 {
        out.push(format!("digits/{}", rest / 10 * 10));
        if !rest.is_multiple_of(10) {
            out.push(format!("digits/{}", rest % 10));
        }
    } else if rest > 0 {
        out.push(format!("digits/{rest}"));
    }
    out
}

/// A wait as the announcement says it: 0 ("less than a minute") or whole minutes, rounded.
fn spoken_minutes(wait: Duration) -> u64 {
    let secs = wait.as_secs();
    if secs < 60 { 0 } else { (secs + 30) / 60 }
}

/// The wait the caller heard, as a duration: "about 4 minutes" is 240 s, "less than a
/// minute" 60 s (what a caller takes it to promise). The wait-estimate audit scores this.
pub fn spoken_wait(wait: Duration) -> Duration {
    Duration::from_secs(spoken_minutes(wait).max(1) * 60)
}

/// The announcement for a caller with `ahead` callers before them, and the estimated wait
/// when there is one: under a minute, or to the nearest minute.
pub fn position(ahead: usize, wait: Option<Duration>) -> Vec<String> {
    let mut out = vec![YOU_ARE_NUMBER.to_string()];
    out.extend(number(ahead as u64 + 1));
    out.push(IN_LINE.into());
    if let Some(wait) = wait {
        out.push(WAIT_ABOUT.into());
        match spoken_minutes(wait) {
            0 => out.push(LESS_THAN_A_MINUTE.into()),
            1 => {
                out.extend(number(1));
                out.push(MINUTE.into());
            }
            m => {
                out.extend(number(m));
                out.push(MINUTES.into());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(p: &[String]) -> String {
        p.iter()
            .map(|s| s.rsplit('/').next().unwrap_or(s))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn numbers_are_spoken_the_english_way() {
        assert_eq!(said(&number(0)), "0");
        assert_eq!(said(&number(7)), "7");
        assert_eq!(said(&number(19)), "19");
        assert_eq!(said(&number(20)), "20");
        assert_eq!(said(&number(42)), "40 2");
        assert_eq!(said(&number(100)), "1 hundred");
        assert_eq!(said(&number(315)), "3 hundred 15");
        assert_eq!(said(&number(1000)), "1 thousand");
        assert_eq!(said(&number(3004)), "3 thousand 4");
        assert_eq!(said(&number(99_999)), "90 9 thousand 9 hundred 90 9");
        assert_eq!(said(&number(5_000_000)), said(&number(999_999)));
    }

    #[test]
    fn the_spanish_announcement_says_spanish_numbers_before_its_nouns() {
        let words = |p: Vec<String>| -> String {
            p.iter()
                .map(|s| {
                    let key = s.rsplit('/').next().unwrap_or(s);
                    super::super::spanish::WORDS
                        .iter()
                        .chain(std::iter::once(&super::super::spanish::VEINTIUN))
                        .find(|(w, _)| s.starts_with("es/digits/") && *w == key)
                        .map_or(key, |(_, word)| word)
                        .to_string()
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            words(position_in("es", 20, Some(Duration::from_secs(21 * 60)))),
            "you_are_number veintiuno in_line wait_about veintiún minutes"
        );
        assert_eq!(
            words(position_in("es", 0, Some(Duration::from_secs(61)))),
            "you_are_number uno in_line wait_about un minute"
        );
        assert_eq!(
            words(position_in("es", 100, Some(Duration::from_secs(20)))),
            "you_are_number ciento uno in_line wait_about less_than_a_minute"
        );
        let p = position_in("es", 4, Some(Duration::from_secs(300)));
        assert!(p.iter().all(|n| n.starts_with("es/")), "{p:?}");
        let names = prompt_names_in("es");
        for ahead in (0..2000).chain([99_999, 999_999]) {
            for p in position_in("es", ahead, Some(Duration::from_secs(ahead as u64 * 60))) {
                assert!(names.contains(&p), "{ahead}: {p}");
            }
        }
        // English callers hear what they always heard.
        assert_eq!(position_in("en", 2, None), position(2, None));
        assert!(caller_prompts_in("es").contains(&"es/followup/saved".to_string()));
    }

    #[test]
    fn every_prompt_a_number_uses_is_loaded() {
        let names = prompt_names();
        for n in (0..2000).chain([99_999, 100_000, 999_999]) {
            for p in number(n) {
                assert!(names.contains(&p), "{n}: {p}");
            }
        }
    }

    #[test]
    fn the_position_counts_the_caller_and_the_wait_rounds_to_minutes() {
        assert_eq!(said(&position(0, None)), "you_are_number 1 in_line");
        assert_eq!(
            said(&position(2, Some(Duration::from_secs(75)))),
            "you_are_number 3 in_line wait_about 1 minute"
        );
        assert_eq!(
            said(&position(2, Some(Duration::from_secs(270)))),
            "you_are_number 3 in_line wait_about 5 minutes"
        );
        assert_eq!(
            said(&position(11, Some(Duration::from_secs(59)))),
            "you_are_number 12 in_line wait_about less_than_a_minute"
        );
    }
}
