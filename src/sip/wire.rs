//! SIP messages as they arrive on the wire (RFC 3261 §7, §18.3): framing by Content-Length,
//! header unfolding, compact names, and the checks that turn a malformed request into the
//! status the RFC asks for. Everything here treats its input as hostile: sizes are bounded,
//! nothing panics, and every defect has a reason phrase.

use std::fmt::Write;

/// The largest message accepted: a full UDP datagram.
pub const MAX_MESSAGE: usize = 65_535;
/// More header lines than this is an attack, not a phone.
pub const MAX_HEADER_LINES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Request { method: String, uri: String },
    Response { code: u16, reason: String },
}

/// A request's method, as the code that acts on it matches it. Methods are case-sensitive
/// (RFC 3261 §7.1): `invite` is `Other("invite")`, answered as any method we do not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Info,
    Register,
    Other(String),
}

impl Method {
    pub fn parse(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "REGISTER" => Method::Register,
            other => Method::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Register => "REGISTER",
            Method::Other(s) => s,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Canonical name for the headers we know (`Call-ID`), as written otherwise.
    pub name: String,
    /// Unfolded and trimmed.
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub start: Start,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

/// Why a message was refused: the status to answer with (0 for a response, which is never
/// answered) and the reason phrase. `message` holds what was parsed, to build the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub status: u16,
    pub reason: String,
    pub message: Option<Box<Message>>,
    /// Extra headers for the answer (e.g. `Unsupported` on a 420).
    pub extra: Vec<(String, String)>,
}

impl Reject {
    fn new(status: u16, reason: impl Into<String>) -> Reject {
        Reject {
            status,
            reason: reason.into(),
            message: None,
            extra: Vec::new(),
        }
    }

