//! Reading a received message as a mail client would: headers (RFC 2047
//! words decoded), the text part and the attachments of a MIME body.

use base64::{engine::general_purpose::STANDARD, Engine};

use super::ReceivedMail;

impl ReceivedMail {
    /// A header of the message (the first of that name), unfolded, with
    /// RFC 2047 `=?UTF-8?B?...?=` words decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        header_in(head(&self.data), name).map(|v| decode_words(&v))
    }

    /// The text/plain part that is not an attachment, decoded.
    pub fn text(&self) -> String {
        let parts = self.parts();
        let text = parts.iter().find(|p| {
            let kind = header_in(&p.head, "Content-Type").unwrap_or_default().to_ascii_lowercase();
            let disposition = header_in(&p.head, "Content-Disposition").unwrap_or_default();
            kind.starts_with("text/plain") && !disposition.to_ascii_lowercase().starts_with("attachment")
        });
        String::from_utf8(text.expect("the mail has a text/plain part").decoded()).expect("the text is UTF-8")
    }

    /// Each attachment's filename and decoded bytes.
    pub fn attachments(&self) -> Vec<(String, Vec<u8>)> {
        self.parts()
            .iter()
            .filter_map(|p| {
                let disposition = header_in(&p.head, "Content-Disposition")?;
                disposition
                    .to_ascii_lowercase()
                    .starts_with("attachment")
                    .then(|| (param(&disposition, "filename").unwrap_or_default(), p.decoded()))
            })
            .collect()
    }

    /// The MIME parts, or the whole message as one part when not multipart.
    fn parts(&self) -> Vec<Part> {
        let whole = Part { head: head(&self.data).to_owned(), body: body(&self.data).to_owned() };
        let Some(boundary) = self.header("Content-Type").and_then(|t| param(&t, "boundary")) else {
            return vec![whole];
        };
        let delimiter = format!("--{boundary}");
        let mut sections: Vec<&str> = whole.body.split(delimiter.as_str()).collect();
        sections.remove(0); // the preamble
        sections
            .into_iter()
            .take_while(|s| !s.starts_with("--"))
            .map(|s| {
                let s = s.strip_prefix("\r\n").unwrap_or(s);
                Part { head: head(s).to_owned(), body: body(s).to_owned() }
            })
            .collect()
    }
}

/// One MIME part: its headers and its still-encoded body.
struct Part {
    head: String,
    body: String,
}

impl Part {
    fn decoded(&self) -> Vec<u8> {
        let encoding = header_in(&self.head, "Content-Transfer-Encoding").unwrap_or_default();
        if encoding.eq_ignore_ascii_case("base64") {
            let compact: String = self.body.split_whitespace().collect();
            STANDARD.decode(compact).expect("the part is valid base64")
        } else {
            // 8bit or 7bit: the body ends with the CRLF before the delimiter.
            self.body.strip_suffix("\r\n").unwrap_or(&self.body).as_bytes().to_vec()
        }
    }
}

fn head(message: &str) -> &str {
    message.split_once("\r\n\r\n").map_or(message, |(head, _)| head)
}

fn body(message: &str) -> &str {
    message.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// The unfolded value of header `name` in `head`.
fn header_in(head: &str, name: &str) -> Option<String> {
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
    })
}

/// A parameter of a header value: `filename` in `attachment; filename="a.pdf"`,
/// or split into RFC 2231 sections (`filename*0="a"; filename*1=".pdf"`,
/// `filename*=utf-8''%C3%A9.pdf`) as long values are.
fn param(value: &str, name: &str) -> Option<String> {
    let params: Vec<(String, String)> = value
        .split(';')
        .skip(1)
        .filter_map(|p| {
            let (key, v) = p.split_once('=')?;
            Some((key.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_owned()))
        })
        .collect();
    let name = name.to_ascii_lowercase();
    if let Some((_, v)) = params.iter().find(|(k, _)| *k == name) {
        return Some(v.clone());
    }
    // Sections in order: `name*`, or `name*0`, `name*1`... each maybe `*`-extended.
    let mut sections: Vec<(usize, bool, &str)> = params
        .iter()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix(&name)?.strip_prefix('*')?;
            if rest.is_empty() {
                return Some((0, true, v.as_str()));
            }
            let (number, extended) = rest.strip_suffix('*').map_or((rest, false), |n| (n, true));
            Some((number.parse().ok()?, extended, v.as_str()))
        })
        .collect();
    if sections.is_empty() {
        return None;
    }
    sections.sort_by_key(|(n, _, _)| *n);
    let mut bytes = Vec::new();
    for (i, (_, extended, v)) in sections.into_iter().enumerate() {
        if !extended {
            bytes.extend(v.as_bytes());
            continue;
        }
        // The first extended section starts with `charset'language'`.
        let v = if i == 0 { v.splitn(3, '\'').nth(2).unwrap_or(v) } else { v };
        bytes.extend(percent_decode(v));
    }
    String::from_utf8(bytes).ok()
}

fn percent_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        let hex = |c: Option<u8>| c.and_then(|c| (c as char).to_digit(16));
        if b == b'%' {
            let (hi, lo) = (hex(bytes.next()), hex(bytes.next()));
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push((hi * 16 + lo) as u8);
            }
        } else {
            out.push(b);
        }
    }
    out
}

/// Decodes RFC 2047 B-encoded UTF-8 words; the space between two encoded
/// words is dropped, as the RFC says.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut previous_encoded = false;
    for (i, token) in value.split(' ').enumerate() {
        let word = token
            .strip_prefix("=?")
            .and_then(|w| w.strip_suffix("?="))
            .and_then(|w| w.split_once("?B?").or_else(|| w.split_once("?b?")))
            .filter(|(charset, _)| charset.eq_ignore_ascii_case("UTF-8"))
            .and_then(|(_, b64)| STANDARD.decode(b64).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok());
        if i > 0 && !(previous_encoded && word.is_some()) {
            out.push(' ');
        }
        previous_encoded = word.is_some();
        out += word.as_deref().unwrap_or(token);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_rfc2231_parameters() {
        assert_eq!(param("attachment; filename=\"a.pdf\"", "filename").as_deref(), Some("a.pdf"));
        let split = "attachment; filename*0=\"daily-status-\"; filename*1=\"20240506T070809Z.csv\"";
        assert_eq!(param(split, "filename").as_deref(), Some("daily-status-20240506T070809Z.csv"));
        let extended = "attachment; filename*0*=utf-8''r%C3%A9; filename*1=\"sum\u{e9}.pdf\"";
        assert_eq!(param(extended, "filename").as_deref(), Some("résumé.pdf"));
        assert_eq!(param("attachment; filename*=utf-8''%C3%A9.txt", "filename").as_deref(), Some("é.txt"));
        assert_eq!(param("attachment", "filename"), None);
    }
}
