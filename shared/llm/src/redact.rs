//! PII redaction before any text leaves for a third party: e-mail addresses, phone numbers,
//! links and @handles become placeholders. The on-device path sees the original text.

use std::sync::OnceLock;

use regex::Regex;

fn patterns() -> &'static [(Regex, &'static str)] {
    static PATTERNS: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        [
            (r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b", "[email]"),
            (r"(?i)\b(?:https?://|www\.)\S+", "[link]"),
            // 7+ digits, allowing the separators people write phone numbers with.
            (r"\+?\d[\d\s().-]{5,}\d", "[phone]"),
            (r"(?:^|\B)@[A-Za-z0-9_.]{2,}", "[handle]"),
        ]
        .into_iter()
        .map(|(p, r)| (Regex::new(p).expect("valid pattern"), r))
        .collect()
    })
}

pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for (pattern, placeholder) in patterns() {
        out = pattern
            .replace_all(&out, |c: &regex::Captures| {
                let m = &c[0];
                // A short number ("5 mistakes", "2024") is content, not a phone number.
                if *placeholder == "[phone]" && m.chars().filter(char::is_ascii_digit).count() < 7 {
                    m.to_string()
                } else {
                    placeholder.to_string()
                }
            })
            .into_owned();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn personal_data_is_replaced_and_content_kept() {
        let text = "DM @jane.doe or mail jane.doe+gv@example.co.uk, call +1 (415) 555-0132, see https://x.com/jane?a=1 — 5 tips from 2024";
        let r = redact(text);
        assert_eq!(r, "DM [handle] or mail [email], call [phone], see [link] — 5 tips from 2024");
    }
}