    fn with(mut self, m: &Message) -> Reject {
        if matches!(m.start, Start::Request { .. }) {
            self.message = Some(Box::new(m.clone()));
        } else {
            self.status = 0;
        }
        self
    }
}

/// The result of reading from a stream: a whole message and how many bytes it took, or a
/// request to read more.
#[derive(Debug)]
pub enum Framed {
    Complete(Message, usize),
    Incomplete,
}

const COMPACT: [(&str, &str); 19] = [
    ("i", "Call-ID"),
    ("m", "Contact"),
    ("e", "Content-Encoding"),
    ("l", "Content-Length"),
    ("c", "Content-Type"),
    ("f", "From"),
    ("s", "Subject"),
    ("k", "Supported"),
    ("t", "To"),
    ("v", "Via"),
    ("o", "Event"),
    ("r", "Refer-To"),
    ("b", "Referred-By"),
    ("x", "Session-Expires"),
    ("u", "Allow-Events"),
    ("y", "Identity"),
    ("a", "Accept-Contact"),
    ("j", "Reject-Contact"),
    ("d", "Request-Disposition"),
];

const KNOWN: [&str; 30] = [
    "Accept",
    "Allow",
    "Authorization",
    "Call-ID",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Event",
    "Expires",
    "From",
    "Max-Forwards",
    "Min-Expires",
    "Proxy-Authorization",
    "Proxy-Require",
    "Record-Route",
    "Require",
    "Route",
    "Server",
    "Subject",
    "Supported",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "WWW-Authenticate",
    "Retry-After",
];

fn canonical(name: &str) -> String {
    if let Some((_, full)) = COMPACT.iter().find(|(c, _)| c.eq_ignore_ascii_case(name)) {
        return full.to_string();
    }
    match KNOWN.iter().find(|k| k.eq_ignore_ascii_case(name)) {
        Some(k) => k.to_string(),
        None => name.to_string(),
    }
}

/// RFC 3261 `token` characters.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one message from a datagram.
pub fn parse_datagram(buf: &[u8]) -> Result<Message, Reject> {
    match parse(buf, false)? {
        Framed::Complete(m, _) => Ok(m),
        Framed::Incomplete => Err(Reject::new(400, "Incomplete Message")),
    }
}

/// Reads the next message from a stream buffer (TCP), which may hold part of one or several.
pub fn parse_stream(buf: &[u8]) -> Result<Framed, Reject> {
    parse(buf, true)
}

fn parse(buf: &[u8], stream: bool) -> Result<Framed, Reject> {
    // Keep-alive CRLFs before a message are ignored (RFC 3261 §7.5, RFC 5626 §3.5.1).
    let skip = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    let data = &buf[skip..];
    let (head_len, sep) = match (find(data, b"\r\n\r\n"), find(data, b"\n\n")) {
        (Some(a), Some(b)) if b < a => (b, 2),
        (Some(a), _) => (a, 4),
        (None, Some(b)) => (b, 2),
        // A datagram is the whole message: without the blank line, it is all header.
        (None, None) if !stream => (data.len(), 0),
        (None, None) => {
            if buf.len() < MAX_MESSAGE {
                return Ok(Framed::Incomplete);
            }
            return Err(Reject::new(400, "Incomplete Header Section"));
        }
    };
    if head_len > MAX_MESSAGE {
        return Err(Reject::new(400, "Message Too Large"));
    }
    let head = std::str::from_utf8(&data[..head_len])
        .map_err(|_| Reject::new(400, "Header Section Is Not UTF-8"))?;
    let mut lines: Vec<String> = Vec::new();
    for raw in head.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with([' ', '\t']) && !lines.is_empty() {
            // A folded line continues the previous one.
            let last = lines.last_mut().map(|l| {
                l.push(' ');
                l.push_str(line.trim());
            });
            if last.is_none() {
                return Err(Reject::new(400, "Bad Folding"));
            }
        } else {
            lines.push(line.to_string());
        }
        // Blank lines and the start line come on top (the headers are counted below).
        if lines.len() > 2 * MAX_HEADER_LINES {
            return Err(Reject::new(400, "Too Many Header Lines"));
        }
    }
    let mut lines = lines.into_iter();
    let first = lines.next().unwrap_or_default();
    let start = match parse_start(&first) {
        Ok(s) => s,
        Err(mut r) => {
            // A request whose first line is broken is still answered (RFC 4475 §3.1.2): with
            // the headers that can be read, when they give a Via to answer along.
            if r.status != 0 {
                r.message = salvage(&first, lines).map(Box::new);
            }
            return Err(r);
        }
    };
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue; // the end of a datagram that has no blank line
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(Reject::new(400, "Malformed Header Line"));
        };
        let name = name.trim_end();
        if !is_token(name) {
            return Err(Reject::new(400, "Malformed Header Name"));
        }
        headers.push(Header {
            name: canonical(name),
            value: value.trim().to_string(),
        });
    }
    // Content-Length is not counted: we write one whether or not it came, and what we write
    // must read back.
    if headers
        .iter()
        .filter(|h| h.name != "Content-Length")
        .count()
        > MAX_HEADER_LINES
    {
        return Err(Reject::new(400, "Too Many Header Lines"));
    }
    let mut message = Message {
        start,
        headers,
        body: Vec::new(),
    };
    let body_at = skip + head_len + sep;
    let rest = &buf[body_at.min(buf.len())..];
    let lengths: Vec<&str> = message.all("Content-Length").collect();
    let length = match lengths.first() {
        None if stream => return Err(Reject::new(400, "Missing Content-Length").with(&message)),
        None => rest.len(),
        Some(first) => {
            if lengths.iter().any(|l| l != first) {
                return Err(Reject::new(400, "Conflicting Content-Length").with(&message));
            }
            match first.parse::<usize>() {
                Ok(n) if n <= MAX_MESSAGE => n,
                _ => return Err(Reject::new(400, "Bad Content-Length").with(&message)),
            }
        }
    };
    if rest.len() < length {
        if stream {
            return Ok(Framed::Incomplete);
        }
        return Err(Reject::new(400, "Content-Length Larger Than Message").with(&message));
    }
    message.body = rest[..length].to_vec();
    Ok(Framed::Complete(message, body_at + length))
}

/// What can be read of a request with a broken request line: its method and whatever header
/// lines parse; `None` without a Via (a response needs one).
fn salvage(first: &str, lines: impl Iterator<Item = String>) -> Option<Message> {
    let mut words = first.split_whitespace();
    let method = words.next().filter(|m| is_token(m))?.to_string();
    let uri = words.next().unwrap_or("").to_string();
    let headers: Vec<Header> = lines
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            let name = name.trim_end();
            is_token(name).then(|| Header {
                name: canonical(name),
                value: value.trim().to_string(),
            })
        })
        .collect();
    let m = Message {
        start: Start::Request { method, uri },
        headers,
        body: Vec::new(),
    };
    // Any Via will do (even another SIP version's): the answer goes where the request came
    // from, and carries the Via back as it was.
    m.get("Via").filter(|v| !v.trim().is_empty())?;
    Some(m)
}

