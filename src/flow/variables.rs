//! Call variables: the built-ins every call has, and the names a flow may give its own
//! (`variable` of a collect, `set` on a node, the fields a lookup answers with).

use toml::de::DeValue;

use super::fields::Fields;
use super::source::Pos;

/// The caller's number in E.164 (`+34600111222`), empty when withheld or not a number.
pub const CALLER_NUMBER: &str = "caller_number";
/// The number or name the caller dialled (the Request-URI user; the flow's name when run
/// without a network).
pub const LINE: &str = "line";
/// The time of day, `HH:MM`, in `[variables] timezone` (the system's by default).
pub const TIME: &str = "time";
/// The day of the week: `mon` … `sun`, in the same timezone.
pub const WEEKDAY: &str = "weekday";

/// Variables every call has from its start: a branch may test them anywhere.
pub const BUILTINS: [&str; 4] = [CALLER_NUMBER, LINE, TIME, WEEKDAY];

/// The caller's language (`en`, `es`): every call has one; `set` may change it.
pub const LANGUAGE: &str = super::language::VARIABLE;

/// Whether every call has the variable from its start (the read-only built-ins, and the
/// language).
pub fn is_builtin(name: &str) -> bool {
    BUILTINS.contains(&name) || name == LANGUAGE
}

/// A name a flow may set: letters, digits and `_`, starting with a letter, at most 64
/// characters. (Dotted names, `crm.tier`, are the fields of a lookup.)
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// Reads `set = { segment = "vip", tries = 1, known = true }`: the values a call takes on
/// arriving at the node, as text (numbers and booleans as TOML writes them).
pub fn parse_set(f: &mut Fields, owner: &str) -> Vec<(String, String)> {
    let Some((table, _)) = f.table("set") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in table.iter() {
        let name = k.get_ref().to_string();
        let kpos: Pos = f.pos_of(k);
        if !valid_name(&name) {
            f.error(
                kpos,
                format!("{owner}: `set` names a variable \"{name}\": letters, digits and _, starting with a letter"),
            );
            continue;
        }
        if BUILTINS.contains(&name.as_str()) {
            f.error(
                kpos,
                format!(
                    "{owner}: `set` may not change \"{name}\": it is a built-in variable ({})",
                    BUILTINS.join(", ")
                ),
            );
            continue;
        }
        let value = match v.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => n.to_string(),
                Err(_) => i.as_str().to_string(),
            },
            DeValue::Float(x) => x.as_str().to_string(),
            DeValue::Boolean(b) => b.to_string(),
            other => {
                let vpos = f.pos_of(v);
                f.error(
                    vpos,
                    format!(
                        "{owner}: `set.{name}` must be a string, number or boolean, found {}",
                        other.type_str()
                    ),
                );
                continue;
            }
        };
        if name == LANGUAGE && !super::language::is_spoken(&value) {
            let vpos = f.pos_of(v);
            f.error(
                vpos,
                format!(
                    "{owner}: `set.language`: {}",
                    super::language::unknown(&value)
                ),
            );
            continue;
        }
        out.push((name, value));
    }
    out
}