fn parse_start(line: &str) -> Result<Start, Reject> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        // SIP/2.0 SP code SP reason
        let mut parts = rest.splitn(3, ' ');
        let (version, code, reason) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
        let code = code
            .filter(|c| c.len() == 3)
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (100..700).contains(c));
        return match (version, code) {
            (Some("2.0"), Some(code)) => Ok(Start::Response {
                code,
                reason: reason.to_string(),
            }),
            _ => Err(Reject::new(0, "Malformed Status Line")),
        };
    }
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, uri, version] = parts[..] else {
        return Err(Reject::new(400, "Malformed Request Line"));
    };
    if !is_token(method) {
        return Err(Reject::new(400, "Malformed Method"));
    }
    if uri.is_empty() || uri.contains(['<', '>', '\t']) || !uri.contains(':') {
        return Err(Reject::new(400, "Malformed Request-URI"));
    }
    if version != "SIP/2.0" {
        let reject = if version.starts_with("SIP/") {
            Reject::new(505, "Version Not Supported")
        } else {
            Reject::new(400, "Malformed Request Line")
        };
        return Err(reject);
    }
    Ok(Start::Request {
        method: method.to_string(),
        uri: uri.to_string(),
    })
}

impl Message {
    /// The first value of a header.
    pub fn get<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.all(name).next()
    }

    /// Every value of a header, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    pub fn method(&self) -> Option<&str> {
        match &self.start {
            Start::Request { method, .. } => Some(method),
            Start::Response { .. } => None,
        }
    }

    /// A request's method, typed; for a response, the method its CSeq names.
    pub fn method_kind(&self) -> Option<Method> {
        match &self.start {
            Start::Request { method, .. } => Some(Method::parse(method)),
            Start::Response { .. } => self
                .get("CSeq")
                .and_then(parse_cseq)
                .map(|(_, m)| Method::parse(&m)),
        }
    }

    /// Serialises with canonical names and a correct Content-Length.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::new();
        match &self.start {
            Start::Request { method, uri } => {
                let _ = write!(s, "{method} {uri} SIP/2.0\r\n");
            }
            Start::Response { code, reason } => {
                let _ = write!(s, "SIP/2.0 {code} {reason}\r\n");
            }
        }
        for h in self.headers.iter().filter(|h| h.name != "Content-Length") {
            let _ = write!(s, "{}: {}\r\n", h.name, h.value);
        }
        let _ = write!(s, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// The parts of a Via header value (RFC 3261 §20.42), whitespace around separators allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<(String, Option<String>)>,
}

impl Via {
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }
}

/// Splits on commas that are not inside quotes or angle brackets.
pub fn split_list(value: &str) -> Vec<&str> {
    let (mut out, mut start, mut quoted, mut angle, mut escaped) =
        (Vec::new(), 0, false, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out
}

/// `name[=value]` parameters after a `;`, whitespace around `;` and `=` allowed.
fn parse_params(s: &str) -> Option<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    for p in s.split(';').skip(1) {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().to_string())),
            None => (p.trim(), None),
        };
        if !is_token(k) || v.as_ref().is_some_and(|v| v.is_empty()) {
            return None;
        }
        out.push((k.to_string(), v));
    }
    Some(out)
}

pub fn parse_via(value: &str) -> Option<Via> {
    // SIP / 2.0 / UDP host:port ;params  (LWS allowed around the slashes)
    let (proto, rest) = {
        let mut parts = value.splitn(3, '/');
        let (name, version, rest) = (
            parts.next()?.trim(),
            parts.next()?.trim(),
            parts.next()?.trim_start(),
        );
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return None;
        }
        let end = rest.find(|c: char| c.is_whitespace())?;
        (rest[..end].to_string(), rest[end..].trim_start())
    };
    if !is_token(&proto) {
        return None;
    }
    let (sent_by, _) = rest.split_once(';').unwrap_or((rest, ""));
    let (host, port) = split_host_port(sent_by.trim())?;
    let params = parse_params(rest)?;
    Some(Via {
        transport: proto.to_ascii_uppercase(),
        host,
        port,
        params,
    })
}

fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    if s.is_empty() || s.contains(char::is_whitespace) {
        return None;
    }
    if let Some(v6) = s.strip_prefix('[') {
        let (h, rest) = v6.split_once(']')?;
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if rest.is_empty() => None,
            None => return None,
        };
        return Some((format!("[{h}]"), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), Some(p.parse().ok()?))),
        None => Some((s.to_string(), None)),
    }
}

/// A From, To or Contact value: `"Display" <uri>;params`, `Display <uri>`, or a bare URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: String,
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_deref())
    }
}

pub fn parse_name_addr(value: &str) -> Option<NameAddr> {
    let v = value.trim();
    let (display, rest) = if let Some(q) = v.strip_prefix('"') {
        // A quoted display name, with backslash escapes.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in q.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end?;
        (Some(q[..end].to_string()), q[end + 1..].trim_start())
    } else if let Some(lt) = v.find('<') {
        let d = v[..lt].trim();
        if !d.split_whitespace().all(is_token) {
            return None;
        }
        ((!d.is_empty()).then(|| d.to_string()), &v[lt..])
    } else {
        (None, v)
    };
    if let Some(inner) = rest.strip_prefix('<') {
        let (uri, after) = inner.split_once('>')?;
        if uri.is_empty() || uri != uri.trim() || !uri.contains(':') {
            return None;
        }
        let params = parse_params(after.trim())?;
        if !after.trim().is_empty() && !after.trim().starts_with(';') {
            return None;
        }
        return Some(NameAddr {
            display,
            uri: uri.to_string(),
            params,
        });
    }
    if display.is_some() {
        return None;
    }
    // A bare URI ends at the first ';' (those are header parameters), and may not carry `?`
    // headers or commas (RFC 3261 §20.10).
    let (uri, _) = rest.split_once(';').unwrap_or((rest, ""));
    let uri = uri.trim();
    if uri.is_empty() || !uri.contains(':') || uri.contains(['?', ',', ' ', '<', '>', '"']) {
        return None;
    }
    let params = parse_params(&rest[uri.len()..])?;
    Some(NameAddr {
        display: None,
        uri: uri.to_string(),
        params,
    })
}

/// `CSeq: 4711 INVITE`
pub fn parse_cseq(value: &str) -> Option<(u32, String)> {
    let mut parts = value.split_whitespace();
    let (n, m) = (parts.next()?, parts.next()?);
    if parts.next().is_some() || !is_token(m) {
        return None;
    }
    // RFC 3261 §8.1.1.5: less than 2**31.
    let n: u32 = n.parse().ok().filter(|n| *n < 1 << 31)?;
    Some((n, m.to_string()))
}

/// URI schemes a request may be addressed to.
const SCHEMES: [&str; 3] = ["sip", "sips", "tel"];

/// Checks a message the way RFC 3261 §8.2 asks a UAS to, before any method is looked at.
/// A bad response is dropped (status 0): responses are never answered.
pub fn validate(m: &Message) -> Result<(), Reject> {
    let Start::Request { method, uri } = &m.start else {
        let complete = ["Via", "From", "To", "Call-ID"]
            .iter()
            .all(|h| m.get(h).is_some());
        if !complete || m.get("CSeq").and_then(parse_cseq).is_none() {
            return Err(Reject::new(0, "Malformed Response"));
        }
        return Ok(());
    };
    let bad = |reason: &str| Err(Reject::new(400, reason).with(m));
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if m.get(name).is_none() {
            return bad(&format!("Missing {name} Header"));
        }
    }
    for name in [
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Max-Forwards",
        "Content-Type",
    ] {
        if m.all(name).count() > 1 {
            return bad(&format!("Duplicate {name} Header"));
        }
    }
    for via in m.all("Via").flat_map(split_list) {
        if parse_via(via).is_none() {
            return bad("Malformed Via Header");
        }
    }
    match m.get("CSeq").and_then(parse_cseq) {
        None => return bad("Malformed CSeq Header"),
        Some((_, ref cm)) if cm != method => return bad("CSeq Method Does Not Match"),
        Some(_) => {}
    }
    if let Some(mf) = m.get("Max-Forwards")
        && mf.parse::<u8>().is_err()
    {
        return bad("Malformed Max-Forwards Header");
    }
    if let Some(e) = m.get("Expires")
        && e.parse::<u32>().is_err()
    {
        return bad("Malformed Expires Header");
    }
    for name in ["From", "To"] {
        if m.get(name).and_then(parse_name_addr).is_none() {
            return bad(&format!("Malformed {name} Header"));
        }
    }
    for c in m.all("Contact").flat_map(split_list) {
        if c != "*" && parse_name_addr(c).is_none() {
            return bad("Malformed Contact Header");
        }
        if let Some(e) = parse_name_addr(c).and_then(|n| n.param("expires").map(str::to_string))
            && e.parse::<u32>().is_err()
        {
            return bad("Malformed Contact Expires");
        }
    }
    if let Some(d) = m.get("Date")
        && !d.trim_end().ends_with("GMT")
    {
        return bad("Date Must Be In GMT");
    }
    // `?` may appear in the user part; after the host it starts URI headers (RFC 3261 §19.1.5).
    let host_part = uri.rsplit_once('@').map_or(uri.as_str(), |(_, h)| h);
    if host_part.contains('?') {
        return bad("Request-URI Must Not Carry Headers");
    }
    let scheme = uri.split(':').next().unwrap_or("");
    if !SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
        return Err(Reject::new(416, "Unsupported URI Scheme").with(m));
    }
    Ok(())
}

/// Records in a request's top Via where it really came from (RFC 3261 §18.2.1): `received`
/// when the address differs from the sent-by host, and with `rport` asked for, the port too
/// (RFC 3581), so that our responses find a phone behind NAT. Responses copy the Via.
pub fn stamp_via(msg: &mut Message, source: std::net::SocketAddr) {
    let Some(h) = msg
        .headers
        .iter_mut()
        .find(|h| h.name.eq_ignore_ascii_case("Via"))
    else {
        return;
    };
    let list = split_list(&h.value);
    let Some((first, others)) = list.split_first() else {
        return;
    };
    let Some(via) = parse_via(first) else {
        return;
    };
    let head = first.split(';').next().unwrap_or(first).trim_end();
    let ip = source.ip().to_string();
    let rport = via.param("rport").is_some();
    let mut value = head.to_string();
    for (k, v) in &via.params {
        if k.eq_ignore_ascii_case("received") || k.eq_ignore_ascii_case("rport") {
            continue;
        }
        let _ = match v {
            Some(v) => write!(value, ";{k}={v}"),
            None => write!(value, ";{k}"),
        };
    }
    if via.host.trim_matches(['[', ']']) != ip || rport {
        let _ = write!(value, ";received={ip}");
    }
    if rport {
        let _ = write!(value, ";rport={}", source.port());
    }
    for o in others {
        value.push_str(", ");
        value.push_str(o.trim());
    }
    h.value = value;
}

/// Our answer to a request, as every answer of ours reads: `response_to` with `extra`, then
/// `Server: hotline`, and the SDP's content type when there is a body.
pub fn our_response(
    req: &Message,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[(String, String)],
    body: Vec<u8>,
) -> Message {
    let mut headers: Vec<(String, String)> = extra.to_vec();
    headers.push(("Server".into(), "hotline".into()));
    if !body.is_empty() {
        headers.push(("Content-Type".into(), "application/sdp".into()));
    }
    response_to(req, code, reason, to_tag, &headers, body)
}

/// The answer to a request: its Via, From, To (with our tag), Call-ID and CSeq, then `extra`.
pub fn response_to(
    req: &Message,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[(String, String)],
    body: Vec<u8>,
) -> Message {
    let mut headers = Vec::new();
    for via in req.all("Via") {
        headers.push(Header {
            name: "Via".into(),
            value: via.to_string(),
        });
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        if let Some(v) = req.get(name) {
            let mut value = v.to_string();
            if name == "To"
                && let Some(tag) = to_tag
                && parse_name_addr(v).is_some_and(|n| n.param("tag").is_none())
            {
                let _ = write!(value, ";tag={tag}");
            }
            headers.push(Header {
                name: name.into(),
                value,
            });
        }
    }
    for (k, v) in extra {
        headers.push(Header {
            name: k.clone(),
            value: v.clone(),
        });
    }
    Message {
        start: Start::Response {
            code,
            reason: reason.to_string(),
        },
        headers,
        body,
    }
}

#[cfg(test)]
mod tests;
